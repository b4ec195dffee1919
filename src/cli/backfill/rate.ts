import type { Clock } from "./clock.ts";

/**
 * A token bucket of `eventsPerS` tokens a second, holding at most one second's worth (or one batch,
 * when a batch is larger, so that any batch can pass). A taker may run into debt: it waits until the
 * debt is paid, so successive takers queue in order without a lock.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;
  private readonly capacity: number;

  constructor(
    private readonly eventsPerS: number,
    maxTake: number,
    private readonly clock: Clock,
  ) {
    this.capacity = Math.max(eventsPerS, maxTake);
    this.tokens = this.capacity;
    this.lastMs = clock.now();
  }

  /** Takes `n` tokens; returns how long (ms) the taker must wait before sending. */
  reserve(n: number): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.lastMs) * this.eventsPerS) / 1000);
    this.lastMs = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.eventsPerS);
  }

  async take(n: number): Promise<void> {
    await this.clock.sleep(this.reserve(n));
  }
}

/** No limit (--rate 0). */
export const unlimited = { take: async (_n: number) => {} };
export type RateLimiter = { take(n: number): Promise<void> };

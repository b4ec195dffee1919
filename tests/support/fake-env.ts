import type { Env } from "../../src/ports/clock.ts";
import type { Timers } from "../../src/ports/timers.ts";
import { Prng as SeededRandom } from "../../src/sim/prng.ts";

/** One seed drives every random choice of a test: the simulator's PRNG. */
export { SeededRandom };

/** A clock that moves only when told to. */
export class ManualClock {
  constructor(public time: number) {}
  now(): number {
    return this.time;
  }
}

/** Virtual timers: callbacks run only when the test advances time. */
export class ManualTimers implements Timers {
  private pending: Array<{ id: number; at: number; fn: () => void }> = [];
  private nextId = 1;
  constructor(private readonly clock: ManualClock) {}

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.push({ id, at: this.clock.time + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((t) => t.id !== handle);
  }

  get size(): number {
    return this.pending.length;
  }

  /** Runs due timers in time order (including ones they schedule), moving the clock to each. */
  advance(ms: number): void {
    const until = this.clock.time + ms;
    for (;;) {
      this.pending.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.pending[0];
      if (!next || next.at > until) break;
      this.pending.shift();
      this.clock.time = Math.max(this.clock.time, next.at);
      next.fn();
    }
    this.clock.time = until;
  }
}

export function fakeEnv(start = Date.UTC(2026, 10, 21, 10, 0, 0), seed = 1) {
  const clock = new ManualClock(start);
  const random = new SeededRandom(seed);
  const timers = new ManualTimers(clock);
  const env: Env = { clock, random };
  return { clock, random, timers, env };
}

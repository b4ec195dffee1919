import { parseDuration } from "../actor/duration.ts";

/** A rate with its burst: `rate` tokens per `perMs`, at most `burst` saved up. */
export interface Rate {
  rate: number;
  perMs: number;
  burst: number;
}

/** "100/s", "6000/1m", "100/s:500" (burst 500; without one the burst is one period's worth). */
export function parseRate(text: string): Rate | string {
  const m = /^(\d+)\/(\d*[a-z]+)(?::(\d+))?$/.exec(text.trim());
  const perMs = m ? parseDuration(/^\d/.test(m[2]!) ? m[2]! : `1${m[2]}`) : undefined;
  if (!m || !perMs || Number(m[1]) < 1) return `"${text}" is not a rate like 100/s, 6000/1m or 100/s:500 (with a burst of 500)`;
  const rate = Number(m[1]);
  const burst = m[3] === undefined ? rate : Number(m[3]);
  if (burst < 1) return `"${text}": the burst must be at least 1`;
  return { rate, perMs, burst };
}

/** A token bucket; time comes from the caller (the core never reads the clock). */
class Bucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly limit: Rate,
    now: number,
  ) {
    this.tokens = limit.burst;
    this.at = now;
  }

  /** Refills to `now`; then how long until `n` tokens are there (0: they are now). */
  waitMs(n: number, now: number): number {
    if (now > this.at) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.at) * this.limit.rate) / this.limit.perMs);
      this.at = now;
    }
    return this.tokens >= n ? 0 : Math.ceil(((n - this.tokens) * this.limit.perMs) / this.limit.rate);
  }

  take(n: number): void {
    this.tokens -= n;
  }
}

export interface RateLimitSettings {
  keyRequests?: Rate;
  keyEvents?: Rate;
  tenantRequests?: Rate;
  tenantEvents?: Rate;
}

export type LimitCheck = { ok: true } | { ok: false; retryAfterMs: number; limit: string } | { ok: false; tooLarge: true; burst: number; limit: string };

/**
 * The per-API-key and per-tenant buckets of one process (or one Worker isolate). A request is
 * admitted only if every bucket it draws on has the tokens, and then takes from all of them, so a
 * refused request costs nothing. Buckets exist per configured key and tenant: their number is
 * bounded by the configuration, never by clients.
 */
export class RateLimits {
  private readonly buckets = new Map<string, Bucket>();
  /** Whether any limit is set (checked on every request, so worked out once). */
  readonly enabled: boolean;

  constructor(private readonly settings: RateLimitSettings) {
    this.enabled = Object.values(settings).some(Boolean);
  }

  requests(keyId: string | undefined, tenant: string, now: number): LimitCheck {
    return this.admit([this.pick("keyRequests", keyId, "requests per API key"), this.pick("tenantRequests", tenant, "requests per tenant")], 1, now);
  }

  events(keyId: string | undefined, tenant: string, count: number, now: number): LimitCheck {
    return this.admit([this.pick("keyEvents", keyId, "events per API key"), this.pick("tenantEvents", tenant, "events per tenant")], count, now);
  }

  private pick(field: keyof RateLimitSettings, id: string | undefined, limit: string): { bucket: Bucket; rate: Rate; limit: string } | undefined {
    const rate = this.settings[field];
    if (!rate || id === undefined) return undefined;
    const name = `${field}\n${id}`;
    let bucket = this.buckets.get(name);
    if (!bucket) this.buckets.set(name, (bucket = new Bucket(rate, -Infinity)));
    return { bucket, rate, limit };
  }

  private admit(picked: Array<{ bucket: Bucket; rate: Rate; limit: string } | undefined>, n: number, now: number): LimitCheck {
    let worst: LimitCheck = { ok: true };
    for (const p of picked) {
      if (!p) continue;
      if (n > p.rate.burst) return { ok: false, tooLarge: true, burst: p.rate.burst, limit: p.limit };
      const waitMs = p.bucket.waitMs(n, now);
      if (waitMs > 0 && (worst.ok || ("retryAfterMs" in worst && waitMs > worst.retryAfterMs))) worst = { ok: false, retryAfterMs: waitMs, limit: p.limit };
    }
    if (worst.ok) for (const p of picked) p?.bucket.take(n);
    return worst;
  }
}

import type { Random } from "../ports/clock.ts";

/**
 * The simulator's one source of randomness: xorshift32 (as tests/support/fake-env.ts), its state
 * seeded through a splitmix32 finalizer so that neighbouring seeds give unrelated streams.
 * Workload, swarm choices, fault injection, latencies and the core's backoff jitter all draw from it.
 */
export class Prng implements Random {
  private state: number;
  /** Numbers drawn so far (part of the trace: a diverging replay shows up here first). */
  draws = 0;

  constructor(readonly seed: number) {
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    let z = (lo ^ Math.imul(hi, 0x27d4eb2d) ^ 0x9e3779b9) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    this.state = z || 0x9e3779b9;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    this.draws++;
    return this.state / 2 ** 32;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Exponentially distributed with the given mean (rounded to whole milliseconds, at least 1). */
  exp(mean: number): number {
    return Math.max(1, Math.round(-Math.log(1 - this.next()) * mean));
  }

  /** A random subset (order kept), never empty when `nonEmpty`. */
  subset<T>(items: readonly T[], p: number, nonEmpty = true): T[] {
    const out = items.filter(() => this.chance(p));
    if (nonEmpty && out.length === 0) out.push(this.pick(items));
    return out;
  }
}

/** A stable 32-bit hash of a string (FNV-1a); used for data-determined predicates like poison records. */
export function hash32(text: string, salt = 0): number {
  let h = (0x811c9dc5 ^ salt) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  h ^= h >>> 12;
  return h >>> 0;
}

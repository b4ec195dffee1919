/**
 * Percentiles of a window's measure (issue 12): a DDSketch (Masson, Rim, Lee, "DDSketch: a fast and
 * fully-mergeable quantile sketch with relative-error guarantees", VLDB 2019).
 *
 * Guarantee: for n values and 0 ≤ q ≤ 1, `quantile(q)` is within relative error α of x_q, the value of
 * 0-based rank ⌊q·(n − 1)⌋ of the values sorted ascending: |quantile(q) − x_q| ≤ α·|x_q| (up to
 * floating-point rounding, far below 1e-12 relative). α is `relativeAccuracy`, 1% by default.
 * Exceptions, both documented limits of the sketch:
 * - collapse: each sign keeps at most `maxBuckets` consecutive buckets (2,048 by default). When the
 *   values of one sign span more, the buckets of the smallest magnitudes are merged into the lowest
 *   one kept, so quantiles whose value lies in them are reported too large in magnitude (at most the
 *   lowest kept bucket's value). With α = 1% (35 buckets per power of two) and 2,048 buckets, a sign's
 *   values keep full accuracy when they lie within a factor 2^58 ≈ 3e17 of its largest magnitude; adversarial data beyond that cannot grow
 *   the sketch, only lose accuracy near zero.
 * - values of magnitude below MIN_INDEXABLE (2^-1021 ≈ 4.5e-308: subnormals and the smallest normals) count as zero.
 * The minimum and maximum are kept exactly: ranks 0 and n − 1 report them, and every result is clamped to them.
 *
 * Buckets: value v > 0 goes to bucket ⌊multiplier · log2≈(v)⌋, where log2≈ is DDSketch's cubic
 * interpolation of log2 between powers of two (exponent from the IEEE bits plus a cubic of the
 * significand), and multiplier = 1 / (C · ln γ) with γ = (1 + α)/(1 − α). Consecutive bucket bounds
 * are then at most a factor γ apart, and the bucket's lower bound times (1 + α) is within α of every
 * value in it. Negative values use a second store indexed by |v|; zeros are counted apart. Only IEEE
 * basic arithmetic (ln γ by its series), floor and bit extraction are used, never Math.log or
 * Math.cbrt, so bucket indices and reported values are identical on every engine.
 *
 * The state depends only on the multiset of values added (never their order), so merging two sketches
 * gives exactly the sketch of the concatenated values; it is JSON with zero-runs compressed.
 */
import { assert } from "../ports/assert.ts";
import { z } from "zod";

export const DEFAULT_RELATIVE_ACCURACY = 0.01;
export const DEFAULT_MAX_BUCKETS = 2048;
/** Enough for every finite double of one sign without collapse at α = 1% (~72,000 buckets). */
export const MAX_MAX_BUCKETS = 1 << 17;
/** Values of smaller magnitude count as zero; those above are normal numbers, whose exponent and significand are their IEEE bits. */
export const MIN_INDEXABLE = 2 ** -1021;

/** Scratch space to read and build IEEE doubles (big-endian: DataView's default, the same everywhere). */
const bits = new DataView(new ArrayBuffer(8));

// Coefficients of DDSketch's cubic interpolation of log2 on the significand s in [0, 1).
const A = 6 / 35;
const B = -3 / 5;
const C = 10 / 7;

export interface QuantileOptions {
  relativeAccuracy?: number;
  maxBuckets?: number;
}

/** A store: [lowest index, then counts where a negative entry -k stands for k empty buckets]; [] when empty. */
export type StoreJSON = number[];

export interface QuantilesJSON {
  kind: "ddsketch";
  relativeAccuracy: number;
  maxBuckets: number;
  zero: number;
  min: number | null;
  max: number | null;
  positive: StoreJSON;
  negative: StoreJSON;
}

export class QuantileSketch {
  readonly relativeAccuracy: number;
  private readonly multiplier: number;
  private limit: number;
  private zero = 0;
  private low = Infinity;
  private high = -Infinity;
  private positive: Buckets;
  private negative: Buckets;

  constructor(options: QuantileOptions = {}) {
    const alpha = options.relativeAccuracy ?? DEFAULT_RELATIVE_ACCURACY;
    const limit = options.maxBuckets ?? DEFAULT_MAX_BUCKETS;
    assert(alpha > 0 && alpha <= 0.5, `relativeAccuracy ${alpha} in (0, 0.5]`);
    assert(Number.isInteger(limit) && limit >= 1 && limit <= MAX_MAX_BUCKETS, `maxBuckets ${limit} in [1, ${MAX_MAX_BUCKETS}]`);
    this.relativeAccuracy = alpha;
    this.multiplier = 1 / (C * lnGamma(alpha));
    this.limit = limit;
    this.positive = new Buckets(limit);
    this.negative = new Buckets(limit);
  }

  get maxBuckets(): number {
    return this.limit;
  }

  /** Values added so far. */
  count(): number {
    return this.zero + this.positive.total + this.negative.total;
  }

  /** Buckets in use (both signs): at most 2 · maxBuckets. */
  get bucketCount(): number {
    return this.positive.span() + this.negative.span();
  }

  get min(): number | null {
    return this.count() === 0 ? null : this.low;
  }

  get max(): number | null {
    return this.count() === 0 ? null : this.high;
  }

  /** Adds one finite value (the measures of JSON events always are). */
  add(value: number): void {
    if (!Number.isFinite(value)) assert(false, `a finite value, not ${value}`);
    if (value === 0) value = 0; // -0 too: JSON cannot keep it apart
    if (value < this.low) this.low = value;
    if (value > this.high) this.high = value;
    if (value >= MIN_INDEXABLE) this.positive.add(this.index(value), 1);
    else if (value <= -MIN_INDEXABLE) this.negative.add(this.index(-value), 1);
    else this.zero++;
  }

  /** The q-quantile (0 ≤ q ≤ 1) within relative error α of the value of rank ⌊q·(n − 1)⌋; null when empty. */
  quantile(q: number): number | null {
    if (!(q >= 0 && q <= 1)) assert(false, `quantile ${q} in [0, 1]`);
    const n = this.count();
    if (n === 0) return null;
    const rank = Math.floor(q * (n - 1));
    if (rank === 0) return this.low;
    if (rank === n - 1) return this.high;
    return Math.min(this.high, Math.max(this.low, this.valueOfRank(rank)));
  }

  /** Merges `other` (same relativeAccuracy; unchanged) into this one and returns this; keeps the smaller maxBuckets. */
  merge(other: QuantileSketch): this {
    assert(other.relativeAccuracy === this.relativeAccuracy, `merge of relative accuracies ${this.relativeAccuracy} and ${other.relativeAccuracy}`);
    this.limit = Math.min(this.limit, other.limit);
    this.positive.mergeFrom(other.positive, this.limit);
    this.negative.mergeFrom(other.negative, this.limit);
    this.zero += other.zero;
    this.low = Math.min(this.low, other.low);
    this.high = Math.max(this.high, other.high);
    return this;
  }

  clone(): QuantileSketch {
    const copy = new QuantileSketch({ relativeAccuracy: this.relativeAccuracy, maxBuckets: this.limit });
    copy.zero = this.zero;
    copy.low = this.low;
    copy.high = this.high;
    copy.positive = this.positive.clone();
    copy.negative = this.negative.clone();
    return copy;
  }

  toJSON(): QuantilesJSON {
    const empty = this.count() === 0;
    return {
      kind: "ddsketch",
      relativeAccuracy: this.relativeAccuracy,
      maxBuckets: this.limit,
      zero: this.zero,
      min: empty ? null : this.low,
      max: empty ? null : this.high,
      positive: this.positive.toJSON(),
      negative: this.negative.toJSON(),
    };
  }

  /** The sketch a `toJSON()` gave (e.g. read from a checkpoint); throws on anything else. */
  static fromJSON(json: unknown): QuantileSketch {
    const parsed = JSON_SCHEMA.parse(json);
    const sketch = new QuantileSketch({ relativeAccuracy: parsed.relativeAccuracy, maxBuckets: parsed.maxBuckets });
    sketch.zero = parsed.zero;
    sketch.positive.load(parsed.positive);
    sketch.negative.load(parsed.negative);
    if ((parsed.min === null) !== (sketch.count() === 0) || (parsed.max === null) !== (sketch.count() === 0)) throw new Error("quantiles: min and max are null exactly when empty");
    if (parsed.min !== null && parsed.max !== null) {
      if (parsed.min > parsed.max) throw new Error("quantiles: min above max");
      sketch.low = parsed.min;
      sketch.high = parsed.max;
    }
    return sketch;
  }

  /** The bucket of v ≥ MIN_INDEXABLE: ⌊multiplier · log2≈(v)⌋, v = 2^exponent · (1 + s) read from its IEEE bits. */
  index(v: number): number {
    bits.setFloat64(0, v);
    const high = bits.getUint32(0);
    const exponent = ((high >>> 20) & 0x7ff) - 1023;
    bits.setUint32(0, (high & 0x000fffff) | 0x3ff00000);
    const s = bits.getFloat64(0) - 1;
    return Math.floor((((A * s + B) * s + C) * s + exponent) * this.multiplier);
  }

  /** The value reported for bucket i: its lower bound times (1 + α). */
  bucketValue(i: number): number {
    const scaled = i / this.multiplier;
    const exponent = Math.floor(scaled);
    return pow2(exponent) * (1 + inverseCubic(scaled - exponent)) * (1 + this.relativeAccuracy);
  }

  private valueOfRank(rank: number): number {
    const negative = this.negative.total;
    if (rank < negative) return -this.bucketValue(this.negative.indexOfRank(negative - 1 - rank));
    if (rank < negative + this.zero) return 0;
    return this.bucketValue(this.positive.indexOfRank(rank - negative - this.zero));
  }
}

/** ln γ = ln((1 + α)/(1 − α)) = 2·atanh(α), by its series (only basic arithmetic: the same on every engine). */
export function lnGamma(alpha: number): number {
  const square = alpha * alpha;
  let power = alpha;
  let sum = 0;
  for (let k = 1; ; k += 2) {
    const next = sum + power / k;
    if (next === sum) return 2 * sum;
    sum = next;
    power *= square;
  }
}


function pow2(exponent: number): number {
  if (exponent > 1023) return Infinity;
  if (exponent < -1022) return pow2(exponent + 64) / 2 ** 64;
  bits.setUint32(0, (exponent + 1023) << 20);
  bits.setUint32(4, 0);
  return bits.getFloat64(0);
}

/** The s in [0, 1] with A·s³ + B·s² + C·s = t (increasing in s), by bisection: deterministic, ~1 ulp. */
function inverseCubic(t: number): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 64; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (((A * mid + B) * mid + C) * mid < t) lo = mid;
    else hi = mid;
  }
  return hi;
}

/**
 * Counts of consecutive bucket indices [lo, hi], at most `limit` of them: lo is always
 * max(lowest index seen, highest index seen − limit + 1), and the lowest bucket also counts every
 * value of a lower index (collapse). The array has room for up to 2·limit buckets so that a range
 * sliding upwards moves its counts once per `limit` steps.
 */
class Buckets {
  total = 0;
  private counts = new Float64Array(0);
  private offset = 0;
  private lo = 0;
  private hi = -1;

  constructor(private limit: number) {}

  span(): number {
    return this.total === 0 ? 0 : this.hi - this.lo + 1;
  }

  clone(): Buckets {
    const copy = new Buckets(this.limit);
    copy.total = this.total;
    copy.counts = this.counts.slice();
    copy.offset = this.offset;
    copy.lo = this.lo;
    copy.hi = this.hi;
    return copy;
  }

  add(index: number, n: number): void {
    if (this.total === 0) this.cover(index, index);
    else if (index > this.hi) this.cover(this.lo, index);
    else if (index < this.lo) this.cover(index, this.hi);
    this.counts[Math.max(index, this.lo) - this.offset]! += n;
    this.total += n;
  }

  mergeFrom(other: Buckets, limit: number): void {
    this.limit = limit;
    if (this.total > 0 && this.hi - this.lo + 1 > limit) this.cover(this.lo, this.hi);
    if (other.total === 0) return;
    if (this.total === 0) this.cover(other.lo, other.hi);
    else this.cover(Math.min(this.lo, other.lo), Math.max(this.hi, other.hi));
    for (let i = other.lo; i <= other.hi; i++) this.counts[Math.max(i, this.lo) - this.offset]! += other.counts[i - other.offset]!;
    this.total += other.total;
  }

  /** The index of the bucket holding the value of 0-based rank `rank` (ascending index order). */
  indexOfRank(rank: number): number {
    if (!(rank >= 0 && rank < this.total)) assert(false, `rank ${rank} below ${this.total}`);
    let seen = 0;
    for (let i = this.lo; i <= this.hi; i++) {
      seen += this.counts[i - this.offset]!;
      if (seen > rank) return i;
    }
    assert(false, "bucket counts add up to the total");
  }

  toJSON(): StoreJSON {
    if (this.total === 0) return [];
    const out = [this.lo];
    for (let i = this.lo; i <= this.hi; i++) {
      const c = this.counts[i - this.offset]!;
      const last = out[out.length - 1]!;
      if (c > 0) out.push(c);
      else if (last < 0 && out.length > 1) out[out.length - 1] = last - 1;
      else out.push(-1);
    }
    return out;
  }

  /** Loads a store's JSON into this empty one; throws unless it is one toJSON() can give. */
  load(json: StoreJSON): void {
    assert(this.total === 0, "load into an empty store");
    if (json.length === 0) return;
    const [lo, ...runs] = json as [number, ...number[]];
    let hi = lo - 1;
    for (const run of runs) hi += run > 0 ? 1 : -run;
    const first = runs[0];
    const last = runs[runs.length - 1];
    if (!(first !== undefined && first > 0 && last !== undefined && last > 0)) throw new Error("quantiles: a store starts and ends with a counted bucket");
    if (runs.some((run, i) => run === 0 || (run < 0 && runs[i - 1]! < 0))) throw new Error("quantiles: empty runs are single and non-zero");
    if (hi - lo + 1 > this.limit) throw new Error(`quantiles: ${hi - lo + 1} buckets exceed maxBuckets ${this.limit}`);
    this.cover(lo, hi);
    let i = lo;
    for (const run of runs) {
      if (run > 0) {
        this.counts[i - this.offset] = run;
        this.total += run;
        i++;
      } else i -= run;
    }
  }

  /** Makes [newLo, newHi] the range (clamped to `limit` buckets), collapsing what falls below it. */
  private cover(newLo: number, newHi: number): void {
    newLo = Math.max(newLo, newHi - this.limit + 1);
    let collapsed = 0;
    if (this.total > 0) {
      for (let i = this.lo; i < newLo && i <= this.hi; i++) {
        collapsed += this.counts[i - this.offset]!;
        this.counts[i - this.offset] = 0;
      }
    }
    if (newLo < this.offset || newHi >= this.offset + this.counts.length) this.relocate(newLo, newHi);
    this.counts[newLo - this.offset]! += collapsed;
    this.lo = newLo;
    this.hi = newHi;
  }

  private relocate(newLo: number, newHi: number): void {
    const span = newHi - newLo + 1;
    const capacity = Math.max(span, Math.min(2 * this.limit, Math.max(2 * span, 16)));
    const upwards = this.total === 0 || newHi > this.hi;
    const offset = upwards ? newLo : newHi - capacity + 1;
    const counts = new Float64Array(capacity);
    if (this.total > 0) {
      for (let i = Math.max(this.lo, newLo); i <= Math.min(this.hi, newHi); i++) counts[i - offset] = this.counts[i - this.offset]!;
    }
    this.counts = counts;
    this.offset = offset;
  }
}

const COUNT = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const STORE = z.array(z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER));

const JSON_SCHEMA = z.object({
  kind: z.literal("ddsketch"),
  relativeAccuracy: z.number().gt(0).max(0.5),
  maxBuckets: z.number().int().min(1).max(MAX_MAX_BUCKETS),
  zero: COUNT,
  min: z.number().nullable(),
  max: z.number().nullable(),
  positive: STORE,
  negative: STORE,
});

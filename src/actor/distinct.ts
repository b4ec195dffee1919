/**
 * Distinct count of a property's values in a window (issue 12): exact up to `exactUpTo` values, a
 * HyperLogLog sketch beyond.
 *
 * - Exact mode keeps the values themselves (a Set of the caller's canonical strings), so `count()` is
 *   the true number of distinct values while it is at most `exactUpTo`. Memory: up to `exactUpTo`
 *   strings, so the caller bounds the length of a canonical value.
 * - The (exactUpTo + 1)-th distinct value switches to HyperLogLog with m = 2^precision 6-bit
 *   registers (precision 12 by default: 4,096 registers, 4 KiB here and 4,096 characters as JSON).
 *   The estimate uses Ertl's improved raw estimator ("New cardinality estimation algorithms for
 *   HyperLogLog sketches", 2017), which needs no empirical bias tables and is unbiased from small to
 *   very large counts. Its relative standard error is 1.04/√m (precision 12: 1.63%): about 68% of
 *   estimates are within 1 standard error of the true count, 99.7% within 3. `distinctError()`
 *   reports it. An estimate is never below exactUpTo + 1, which the true count is known to exceed.
 *   It uses only basic arithmetic and Math.sqrt (correctly rounded), so every engine gives the same
 *   count; it is cached until a register changes (~3 µs to compute at precision 12).
 *
 * Merging (hopping, sliding and session windows combine states) gives exactly the state the union of
 * the two value streams gives: exact sets union while within the bound; registers take the maximum.
 * Registers depend only on the set of values seen, never on their order.
 *
 * Hash: a 64-bit hash made of two MurmurHash3_x86_32 lanes (seeds 0 and SEED_B) over the string's
 * UTF-16 code units read as little-endian bytes (2 code units per 32-bit block). Only Math.imul and
 * 32-bit integer operations, so it is identical on Bun, Deno, Workers and any other engine, and
 * reproducible elsewhere from that description. Lane A gives the register index (its top `precision`
 * bits) and the first rank bits, lane B the remaining ones, so ranks use 64 - precision bits and
 * collisions stay negligible far beyond any window's cardinality. MurmurHash3 has seed-independent
 * crafted collisions: a client crafting values could make distinct values count once in HLL mode
 * (only in its own key's estimate; exact mode compares the values themselves).
 */
import { assert } from "../ports/assert.ts";
import { z } from "zod";

export const DEFAULT_PRECISION = 12;
export const MIN_PRECISION = 4;
export const MAX_PRECISION = 16;
/** Beyond this many values, exact mode would use far more memory than any sketch. */
export const MAX_EXACT_UP_TO = 100_000;

const SEED_B = 0x5bd1e995;
const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** Character code → its base64 digit, -1 for anything else. */
const BASE64_DIGIT = Int8Array.from({ length: 128 }, (_, code) => BASE64.indexOf(String.fromCharCode(code)));

export interface DistinctOptions {
  exactUpTo: number;
  precision?: number;
}

/** What a count may be off by: 0 while exact, else the sketch's relative standard error 1.04/√m. */
export interface DistinctError {
  exact: boolean;
  relativeStandardError: number;
}

export type DistinctJSON =
  | { kind: "exact"; exactUpTo: number; precision: number; values: string[] }
  | { kind: "hll"; exactUpTo: number; precision: number; registers: string };

export class DistinctCount {
  readonly precision: number;
  private bound: number;
  private values: Set<string> | null = new Set();
  private registers: Uint8Array | null = null;
  /** The last estimate, until a register changes: rules may read the count after every event. */
  private estimated: number | null = null;

  constructor(options: DistinctOptions) {
    const precision = options.precision ?? DEFAULT_PRECISION;
    assert(Number.isInteger(precision) && precision >= MIN_PRECISION && precision <= MAX_PRECISION, `precision ${precision} in [${MIN_PRECISION}, ${MAX_PRECISION}]`);
    assert(Number.isInteger(options.exactUpTo) && options.exactUpTo >= 0 && options.exactUpTo <= MAX_EXACT_UP_TO, `exactUpTo ${options.exactUpTo} in [0, ${MAX_EXACT_UP_TO}]`);
    this.precision = precision;
    this.bound = options.exactUpTo;
  }

  get exactUpTo(): number {
    return this.bound;
  }

  /** True while `count()` is the exact number of distinct values. */
  get exact(): boolean {
    return this.values !== null;
  }

  /** Adds one value: the caller's canonical string for it (e.g. "s:red", "n:42", "b:true"). */
  add(value: string): void {
    if (this.values) {
      if (this.values.has(value)) return;
      if (this.values.size < this.bound) {
        this.values.add(value);
        return;
      }
      this.toSketch();
    }
    if (addHash(this.registers!, this.precision, value)) this.estimated = null;
  }

  /** The number of distinct values: exact, or the sketch's estimate rounded (see distinctError). */
  count(): number {
    if (this.values) return this.values.size;
    this.estimated ??= Math.round(hllEstimate(this.registers!, this.precision));
    return Math.max(this.bound + 1, this.estimated);
  }

  /**
   * Merges `other` into this one (`other` is unchanged) and returns this. Both must have the same
   * precision; the result keeps the smaller exactUpTo, so it never holds more values than either.
   */
  merge(other: DistinctCount): this {
    assert(other.precision === this.precision, `merge of precisions ${this.precision} and ${other.precision}`);
    this.bound = Math.min(this.bound, other.bound);
    if (this.values && this.values.size > this.bound) this.toSketch();
    if (other.values) {
      for (const value of other.values) this.add(value);
      return this;
    }
    if (this.values) this.toSketch();
    maxInto(this.registers!, other.registers!);
    this.estimated = null;
    return this;
  }

  clone(): DistinctCount {
    const copy = new DistinctCount({ exactUpTo: this.bound, precision: this.precision });
    copy.values = this.values && new Set(this.values);
    copy.registers = this.registers && this.registers.slice();
    return copy;
  }

  /** Compact and canonical: exact values sorted by code unit; registers one base64 character each. */
  toJSON(): DistinctJSON {
    const head = { exactUpTo: this.bound, precision: this.precision };
    if (this.values) return { kind: "exact", ...head, values: [...this.values].sort(byCodeUnit) };
    return { kind: "hll", ...head, registers: encodeRegisters(this.registers!) };
  }

  /** The counter a `toJSON()` gave (e.g. read from a checkpoint); throws on anything else. */
  static fromJSON(json: unknown): DistinctCount {
    const parsed = JSON_SCHEMA.parse(json);
    const counter = new DistinctCount({ exactUpTo: parsed.exactUpTo, precision: parsed.precision });
    if (parsed.kind === "exact") {
      const values = new Set(parsed.values);
      if (values.size !== parsed.values.length || values.size > parsed.exactUpTo) throw new Error("distinct: exact values repeat or exceed exactUpTo");
      counter.values = values;
      return counter;
    }
    counter.values = null;
    counter.registers = decodeRegisters(parsed.registers, parsed.precision);
    if (counter.registers.every((r) => r === 0)) throw new Error("distinct: a sketch without values");
    return counter;
  }

  private toSketch(): void {
    const registers = new Uint8Array(1 << this.precision);
    for (const value of this.values ?? []) addHash(registers, this.precision, value);
    this.values = null;
    this.registers = registers;
    this.estimated = null;
  }
}

/** The error the counter's `count()` carries now. */
export function distinctError(counter: DistinctCount): DistinctError {
  return counter.exact ? { exact: true, relativeStandardError: 0 } : { exact: false, relativeStandardError: hllStandardError(counter.precision) };
}

/** HyperLogLog's relative standard error with 2^precision registers: 1.04/√m. */
export function hllStandardError(precision: number): number {
  return 1.04 / Math.sqrt(2 ** precision);
}

const JSON_SCHEMA = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("exact"),
    exactUpTo: z.number().int().min(0).max(MAX_EXACT_UP_TO),
    precision: z.number().int().min(MIN_PRECISION).max(MAX_PRECISION),
    values: z.array(z.string()),
  }),
  z.object({
    kind: z.literal("hll"),
    exactUpTo: z.number().int().min(0).max(MAX_EXACT_UP_TO),
    precision: z.number().int().min(MIN_PRECISION).max(MAX_PRECISION),
    registers: z.string(),
  }),
]);

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- hashing -------------------------------------------------------------------------------------

/** MurmurHash3_x86_32 of the UTF-16LE bytes of `text` (each code unit as 2 bytes, low byte first). */
export function murmur3(text: string, seed: number): number {
  let h = seed | 0;
  const n = text.length;
  let i = 0;
  for (; i + 1 < n; i += 2) h = stepLane(h, mixBlock(text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16)));
  if (i < n) h ^= mixBlock(text.charCodeAt(i));
  return fmix32(h ^ (n * 2));
}

function mixBlock(k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, 0x1b873593);
}

function stepLane(h: number, k: number): number {
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// ---- HyperLogLog ---------------------------------------------------------------------------------

/** Register index: lane A's top p bits; rank: 1 + leading zeros of the other 64 - p bits (A's rest, then B). */
function addHash(registers: Uint8Array, p: number, value: string): boolean {
  const a = murmur3(value, 0);
  const index = a >>> (32 - p);
  const rest = (a << p) >>> 0;
  // Lane B only matters when lane A's 32 - p rank bits are all zero (probability 2^(p-32)).
  const rank = rest !== 0 ? Math.clz32(rest) + 1 : 32 - p + Math.clz32(murmur3(value, SEED_B)) + 1;
  if (rank <= registers[index]!) return false;
  registers[index] = rank;
  return true;
}

function maxInto(target: Uint8Array, source: Uint8Array): void {
  assert(target.length === source.length, "registers of one precision");
  for (let i = 0; i < target.length; i++) if (source[i]! > target[i]!) target[i] = source[i]!;
}

/** Ertl's improved raw estimator (Algorithm 6 of the paper) over the histogram of register values. */
export function hllEstimate(registers: Uint8Array, p: number): number {
  const m = registers.length;
  const q = 64 - p;
  const histogram = new Array<number>(q + 2).fill(0);
  for (let i = 0; i < m; i++) histogram[registers[i]!]!++;
  let z = m * tau(1 - histogram[q + 1]! / m);
  for (let k = q; k >= 1; k--) z = 0.5 * (z + histogram[k]!);
  z += m * sigma(histogram[0]! / m);
  const alphaInf = 0.5 / Math.LN2;
  return Math.min(2 ** 64, (alphaInf * m * m) / z);
}

function sigma(x: number): number {
  if (x === 1) return Infinity;
  let y = 1;
  let z = x;
  for (;;) {
    x *= x;
    const before = z;
    z += x * y;
    y += y;
    if (z === before) return z;
  }
}

function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  for (;;) {
    x = Math.sqrt(x);
    const before = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
    if (z === before) return z / 3;
  }
}

// ---- serialization -------------------------------------------------------------------------------

/** Registers are below 64 (at most 65 - MIN_PRECISION): one base64 character each. */
function encodeRegisters(registers: Uint8Array): string {
  let out = "";
  for (let i = 0; i < registers.length; i++) out += BASE64[registers[i]!];
  return out;
}

function decodeRegisters(text: string, p: number): Uint8Array {
  const m = 1 << p;
  if (text.length !== m) throw new Error(`distinct: ${text.length} registers for precision ${p} (want ${m})`);
  const registers = new Uint8Array(m);
  for (let i = 0; i < m; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? BASE64_DIGIT[code]! : -1;
    if (value < 0 || value > 65 - p) throw new Error(`distinct: register ${i} is not a rank of precision ${p}`);
    registers[i] = value;
  }
  return registers;
}

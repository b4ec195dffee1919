import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { DEFAULT_PRECISION, DistinctCount, distinctError, hllStandardError, murmur3, type DistinctJSON } from "../../src/actor/distinct.ts";
import { SeededRandom } from "../support/fake-env.ts";

const SE = hllStandardError(DEFAULT_PRECISION);

function counterOf(values: Iterable<string>, exactUpTo: number, precision?: number): DistinctCount {
  const counter = new DistinctCount({ exactUpTo, precision });
  for (const value of values) counter.add(value);
  return counter;
}

/**
 * One seeded trial: `n` distinct values (prefixed by the seed, so trials hash differently), each
 * added once and about a fifth of them again at random points. Returns the relative error.
 */
function trialError(n: number, seed: number, exactUpTo = 100): number {
  const random = new SeededRandom(seed);
  const counter = new DistinctCount({ exactUpTo });
  for (let i = 0; i < n; i++) {
    counter.add(`${seed}/${i}`);
    if (random.chance(0.2)) counter.add(`${seed}/${random.int(i + 1)}`);
  }
  return counter.count() / n - 1;
}

/**
 * The acceptance of a sketch's errors against a claimed standard error `se`: the mean absolute
 * relative error is at most 1.25·se (an unbiased normal estimate gives ≈0.80·se; over 20 trials the
 * mean has a standard deviation of ≈0.13·se, so 1.25·se is 3.4 of them above) and no trial is off by
 * more than 5·se (probability ≈6e-7 per trial). The seeds are fixed, so a run is reproducible.
 */
function accepted(errors: number[], se: number): { meanOk: boolean; maxOk: boolean; mean: number; max: number } {
  const abs = errors.map(Math.abs);
  const mean = abs.reduce((a, b) => a + b, 0) / abs.length;
  const max = Math.max(...abs);
  return { meanOk: mean <= 1.25 * se, maxOk: max <= 5 * se, mean, max };
}

describe("hash", () => {
  test("MurmurHash3_x86_32 of UTF-16LE bytes matches the reference vectors", () => {
    // SMHasher vectors: "" seed 0 and 1; 00 00 00 00; 21 43 65 87; 21 43 (2 bytes = 1 code unit).
    expect(murmur3("", 0)).toBe(0);
    expect(murmur3("", 1)).toBe(0x514e28b7);
    expect(murmur3("\u0000\u0000", 0)).toBe(0x2362f9de);
    expect(murmur3("\u4321\u8765", 0)).toBe(0xf55b516b);
    expect(murmur3("\u4321", 0)).toBe(0xa0f7b07a);
  });
});

describe("exact mode", () => {
  test("count equals the size of a Set of the values, up to exactUpTo", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("__proto__", "constructor", "toString", "", "\u2028"))), (values) => {
        const counter = counterOf(values, values.length);
        expect(counter.exact).toBe(true);
        expect(counter.count()).toBe(new Set(values).size);
        expect(distinctError(counter)).toEqual({ exact: true, relativeStandardError: 0 });
      }),
      { seed: 12, numRuns: 300 },
    );
  });

  test("switches to the sketch at the (exactUpTo + 1)-th distinct value, never below exactUpTo + 1", () => {
    const counter = new DistinctCount({ exactUpTo: 50 });
    for (let i = 0; i < 50; i++) counter.add(`v${i}`);
    counter.add("v0");
    expect(counter.exact).toBe(true);
    expect(counter.count()).toBe(50);
    counter.add("v50");
    expect(counter.exact).toBe(false);
    expect(counter.count()).toBeGreaterThanOrEqual(51);
    expect(distinctError(counter)).toEqual({ exact: false, relativeStandardError: 1.04 / 64 });
  });

  test("a count read between adds follows later adds and merges (the estimate is cached only until a register changes)", () => {
    const counter = new DistinctCount({ exactUpTo: 10 });
    for (let i = 0; i < 5_000; i++) {
      counter.add(`c${i}`);
      if (i % 250 === 0) expect(counter.count()).toBe(DistinctCount.fromJSON(counter.toJSON()).count());
    }
    const before = counter.count();
    counter.merge(counterOf(Array.from({ length: 5_000 }, (_, i) => `d${i}`), 10));
    expect(counter.count()).toBe(DistinctCount.fromJSON(counter.toJSON()).count());
    expect(counter.count()).toBeGreaterThan(before * 1.5);
  });

  test("exactUpTo 0: empty counts 0, then the sketch from the first value", () => {
    const counter = new DistinctCount({ exactUpTo: 0 });
    expect(counter.count()).toBe(0);
    counter.add("a");
    expect(counter.exact).toBe(false);
    expect(counter.count()).toBe(1);
  });
});

describe("HyperLogLog accuracy (precision 12: standard error 1.04/√4096 = 1.625%)", () => {
  test.each([1_000, 10_000, 100_000])("%i distinct values, 20 seeded trials", (n) => {
    const errors = Array.from({ length: 20 }, (_, seed) => trialError(n, n + seed));
    const verdict = accepted(errors, SE);
    expect(verdict).toMatchObject({ meanOk: true, maxOk: true });
  });

  test("1,000,000 distinct values, 3 seeded trials: each within 5 standard errors", () => {
    for (const seed of [1, 2, 3]) expect(Math.abs(trialError(1_000_000, seed))).toBeLessThanOrEqual(5 * SE);
  });

  test("the acceptance rejects a claimed error 8 times too small (so the checks above are not vacuous)", () => {
    const errors = Array.from({ length: 20 }, (_, seed) => trialError(10_000, 10_000 + seed));
    expect(accepted(errors, SE)).toMatchObject({ meanOk: true, maxOk: true });
    const verdict = accepted(errors, SE / 8);
    expect(verdict.meanOk || verdict.maxOk).toBe(false);
  });
});

describe("merge", () => {
  const stream = fc.array(fc.stringMatching(/^[a-z]{1,2}$/), { maxLength: 120 });

  test("merge(a, b) is exactly the counter of the union, in either order", () => {
    fc.assert(
      fc.property(stream, stream, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 4, max: 8 }), (a, b, exactUpTo, precision) => {
        const union = counterOf([...a, ...b], exactUpTo, precision).toJSON();
        expect(counterOf(a, exactUpTo, precision).merge(counterOf(b, exactUpTo, precision)).toJSON()).toEqual(union);
        expect(counterOf(b, exactUpTo, precision).merge(counterOf(a, exactUpTo, precision)).toJSON()).toEqual(union);
      }),
      { seed: 12, numRuns: 400 },
    );
  });

  test("large overlapping streams: registers equal those of the union", () => {
    const a = Array.from({ length: 60_000 }, (_, i) => `u${i}`);
    const b = Array.from({ length: 60_000 }, (_, i) => `u${i + 30_000}`);
    const merged = counterOf(a, 1000).merge(counterOf(b, 1000));
    const union = counterOf([...a, ...b], 1000);
    expect(merged.toJSON()).toEqual(union.toJSON());
    expect(Math.abs(merged.count() / 90_000 - 1)).toBeLessThanOrEqual(5 * SE);
  });

  test("exact + exact stays exact within the bound and switches beyond it; a sketch absorbs exact values", () => {
    const left = counterOf(["a", "b", "c"], 5);
    left.merge(counterOf(["c", "d"], 5));
    expect(left.exact).toBe(true);
    expect(left.count()).toBe(4);
    left.merge(counterOf(["e", "f"], 5));
    expect(left.exact).toBe(false);
    expect(left.toJSON()).toEqual(counterOf(["a", "b", "c", "d", "e", "f"], 5).toJSON());
  });

  test("the merged counter keeps the smaller exactUpTo; the argument is unchanged", () => {
    const small = counterOf(["a", "b"], 2);
    const large = counterOf(["c", "d", "e"], 10);
    const before = large.toJSON();
    small.merge(large);
    expect(large.toJSON()).toEqual(before);
    expect(small.exactUpTo).toBe(2);
    expect(small.toJSON()).toEqual(counterOf(["a", "b", "c", "d", "e"], 2).toJSON());
    expect(counterOf(["a"], 10).merge(counterOf(["b", "c"], 1)).exact).toBe(false);
  });

  test("precisions must match", () => {
    expect(() => counterOf(["a"], 0, 10).merge(counterOf(["a"], 0, 12))).toThrow(/invariant violated/);
  });
});

describe("state", () => {
  test("registers depend on the set of values only, not on order or repeats", () => {
    const values = Array.from({ length: 5_000 }, (_, i) => `x${i}`);
    const random = new SeededRandom(7);
    const shuffled = [...values, ...values.slice(0, 999)];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = random.int(i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    expect(counterOf(shuffled, 10).toJSON()).toEqual(counterOf(values, 10).toJSON());
  });

  test("JSON round-trips in both modes, and the restored counter goes on identically", () => {
    for (const n of [0, 7, 20, 3_000]) {
      const values = Array.from({ length: n }, (_, i) => `k${i}`);
      const counter = counterOf(values, 20);
      const restored = DistinctCount.fromJSON(JSON.parse(JSON.stringify(counter)));
      expect(restored.toJSON()).toEqual(counter.toJSON());
      expect(restored.count()).toBe(counter.count());
      for (const more of ["k1", "new1", "new2"]) {
        counter.add(more);
        restored.add(more);
      }
      expect(restored.toJSON()).toEqual(counter.toJSON());
    }
  });

  test("JSON is canonical and bounded: sorted values while exact, 2^precision characters after", () => {
    expect(counterOf(["b", "a", "c"], 3).toJSON()).toEqual({ kind: "exact", exactUpTo: 3, precision: 12, values: ["a", "b", "c"] });
    for (const n of [100, 100_000]) {
      const json = counterOf(Array.from({ length: n }, (_, i) => `${i}`), 10).toJSON();
      expect(json.kind).toBe("hll");
      expect(JSON.stringify(json).length).toBeLessThan(4_096 + 80);
    }
    expect((counterOf(["a", "b"], 0, 4).toJSON() as { registers: string }).registers).toHaveLength(16);
  });

  test("fromJSON rejects what toJSON cannot give", () => {
    const sketch = counterOf(["a", "b", "c"], 0, 4).toJSON() as Extract<DistinctJSON, { kind: "hll" }>;
    const bad: unknown[] = [
      null,
      { kind: "bloom" },
      { kind: "exact", exactUpTo: 2, precision: 12, values: ["a", "b", "c"] },
      { kind: "exact", exactUpTo: 5, precision: 12, values: ["a", "a"] },
      { kind: "exact", exactUpTo: 5, precision: 3, values: [] },
      { kind: "exact", exactUpTo: 5, precision: 12, values: [1] },
      { ...sketch, registers: sketch.registers.slice(1) },
      { ...sketch, registers: `${sketch.registers.slice(1)}!` },
      { ...sketch, registers: `${sketch.registers.slice(1)}/` },
      { ...sketch, registers: "A".repeat(16) },
    ];
    for (const json of bad) expect(() => DistinctCount.fromJSON(json)).toThrow();
    expect(DistinctCount.fromJSON(sketch).toJSON()).toEqual(sketch);
  });

  test("options are checked", () => {
    expect(() => new DistinctCount({ exactUpTo: -1 })).toThrow(/invariant violated/);
    expect(() => new DistinctCount({ exactUpTo: 1.5 })).toThrow(/invariant violated/);
    expect(() => new DistinctCount({ exactUpTo: 1, precision: 17 })).toThrow(/invariant violated/);
  });
});

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { DEFAULT_MAX_BUCKETS, lnGamma, MAX_MAX_BUCKETS, MIN_INDEXABLE, QuantileSketch, type QuantileOptions } from "../../src/actor/quantiles.ts";
import { SeededRandom } from "../support/fake-env.ts";

const QS = [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.333, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1];
/** Floating-point slack on top of α: the bound is exact in real arithmetic. */
const ROUNDING = 1e-12;

function sketchOf(values: readonly number[], options?: QuantileOptions): QuantileSketch {
  const sketch = new QuantileSketch(options);
  for (const value of values) sketch.add(value);
  return sketch;
}

/** The value of 0-based rank ⌊q·(n − 1)⌋ of the values sorted ascending: what DDSketch guarantees. */
function trueQuantile(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))]!;
}

/**
 * Every q of QS where the sketch's answer is farther from the true quantile x than `alpha`·|x|
 * (values below MIN_INDEXABLE count as zero: for them the allowed error is MIN_INDEXABLE).
 */
function violations(sketch: QuantileSketch, values: readonly number[], alpha: number): Array<{ q: number; want: number; got: number | null }> {
  const sorted = [...values].sort((a, b) => a - b);
  return QS.flatMap((q) => {
    const want = trueQuantile(sorted, q);
    const got = sketch.quantile(q);
    const allowed = Math.max(alpha * Math.abs(want) * (1 + ROUNDING), Math.abs(want) < MIN_INDEXABLE ? MIN_INDEXABLE : 0);
    return got !== null && Math.abs(got - want) <= allowed ? [] : [{ q, want, got }];
  });
}

type Draw = (r: SeededRandom) => number;
const DISTRIBUTIONS: Record<string, Draw> = {
  uniform: (r) => r.next() * 1000,
  exponential: (r) => -Math.log(1 - r.next()) * 250,
  pareto: (r) => 1 / (1 - r.next()) ** (1 / 1.1),
  "latency ms (lognormal-ish)": (r) => Math.exp(3 + 2 * (r.next() + r.next() + r.next() - 1.5)),
  "symmetric with negatives": (r) => (r.next() - 0.5) * 2 ** (r.int(50) - 25),
  "zeros and negatives": (r) => (r.chance(0.3) ? 0 : r.chance(0.5) ? -r.next() * 50 : r.next() * 50),
  "few distinct values (duplicates)": (r) => r.pick([-3, 0, 0.5, 1, 1, 1, 7, 1e6]),
  "1e-8 and 1e8": (r) => (r.chance(0.5) ? 1e-8 : 1e8) * (1 + r.next()),
  "integers 0..9": (r) => r.int(10),
};

function draw(dist: Draw, n: number, seed: number): number[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: n }, () => dist(random));
}

describe("index mapping", () => {
  test("ln γ by its series equals Math.log((1 + α)/(1 − α))", () => {
    for (const alpha of [1e-4, 0.001, 0.01, 0.02, 0.05, 0.1, 0.5]) {
      expect(lnGamma(alpha)).toBeCloseTo(Math.log((1 + alpha) / (1 - alpha)), 14);
    }
  });

  test("every value's bucket reports it within α, and indices increase with the value", () => {
    for (const alpha of [0.001, 0.01, 0.05, 0.5]) {
      const sketch = new QuantileSketch({ relativeAccuracy: alpha });
      const random = new SeededRandom(Math.round(alpha * 1e4));
      const values = Array.from({ length: 20_000 }, () => 2 ** (random.next() * 2040 - 1020) * (1 + random.next())).sort((a, b) => a - b);
      values.push(1, 2, 0.5, 1024, MIN_INDEXABLE, Number.MAX_VALUE / 4);
      let worst = 0;
      for (const v of values) worst = Math.max(worst, Math.abs(sketch.bucketValue(sketch.index(v)) - v) / v);
      expect(worst).toBeLessThanOrEqual(alpha * (1 + ROUNDING));
      const indices = values.slice(0, 20_000).map((v) => sketch.index(v));
      expect(indices.every((index, i) => i === 0 || index >= indices[i - 1]!)).toBe(true);
    }
  });
});

describe("relative-error guarantee: |quantile(q) − x| ≤ α·|x|, x the value of rank ⌊q·(n − 1)⌋", () => {
  for (const [name, dist] of Object.entries(DISTRIBUTIONS)) {
    test(name, () => {
      for (const [n, seed] of [[1, 1], [2, 2], [3, 3], [10, 4], [101, 5], [5_000, 6], [50_000, 7]] as const) {
        const values = draw(dist, n, seed);
        for (const alpha of [0.01, 0.05]) {
          expect({ n, alpha, bad: violations(sketchOf(values, { relativeAccuracy: alpha }), values, alpha) }).toEqual({ n, alpha, bad: [] });
        }
      }
    });
  }

  test("any finite doubles (fast-check): -0, subnormals, extremes, with room for all of them", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 60 }), (values) => {
        expect(violations(sketchOf(values, { maxBuckets: MAX_MAX_BUCKETS }), values, 0.01)).toEqual([]);
      }),
      { seed: 12, numRuns: 500 },
    );
  });

  test("the check rejects a sketch whose α is 5 times the claimed one (so the checks above are not vacuous)", () => {
    const values = draw(DISTRIBUTIONS.exponential!, 5_000, 8);
    expect(violations(sketchOf(values, { relativeAccuracy: 0.05 }), values, 0.05)).toEqual([]);
    expect(violations(sketchOf(values, { relativeAccuracy: 0.05 }), values, 0.01).length).toBeGreaterThan(QS.length / 2);
  });

  test("the minimum and maximum are exact; an empty sketch has no quantiles", () => {
    const sketch = sketchOf([3.3, -7.25, 1e-9, 12345.678]);
    expect([sketch.quantile(0), sketch.quantile(1), sketch.min, sketch.max]).toEqual([-7.25, 12345.678, -7.25, 12345.678]);
    const empty = new QuantileSketch();
    expect([empty.quantile(0.5), empty.min, empty.max, empty.count()]).toEqual([null, null, null, 0]);
  });

  test("zeros, -0 and values below MIN_INDEXABLE are counted as zero", () => {
    const sketch = sketchOf([0, -0, 1e-320, -1e-320, 0]);
    expect(sketch.toJSON()).toMatchObject({ zero: 5, positive: [], negative: [] });
    expect(sketch.quantile(0.5)).toBe(0);
    expect(Object.is(sketchOf([-0]).min, 0)).toBe(true);
  });
});

describe("merge", () => {
  const values = fc.array(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: -5, max: 5 })), { maxLength: 80 });

  test("merge(a, b) is exactly the sketch of the concatenation, in either order (collapse included)", () => {
    fc.assert(
      fc.property(values, values, fc.integer({ min: 1, max: 40 }), (a, b, maxBuckets) => {
        const options = { maxBuckets };
        const whole = sketchOf([...a, ...b], options).toJSON();
        expect(sketchOf(a, options).merge(sketchOf(b, options)).toJSON()).toEqual(whole);
        expect(sketchOf(b, options).merge(sketchOf(a, options)).toJSON()).toEqual(whole);
      }),
      { seed: 12, numRuns: 400 },
    );
  });

  test("large sketches of several distributions", () => {
    const a = draw(DISTRIBUTIONS.pareto!, 30_000, 9);
    const b = draw(DISTRIBUTIONS["symmetric with negatives"]!, 30_000, 10);
    const merged = sketchOf(a).merge(sketchOf(b));
    expect(merged.toJSON()).toEqual(sketchOf([...b, ...a]).toJSON());
    expect(violations(merged, [...a, ...b], 0.01)).toEqual([]);
  });

  test("keeps the smaller maxBuckets; the argument is unchanged; α must match", () => {
    const wide = Array.from({ length: 500 }, (_, i) => 1.1 ** i);
    const small = sketchOf(wide.slice(0, 250), { maxBuckets: 50 });
    const large = sketchOf(wide.slice(250), { maxBuckets: 400 });
    const before = large.toJSON();
    small.merge(large);
    expect(large.toJSON()).toEqual(before);
    expect(small.toJSON()).toEqual(sketchOf(wide, { maxBuckets: 50 }).toJSON());
    expect(sketchOf([1], { maxBuckets: 400 }).merge(sketchOf(wide, { maxBuckets: 50 })).toJSON()).toEqual(sketchOf([1, ...wide], { maxBuckets: 50 }).toJSON());
    expect(() => sketchOf([1]).merge(sketchOf([1], { relativeAccuracy: 0.02 }))).toThrow(/invariant violated/);
  });

  test("the state does not depend on the order of the values", () => {
    const values = draw(DISTRIBUTIONS["symmetric with negatives"]!, 5_000, 11);
    expect(sketchOf([...values].reverse(), { maxBuckets: 100 }).toJSON()).toEqual(sketchOf(values, { maxBuckets: 100 }).toJSON());
  });
});

describe("bounded size: collapsing the lowest buckets", () => {
  /** 10^-300 .. 10^300 of both signs: 1,380 decades, far more than maxBuckets buckets of either sign. */
  const adversarial = draw((r) => (r.chance(0.5) ? -1 : 1) * 10 ** (r.next() * 600 - 300), 100_000, 12);

  test.each([16, 256, DEFAULT_MAX_BUCKETS])("maxBuckets %i: at most maxBuckets buckets a sign; accurate where not collapsed", (maxBuckets) => {
    const sketch = sketchOf(adversarial, { maxBuckets });
    expect(sketch.bucketCount).toBeLessThanOrEqual(2 * maxBuckets);
    const json = sketch.toJSON();
    expect(JSON.stringify(json).length).toBeLessThan(2 * maxBuckets * 8 + 200);
    // Collapsed: values of an index below the lowest bucket kept; they are reported as that bucket.
    const lowest = { positive: json.positive[0]!, negative: json.negative[0]! };
    const sorted = [...adversarial].sort((a, b) => a - b);
    for (const q of [...QS, 0.45, 0.49, 0.51, 0.55]) {
      const want = trueQuantile(sorted, q);
      const got = sketch.quantile(q)!;
      const store = want > 0 ? lowest.positive : lowest.negative;
      const collapsed = sketch.index(Math.abs(want)) < store;
      if (collapsed) expect({ q, got }).toEqual({ q, got: Math.sign(want) * sketch.bucketValue(store) });
      else expect({ q, error: Math.abs(got - want) <= 0.01 * Math.abs(want) * (1 + ROUNDING) }).toEqual({ q, error: true });
    }
  });

  test("monotonically increasing data slides the kept range upwards, still bounded", () => {
    const sketch = new QuantileSketch({ maxBuckets: 64 });
    for (let i = 0; i < 20_000; i++) sketch.add(1.001 ** i);
    expect(sketch.bucketCount).toBe(64);
    expect(sketch.count()).toBe(20_000);
    expect(Math.abs(sketch.quantile(0.99)! / 1.001 ** Math.floor(0.99 * 19_999) - 1)).toBeLessThanOrEqual(0.01);
  });
});

describe("JSON", () => {
  test("round-trips, and the restored sketch goes on identically", () => {
    for (const values of [[], [0], [-1, -1, 5], draw(DISTRIBUTIONS["zeros and negatives"]!, 3_000, 13), draw(DISTRIBUTIONS["1e-8 and 1e8"]!, 1_000, 14), [1e-300, 1e300]]) {
      const sketch = sketchOf(values, { maxBuckets: 300 });
      const restored = QuantileSketch.fromJSON(JSON.parse(JSON.stringify(sketch)));
      expect(restored.toJSON()).toEqual(sketch.toJSON());
      for (const more of [0, 2.5, -1e9]) {
        sketch.add(more);
        restored.add(more);
      }
      expect(restored.toJSON()).toEqual(sketch.toJSON());
    }
  });

  test("clone is independent and equal", () => {
    const sketch = sketchOf(draw(DISTRIBUTIONS["zeros and negatives"]!, 2_000, 15), { maxBuckets: 100 });
    const copy = sketch.clone();
    expect(copy.toJSON()).toEqual(sketch.toJSON());
    copy.add(1e6);
    copy.merge(sketch);
    expect(sketch.toJSON()).toEqual(sketchOf(draw(DISTRIBUTIONS["zeros and negatives"]!, 2_000, 15), { maxBuckets: 100 }).toJSON());
    expect(copy.count()).toBe(4_001);
  });

  test("empty bucket runs are compressed", () => {
    expect(sketchOf([1, 1, 100]).toJSON().positive).toEqual([0, 2, -231, 1]);
  });

  test("fromJSON rejects what toJSON cannot give", () => {
    const good = sketchOf([1, 1, 100, -2]).toJSON();
    const bad: unknown[] = [
      null,
      { ...good, kind: "tdigest" },
      { ...good, relativeAccuracy: 0 },
      { ...good, maxBuckets: 0 },
      { ...good, zero: -1 },
      { ...good, min: null },
      { ...good, min: 200, max: 100 },
      { ...good, positive: [0, -3, 1] },
      { ...good, positive: [0, 1, -3] },
      { ...good, positive: [0, 1, 0, 1] },
      { ...good, positive: [0, 1, -2, -3, 1] },
      { ...good, positive: [0, 1.5] },
      { ...good, positive: [0, 1, -5000, 1] },
      { ...sketchOf([]).toJSON(), min: 1, max: 1 },
    ];
    for (const json of bad) expect(() => QuantileSketch.fromJSON(json)).toThrow();
    expect(QuantileSketch.fromJSON(good).toJSON()).toEqual(good);
  });

  test("options are checked; values must be finite", () => {
    expect(() => new QuantileSketch({ relativeAccuracy: 0 })).toThrow(/invariant violated/);
    expect(() => new QuantileSketch({ relativeAccuracy: 1 })).toThrow(/invariant violated/);
    expect(() => new QuantileSketch({ maxBuckets: 0 })).toThrow(/invariant violated/);
    expect(() => new QuantileSketch().add(Number.NaN)).toThrow(/invariant violated/);
    expect(() => new QuantileSketch().add(Infinity)).toThrow(/invariant violated/);
    expect(() => new QuantileSketch().quantile(1.5)).toThrow(/invariant violated/);
  });
});

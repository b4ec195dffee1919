import { describe, expect, test } from "bun:test";
import { SpaceSaving, TopKeys } from "../../src/metrics/top-keys.ts";
import { Rng } from "../fuzz/rng.ts";

describe("Space-Saving sketch", () => {
  test("exact when the distinct keys fit its capacity", () => {
    const rng = new Rng(7);
    const sketch = new SpaceSaving(50);
    const truth = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const key = `k${rng.int(50)}`;
      sketch.add(key);
      truth.set(key, (truth.get(key) ?? 0) + 1);
    }
    const top = sketch.top(100);
    expect(top.length).toBe(truth.size);
    for (const { key, count, error } of top) {
      expect(count).toBe(truth.get(key)!);
      expect(error).toBe(0);
    }
    const expected = [...truth].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 5);
    expect(sketch.top(5).map((k) => [k.key, k.count])).toEqual(expected);
  });

  test("the Space-Saving guarantee on a skewed random stream: heavy keys kept, counts bounded, error ≤ N/m", () => {
    for (const seed of [1, 2, 3, 42]) {
      const rng = new Rng(seed);
      const capacity = 100;
      const sketch = new SpaceSaving(capacity);
      const truth = new Map<string, number>();
      const n = 50_000;
      for (let i = 0; i < n; i++) {
        // Zipf-like: key rank r with weight ~ 1/r over 10,000 keys (inverse transform on a log scale).
        const rank = Math.floor(Math.exp(rng.next() * Math.log(10_000)));
        const key = `user-${rank}`;
        sketch.add(key);
        truth.set(key, (truth.get(key) ?? 0) + 1);
      }
      expect(truth.size).toBeGreaterThan(capacity * 10);
      expect(sketch.size).toBe(capacity);
      expect(sketch.total).toBe(n);
      const watched = new Map(sketch.top(capacity).map((k) => [k.key, k]));
      let sum = 0;
      for (const { key, count, error } of watched.values()) {
        sum += count;
        const real = truth.get(key)!;
        expect(count - error).toBeLessThanOrEqual(real);
        expect(real).toBeLessThanOrEqual(count);
        expect(error).toBeLessThanOrEqual(n / capacity);
      }
      expect(sum).toBe(n); // every event is in exactly one counter
      for (const [key, real] of truth) if (real > n / capacity) expect(watched.has(key), `${key} (${real} events)`).toBe(true);
      // The heaviest keys come out on top, in order.
      const heaviest = [...truth].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k]) => k);
      expect(sketch.top(3).map((k) => k.key)).toEqual(heaviest);
    }
  });

  test("hostile keys are plain data", () => {
    const sketch = new SpaceSaving(3);
    for (const key of ["__proto__", "constructor", "toString", "__proto__"]) sketch.add(key);
    expect(sketch.top(1)).toEqual([{ key: "__proto__", count: 2, error: 0 }]);
    expect(sketch.size).toBe(3);
  });
});

describe("TopKeys", () => {
  test("one sketch per tenant, and a bounded number of tenants", () => {
    const top = new TopKeys(0, 10, 2);
    top.of("a")!.add("x");
    top.of("a")!.add("x");
    top.of("b")!.add("x");
    expect(top.of("c")).toBeUndefined();
    expect(top.top("a", 10)).toEqual([{ key: "x", count: 2, error: 0 }]);
    expect(top.top("b", 10)).toEqual([{ key: "x", count: 1, error: 0 }]);
    expect(top.top("c", 10)).toEqual([]);
  });
});

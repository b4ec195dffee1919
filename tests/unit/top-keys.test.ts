import { describe, expect, test } from "bun:test";
import { SpaceSaving, TopKeys } from "../../src/metrics/top-keys.ts";
import { Rng } from "../fuzz/rng.ts";
import { inProcessTarget } from "../support/targets.ts";
import { bearer, TEST_KEY_LINES, type KeyName } from "../support/api-keys.ts";
import { routeOf } from "../../src/http/app.ts";

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

describe("GET /v1/top-keys", () => {
  test("the caller's tenant's busiest keys by accepted events (single and batch), read scope, limit in 1..100", async () => {
    const target = inProcessTarget({ KEYFLOW_API_KEYS: TEST_KEY_LINES });
    try {
      const post = (key: KeyName, body: unknown) =>
        target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json", ...bearer(key) }, body: JSON.stringify(body) });
      const ts = Date.now();
      expect((await post("all", { event_id: "e1", event_type: "view", key: "alice", timestamp: ts })).status).toBe(202);
      expect((await post("all", { event_id: "e1", event_type: "view", key: "alice", timestamp: ts })).status).toBe(200); // a duplicate: not counted
      const batch = [1, 2, 3].map((i) => ({ event_id: `b${i}`, event_type: "view", key: "__proto__", timestamp: ts }));
      expect((await post("all", [...batch, { event_type: "BAD", key: "x" }])).status).toBe(200);
      expect((await post("otherTenant", { event_id: "o1", event_type: "view", key: "mallory", timestamp: ts })).status).toBe(202);

      const res = await target.fetch("/v1/top-keys", { headers: bearer("read") });
      expect(res.status).toBe(200);
      const body = (await res.json()) as any;
      expect(body.keys).toEqual([
        { key: "__proto__", events: 3, error_bound: 0 },
        { key: "alice", events: 1, error_bound: 0 },
      ]);
      expect(body.approximate).toBe(true);
      expect(Number.isNaN(Date.parse(body.since))).toBe(false);
      expect(((await (await target.fetch("/v1/top-keys?limit=1", { headers: bearer("read") })).json()) as any).keys).toEqual([{ key: "__proto__", events: 3, error_bound: 0 }]);
      expect(((await (await target.fetch("/v1/top-keys", { headers: bearer("otherTenant") })).json()) as any).keys).toEqual([{ key: "mallory", events: 1, error_bound: 0 }]);

      for (const limit of ["0", "101", "-1", "1.5", "ten", ""]) {
        const bad = await target.fetch(`/v1/top-keys?limit=${limit}`, { headers: bearer("read") });
        expect(bad.status, limit).toBe(400);
        const error = ((await bad.json()) as any).error;
        expect(error.code).toBe("invalid_query");
        expect(JSON.stringify(error)).toContain("limit");
      }
      expect((await target.fetch("/v1/top-keys")).status).toBe(401);
      expect((await target.fetch("/v1/top-keys", { headers: bearer("ingest") })).status).toBe(403);
      expect(routeOf("http://h/v1/top-keys?limit=5")).toBe("/v1/top-keys");
    } finally {
      await target.stop();
    }
  });
});

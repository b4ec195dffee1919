import { describe, expect, test } from "bun:test";
import { Actor } from "../../src/actor/actor.ts";
import { normalizeEvent, type Event } from "../../src/actor/event.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { createApp } from "../../src/http/app.ts";
import { OPEN_ACCESS } from "../../src/http/access.ts";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { fakeEnv, pumpedRequest } from "../support/fake-env.ts";
import { FakeSink } from "../support/fake-sink.ts";

// Regression tests for issue 9's defects 1, 2, 4, 5 and 6: client-chosen strings are data.

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const config: Config = { ...DEFAULT_CONFIG, windows: ["1m", "1h"].map((s) => parseWindowSpec(s) as WindowSpec) };
const HOSTILE_TYPES = ["__proto__", "constructor", "prototype", "tostring", "valueof", "hasownproperty", "__definegetter__"];

function app(overrides: Partial<Config> = {}, sinks: FakeSink[] = []) {
  const fake = fakeEnv(T0 + 60_000);
  const cfg: Config = { ...config, sinks: sinks.map((s) => s.name), ...overrides };
  const host = new ProcessHost({ store: new MemoryKvStore(), config: cfg, clock: fake.clock, random: fake.random, timers: fake.timers, sinks });
  const http = createApp({ backend: host, config: cfg, env: fake.env, host: "memory", access: OPEN_ACCESS });
  const request = pumpedRequest(http, fake.timers);
  const post = (body: unknown) =>
    request("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { host, request, post, fake };
}

const event = (key: string, id: string, type = "purchase", extra: Record<string, unknown> = {}) => ({
  event_id: id,
  event_type: type,
  key,
  timestamp: T0 + 1_000,
  value: 2,
  ...extra,
});

describe("defect 1: event types and keys named like Object.prototype members are plain data", () => {
  test("the actor counts types __proto__, constructor, ... exactly, and Object.prototype stays clean", () => {
    const actor = new Actor("k", config);
    const events: Event[] = HOSTILE_TYPES.flatMap((type, i) => [
      { id: `${type}-a`, assigned: false, type, key: "k", ts: T0 + i, value: 1 },
      { id: `${type}-b`, assigned: false, type, key: "k", ts: T0 + i, value: 3 },
    ]);
    actor.ingest(events, T0 + 10_000);
    const snapshot = actor.snapshot();
    expect([...snapshot.totals.byType]).toEqual(HOSTILE_TYPES.map((t) => [t, 2]));
    const [minute] = actor.openWindows();
    for (const type of HOSTILE_TYPES) expect(minute!.types.get(type)).toEqual({ count: 2, valued: 2, sum: 4, min: 1, max: 3 });
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain("count");
    expect(({} as Record<string, unknown>).count).toBeUndefined();
    // What is persisted comes back the same.
    const rows = new Map<string, string>();
    for (const [k, v] of actor.drainWrites().puts) rows.set(k, v);
    const restored = Actor.restore("k", config, [...rows].sort(), T0 + 10_000);
    expect(JSON.stringify(restored.snapshot())).toBe(JSON.stringify(actor.snapshot()));
  });

  test("over HTTP: a __proto__ event is counted under its name and every route keeps answering", async () => {
    const { post, request } = app();
    for (const [i, type] of HOSTILE_TYPES.entries()) expect((await post(event("__proto__", `e${i}`, type))).status).toBe(202);
    expect((await post(event("constructor", "c1", "constructor"))).status).toBe(202);
    const health = await request("/health");
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe("ok");
    const state = (await (await request("/v1/actors/__proto__")).json()) as { key: string; totals: { events: number; by_type: Record<string, number> } };
    expect(state.key).toBe("__proto__");
    expect(state.totals.events).toBe(HOSTILE_TYPES.length);
    expect(Object.entries(state.totals.by_type)).toEqual(HOSTILE_TYPES.map((t) => [t, 1]));
    const windows = (await (await request("/v1/actors/__proto__/windows?size=1m")).json()) as { windows: Array<{ by_type: Record<string, { count: number }> }> };
    expect(Object.keys(windows.windows[0]!.by_type)).toEqual(HOSTILE_TYPES);
    const typed = (await (await request("/v1/actors/__proto__/windows?size=1m&type=__proto__")).json()) as { windows: Array<{ count: number; sum: number }> };
    expect(typed.windows[0]).toMatchObject({ count: 1, sum: 2 });
    expect((await request("/v1/actors/constructor")).status).toBe(200);
    expect((await request("/v1/actors/prototype")).status).toBe(404);
  });
});

describe("defect 2: keys, ids, types and properties must be well-formed Unicode", () => {
  const lone = "x\ud800";
  const problems = (raw: unknown) => {
    const result = normalizeEvent(raw, config, T0 + 60_000, () => "assigned");
    return result.ok ? [] : result.problems.map((p) => p.field);
  };

  test("a lone surrogate in any client string is refused, naming the field", () => {
    expect(problems(event(lone, "a"))).toEqual(["key"]);
    expect(problems({ ...event("k", "a"), key: undefined, user_id: lone })).toEqual(["user_id"]);
    expect(problems(event("k", lone))).toEqual(["event_id"]);
    expect(problems(event("k", "a", "purchase", { properties: { note: lone } }))).toEqual(["properties"]);
    expect(problems(event("k", "a", "purchase", { properties: { [lone]: 1 } }))).toEqual(["properties"]);
    expect(problems(event("k", "a", "purchase", { properties: { deep: [{ x: "\udc00y" }] } }))).toEqual(["properties"]);
    // Well-formed pairs are fine.
    expect(problems(event("k😀", "a😀", "purchase", { properties: { "ü😀": "😀" } }))).toEqual([]);
  });

  test("over HTTP: 400 naming the key for one event; in a batch only that event is refused", async () => {
    const { post, request } = app();
    const single = await post(event(lone, "a"));
    expect(single.status).toBe(400);
    const body = (await single.json()) as { error: { code: string; details: Array<{ field: string }> } };
    expect(body.error.code).toBe("invalid_event");
    expect(body.error.details.map((d) => d.field)).toEqual(["key"]);
    const batch = await post([event("good", "g1"), event(lone, "b1"), event("good", "g2")]);
    expect(batch.status).toBe(200);
    const result = (await batch.json()) as { accepted: number; rejected: Array<{ index: number; error: { details: Array<{ field: string }> } }> };
    expect(result.accepted).toBe(2);
    expect(result.rejected.map((r) => [r.index, r.error.details[0]!.field])).toEqual([[1, "key"]]);
    expect((await request("/health")).status).toBe(200);
  });
});

describe("defect 4: every accepted key can be read back", () => {
  test('keys "." and ".." are refused at ingest, naming the key', async () => {
    const { post } = app();
    for (const key of [".", ".."]) {
      const res = await post(event(key, "a"));
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { details: Array<{ field: string; message: string }> } };
      expect(body.error.details[0]!.field).toBe("key");
    }
  });

  test("keys with dots, slashes, percent signs and query characters are readable at their encoded path", async () => {
    const { post, request } = app();
    const keys = ["...", ".a", "a/..", "%2F", "%00", "a/b", "?x=1", "#frag", " ", "a%2e%2e", "ü/😀"];
    for (const [i, key] of keys.entries()) expect((await post(event(key, `k${i}`))).status).toBe(202);
    for (const key of keys) {
      const res = await request(`/v1/actors/${encodeURIComponent(key)}`);
      expect(res.status, key).toBe(200);
      expect(((await res.json()) as { key: string }).key).toBe(key);
    }
  });
});

describe("defect 6: an accepted event can reach every sink", () => {
  test("NUL in properties, in a property name or in an event id is refused with 400 naming the field", async () => {
    const { post } = app();
    for (const [raw, field] of [
      [event("k", "a", "purchase", { properties: { note: "a\u0000b" } }), "properties"],
      [event("k", "a", "purchase", { properties: { "a\u0000": 1 } }), "properties"],
      [event("k", "a\u0000"), "event_id"],
      [event("k\u0000", "a"), "key"],
    ] as const) {
      const res = await post(raw);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { details: Array<{ field: string }> } };
      expect(body.error.details.map((d) => d.field)).toEqual([field]);
    }
  });
});

describe("defect 5: a refused batch leaves no trace", () => {
  test("a key first seen in a batch refused by backpressure is still unknown afterwards", async () => {
    const down = new FakeSink("down");
    down.down = 1_000_000;
    const { post, request } = app({ outboxMax: 1 }, [down]);
    expect((await post(event("busy", "b1"))).status).toBe(202);
    const refused = await post([event("busy", "b2"), event("fresh", "f1")]);
    expect(refused.status).toBe(429);
    expect((await request("/v1/actors/fresh")).status).toBe(404);
    expect((await request("/v1/actors/fresh/windows")).status).toBe(404);
    expect((await request("/v1/actors/fresh/outbox")).status).toBe(404);
  });
});

describe("defect 1: no development error page in any mode a user runs", () => {
  test("an error that escapes the app is a JSON 500 that shows nothing of the error", async () => {
    const { bunServeOptions } = await import("../../src/runtimes/bun-serve.ts");
    const secret = "boom at /work/main/src/secret.ts:42";
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void errors.push(args);
    const server = Bun.serve(bunServeOptions("127.0.0.1", 0, () => { throw new Error(secret); }));
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/health`);
      expect(res.status).toBe(500);
      expect(res.headers.get("content-type")).toContain("application/json");
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ error: { code: "internal", message: "internal error" } });
      expect(text).not.toContain("secret");
      expect(errors.length).toBe(1);
    } finally {
      console.error = original;
      server.stop(true);
    }
  });
});

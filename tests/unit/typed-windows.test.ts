import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Actor } from "../../src/actor/actor.ts";
import type { Event } from "../../src/actor/event.ts";
import type { WindowRecord } from "../../src/actor/outbox.ts";
import { SessionWindows } from "../../src/actor/session-windows.ts";
import { SlidingWindows } from "../../src/actor/sliding-windows.ts";
import { AlignedWindows } from "../../src/actor/aligned-windows.ts";
import { aggregateOps } from "../../src/actor/aggregate-ops.ts";
import { parseWindowSpec, type Aggregate, type WindowSpec } from "../../src/actor/windows.ts";
import { windowRecordView, idempotencyKey } from "../../src/delivery/records.ts";
import { WindowRecordViewSchema } from "../../src/http/schemas.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { parseAnalyticsConfig } from "../../src/settings/analytics.ts";
import { lastPerWindow } from "../../src/sinks/postgres/sink.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { createApp } from "../../src/http/app.ts";
import { OPEN_ACCESS } from "../../src/http/access.ts";
import { WindowViewSchema } from "../../src/http/schemas.ts";
import { fakeEnv, pumpedRequest } from "../support/fake-env.ts";
import { FlakyStore } from "../support/flaky-store.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const MIN = 60_000;
const keyWindows = [parseWindowSpec("1m") as WindowSpec];
const analytics = parseAnalyticsConfig(
  {
    types: {
      buy: {
        windows: ["1m", "sliding:5m", "session:3m", "10m"],
        distinct: { path: "properties.sku", exact_up_to: 50 },
        percentiles: [50, 99],
      },
    },
    rules: [
      { name: "burst", type: "buy", window: "sliding:5m", aggregate: "count", op: ">=", threshold: 4 },
      { name: "long_session", type: "buy", window: "session:3m", aggregate: "sum", op: ">", threshold: 100 },
      { name: "many_skus", type: "buy", window: "1m", aggregate: "distinct", op: ">=", threshold: 3 },
      { name: "pricey", type: "buy", window: "10m", aggregate: "p99", op: ">", threshold: 50 },
    ],
  },
  keyWindows,
);
const config = (emit: Config["emit"] = "final"): Config => ({ ...DEFAULT_CONFIG, windows: keyWindows, allowedLatenessMs: MIN, sinks: ["s"], analytics, emit });

const buy = (id: string, ts: number, value: number, sku = "a"): Event => ({ id, assigned: false, type: "buy", key: "k", ts, value, properties: { sku } });
const view = (id: string, ts: number): Event => ({ id, assigned: false, type: "view", key: "k", ts, value: 1 });

function drain(actor: Actor) {
  actor.outbox.markDurable();
  const records = actor.outbox.pending("s", 1_000_000);
  if (records.length) actor.outbox.ack("s", records.at(-1)!.n);
  return records;
}
const windowsOf = (records: ReturnType<typeof drain>) => records.filter((r): r is WindowRecord => r.kind === "window");

describe("per-type windows in the actor", () => {
  test("a type's sliding, session and own-size windows go to sinks with their shape and type; the key's windows keep every type", () => {
    const actor = new Actor("k", config());
    actor.ingest([buy("b1", T0, 10, "a"), view("v1", T0 + 1_000), buy("b2", T0 + 2 * MIN, 20, "b")], T0);
    actor.ingest([view("v2", T0 + 30 * MIN)], T0 + 1);
    const finals = windowsOf(drain(actor));
    const byName = (spec: string) => finals.filter((w) => w.spec === spec);
    expect(byName("1m").every((w) => w.type === undefined && w.shape === "tumbling")).toBe(true);
    const firstMinute = byName("1m").find((w) => w.start === T0)!;
    expect(Object.keys(firstMinute.types).sort()).toEqual(["buy", "view"]);
    expect(firstMinute.extras?.buy).toEqual({ distinct: 1, percentiles: [[50, 10], [99, 10]] });
    const sessions = byName("session:3m");
    expect(sessions.map((w) => [w.type, w.shape, w.start, w.end, w.all.count, w.all.sum, w.final])).toEqual([["buy", "session", T0, T0 + 2 * MIN, 2, 30, true]]);
    expect(sessions[0]!.extras?.buy?.distinct).toBe(2);
    const sliding = byName("sliding:5m");
    expect(sliding.every((w) => w.type === "buy" && w.shape === "sliding" && w.end - w.start === 5 * MIN)).toBe(true);
    expect(sliding.map((w) => w.all.count)).toEqual([1, 2, 1]);
    expect(byName("10m").map((w) => [w.start, w.all.count, w.type])).toEqual([[T0, 2, "buy"]]);
    // Views (never the plain type's windows) carry shape, event_type and the extras, and pass the documented schema.
    const v = windowRecordView(sessions[0]!);
    expect(WindowRecordViewSchema.parse(JSON.parse(JSON.stringify(v)))).toMatchObject({ shape: "session", event_type: "buy", distinct: 2, percentiles: { p50: 10, p99: 10 } });
    expect(windowRecordView(firstMinute).by_type.buy).toMatchObject({ distinct: 1, percentiles: { p50: 10, p99: 10 } });
  });

  test("reads list a type's open and closed windows beside the key's", () => {
    const actor = new Actor("k", config());
    actor.ingest([buy("b1", T0, 10), buy("b2", T0 + MIN, 10, "z")], T0);
    expect(actor.selectWindows({ spec: "session:3m", limit: 10 }).map((w) => [w.type, w.start, w.end, w.figures?.get("buy")?.distinct])).toEqual([["buy", T0, T0 + MIN, 2]]);
    const open1m = actor.selectWindows({ spec: "1m", limit: 10 });
    expect(open1m.map((w) => w.figures?.get("buy")?.distinct)).toEqual([1, 1]);
    actor.tick(T0 + 60 * MIN);
    expect(actor.selectWindows({ spec: "session:3m", limit: 10 })).toHaveLength(1);
    expect(actor.selectWindows({ spec: "session:3m", limit: 10 })[0]).toMatchObject({ closedBy: "idle", type: "buy" });
  });

  test("emit=updates: a session merge retracts the sessions it supersedes; a sink applying records in order ends with the final sessions", () => {
    const actor = new Actor("k", config("updates"));
    actor.ingest([buy("b1", T0, 1)], T0);
    actor.ingest([buy("b2", T0 + 4 * MIN, 2)], T0 + 1);
    actor.ingest([buy("b3", T0 + 2 * MIN, 3)], T0 + 2); // bridges both: one session [T0, T0+4m]
    actor.ingest([buy("b4", T0 + 40 * MIN, 4)], T0 + 3);
    const records = windowsOf(drain(actor)).filter((w) => w.spec === "session:3m");
    const retracted = records.filter((w) => w.retracted);
    expect(retracted.map((w) => [w.start, w.end])).toEqual([
      [T0, T0],
      [T0 + 4 * MIN, T0 + 4 * MIN],
    ]);
    // Postgres' reduction: per row (start) the batch's last record; Redis and Kafka apply in order.
    const table = new Map<number, WindowRecord>();
    const { upserts, retractions } = lastPerWindow(records);
    for (const r of retractions) if ((table.get(r.start)?.revision ?? 0) <= r.revision) table.delete(r.start);
    for (const u of upserts) if ((table.get(u.start)?.revision ?? 0) < u.revision) table.set(u.start, u);
    expect([...table.values()].map((w) => [w.start, w.end, w.all.count, w.final])).toEqual([
      [T0, T0 + 4 * MIN, 3, true],
      [T0 + 40 * MIN, T0 + 40 * MIN, 1, false],
    ]);
    expect(new Set(records.map(idempotencyKey)).size).toBe(records.length);
  });

  test("rules fire on sliding counts, session sums, distinct counts and percentiles, once per window", () => {
    const actor = new Actor("k", config());
    actor.ingest([buy("b1", T0, 50, "a"), buy("b2", T0 + 10_000, 60, "b"), buy("b3", T0 + 20_000, 700, "c"), buy("b4", T0 + 30_000, 1, "a")], T0);
    actor.ingest([buy("b5", T0 + 40_000, 1, "d")], T0 + 1);
    actor.tick(T0 + 60 * MIN);
    const alerts = actor.recentAlerts().map((a) => [a.rule, a.window.shape, a.window.start, Math.round(a.value), a.eventId]);
    // p99 is the value of rank floor(0.99 (n - 1)) within 1%: 60 once a third value is in.
    expect(alerts).toEqual([
      ["long_session", "session:3m", T0, 110, "b2"],
      ["many_skus", "1m", T0, 3, "b3"],
      ["pricey", "10m", T0, 60, "b3"],
      // Every distinct sliding window of 4 or more buys fires once: b1-b4, b1-b5 and the one after b1 (b2-b5).
      ["burst", "sliding:5m", T0 + 30_000 - 5 * MIN, 4, "b4"],
      ["burst", "sliding:5m", T0 + 40_000 - 5 * MIN, 5, "b5"],
      ["burst", "sliding:5m", T0 + 1, 4, "b5"],
    ]);
    expect(new Set(actor.recentAlerts().map((a) => `${a.rule} ${a.window.start}`)).size).toBe(alerts.length);
  });

  test("late events: a type's windows judge lateness by the key's watermark, whatever the batching", () => {
    const events = [buy("b1", T0, 1), view("v1", T0 + 20 * MIN), buy("b2", T0 + 5_000, 2)];
    const together = new Actor("k", config());
    const apart = new Actor("k", config());
    const outcomes = together.ingest(events, T0);
    const outcomesApart = events.map((e) => apart.ingest([e], T0)[0]!);
    expect(outcomes).toEqual(outcomesApart);
    expect(outcomes[2]).toEqual({ status: "accepted", late: true });
    // b2 is 20 minutes behind: past every window of b1's (session b1 closed at T0 + 3m + 1m lateness).
    expect(together.lateLog()[0]!.missed).toEqual(["1m", "sliding:5m", "session:3m", "10m"]);
    const finals = (a: Actor) => windowsOf(drain(a)).map((w) => [w.spec, w.type, w.start, w.end, w.all.count]);
    together.tick(T0 + 60 * MIN);
    apart.tick(T0 + 60 * MIN);
    expect(finals(together)).toEqual(finals(apart));
  });

  test("on random streams, the actor's per-type windows are those of the window stores fed alone, through checkpoints", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dt: fc.integer({ min: -3 * MIN, max: 2 * MIN }), value: fc.integer({ min: 0, max: 9 }), other: fc.boolean(), batch: fc.boolean(), restore: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        (steps) => {
          const lateness = MIN;
          const stores = {
            "sliding:5m": new SlidingWindows(5 * MIN, lateness, aggregateOps),
            "session:3m": new SessionWindows(3 * MIN, lateness, aggregateOps),
            "10m": new AlignedWindows(10 * MIN, 10 * MIN, lateness, aggregateOps),
          };
          const expected: Array<[string, number, number, Aggregate]> = [];
          let actor = new Actor("k", config());
          const rows = new Map<string, string>();
          let ts = T0;
          let watermark: number | null = null;
          let n = 0;
          let batch: Event[] = [];
          const collect = (spec: string, ws: Array<{ start: number; end: number; aggregate: Aggregate }>) => {
            for (const w of ws) expected.push([spec, w.start, w.end, w.aggregate]);
          };
          const flush = () => {
            if (!batch.length) return;
            actor.ingest(batch, T0);
            batch = [];
            for (const [spec, store] of Object.entries(stores)) collect(spec, store.close(watermark!));
          };
          for (const step of steps) {
            ts += step.dt;
            const e = step.other ? view(`e${n++}`, ts) : buy(`e${n++}`, ts, step.value);
            if (!step.other) {
              for (const store of Object.values(stores)) {
                if (watermark !== null) store.advance(watermark);
                store.add(ts, step.value);
              }
            }
            watermark = watermark === null ? ts : Math.max(watermark, ts);
            batch.push(e);
            if (!step.batch) flush();
            if (step.restore) {
              flush();
              // Storage: every drain's puts and deletes, applied in order.
              const writes = actor.drainWrites({ inlineRefs: true });
              for (const [k, v] of writes.puts) rows.set(k, v);
              for (const k of writes.deletes) rows.delete(k);
              const pending = actor.outbox;
              actor = Actor.restore("k", config(), [...rows].sort(([a], [b]) => (a < b ? -1 : 1)), T0);
              actor.outbox = pending;
            }
          }
          flush();
          const got = windowsOf(drain(actor))
            .filter((w) => w.type === "buy")
            .map((w) => [w.spec, w.start, w.end, w.all] as const);
          const norm = (rows: ReadonlyArray<readonly [string, number, number, Aggregate]>) =>
            rows.map(([spec, start, end, a]) => `${spec} ${start} ${end} ${a.count} ${a.sum} ${a.min} ${a.max}`).sort();
          expect(norm(got)).toEqual(norm(expected));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("reads over HTTP", () => {
  test("GET /v1/actors/:key/windows?size=session:3m lists a type's own windows with shape, event_type and extras; an unknown shape is a 400 naming size", async () => {
    const fake = fakeEnv(T0);
    const cfg = config();
    const runtime = new ProcessHost({ store: new FlakyStore(), config: cfg, clock: fake.clock, random: fake.random, timers: fake.timers });
    const app = createApp({ backend: runtime, config: cfg, env: fake.env, host: "memory", access: OPEN_ACCESS });
    const request = pumpedRequest(app, fake.timers);
    const batch = [
      { event_id: "b1", event_type: "buy", key: "k", timestamp: T0, value: 5, properties: { sku: "a" } },
      { event_id: "b2", event_type: "buy", key: "k", timestamp: T0 + MIN, value: 7, properties: { sku: "b" } },
    ];
    expect((await request("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(batch) })).status).toBe(200);
    const res = await request("/v1/actors/k/windows?size=session:3m");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { windows: unknown[] };
    expect(body.windows).toHaveLength(1);
    const w = WindowViewSchema.parse(body.windows[0]);
    expect(w).toMatchObject({ size: "session:3m", shape: "session", event_type: "buy", count: 2, sum: 12, distinct: 2, closed: false });
    const keyWindows = (await (await request("/v1/actors/k/windows?size=1m")).json()) as { windows: Array<{ shape: string; by_type: Record<string, { distinct?: number }> }> };
    expect(keyWindows.windows.map((x) => [x.shape, x.by_type.buy?.distinct])).toEqual([
      ["tumbling", 1],
      ["tumbling", 1],
    ]);
    const bad = await request("/v1/actors/k/windows?size=sliding:7m");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { details: Array<{ field: string }> } }).error.details[0]!.field).toBe("size");
  });
});

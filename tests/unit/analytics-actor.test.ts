import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Actor } from "../../src/actor/actor.ts";
import { ACTOR_ROW } from "../../src/actor/layout.ts";
import type { Event } from "../../src/actor/event.ts";
import type { EventRecord } from "../../src/actor/outbox.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { eventRecordView } from "../../src/delivery/records.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { parseAnalyticsConfig } from "../../src/settings/analytics.ts";
import { FakeSink } from "../support/fake-sink.ts";
import { FlakyStore } from "../support/flaky-store.ts";
import { fakeEnv } from "../support/fake-env.ts";
import { ROOT } from "../support/process.ts";
import { alertRecordView } from "../../src/delivery/records.ts";
import { AlertRecordViewSchema } from "../../src/http/schemas.ts";
import { createApp } from "../../src/http/app.ts";
import { OPEN_ACCESS } from "../../src/http/access.ts";
import { pumpedRequest } from "../support/fake-env.ts";
import { sseReader } from "../support/sse.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const windows = [parseWindowSpec("1m") as WindowSpec, parseWindowSpec("1h") as WindowSpec];
const example = parseAnalyticsConfig(JSON.parse(readFileSync(`${ROOT}docs/keyflow.config.example.json`, "utf8")), windows);
const config: Config = { ...DEFAULT_CONFIG, windows, sinks: ["s"], analytics: example };

const purchase = (id: string, amount: number, ts = T0): Event => ({ id, assigned: false, type: "purchase", key: "k", ts, value: amount, properties: { amount } });
const view = (id: string): Event => ({ id, assigned: false, type: "page_view", key: "k", ts: T0, value: 1 });

/** The event records an actor put in its outbox, as sinks get them. */
const eventRecords = (actor: Actor) => actor.outbox.pending("s", 100).filter((r): r is EventRecord => r.kind === "event");

describe("enrichment in the actor (docs/keyflow.config.example.json)", () => {
  test("an event over 1,000 is high_value; the key's first purchase is first_purchase; the records carry it", () => {
    const actor = new Actor("k", config);
    actor.ingest([view("v1"), purchase("p1", 1_500), purchase("p2", 20), purchase("p1", 1_500)], T0);
    actor.outbox.markDurable();
    const records = eventRecords(actor);
    expect(records.map((r) => [r.id, r.enriched === undefined ? undefined : { ...r.enriched }])).toEqual([
      ["v1", undefined],
      ["p1", { high_value: true, first_purchase: true }],
      ["p2", undefined],
    ]);
    expect(JSON.parse(JSON.stringify(eventRecordView(records[1]!))).enriched).toEqual({ high_value: true, first_purchase: true });
  });

  test("first_purchase holds across a restart: the actor's accepted types are its persisted totals", () => {
    const actor = new Actor("k", config);
    actor.ingest([purchase("p1", 10)], T0);
    const rows = new Map<string, string>();
    for (const [k, v] of actor.drainWrites({ inlineRefs: true }).puts) rows.set(k, v);
    const restored = Actor.restore("k", config, [...rows].sort(([a], [b]) => (a < b ? -1 : 1)), T0);
    restored.ingest([purchase("p2", 10)], T0);
    restored.outbox.markDurable();
    expect(eventRecords(restored).find((r) => r.id === "p2")!.enriched).toBeUndefined();
  });

  test("a type's measure comes from its configured path; other types keep value", () => {
    const measured = parseAnalyticsConfig({ types: { purchase: { measure: "properties.amount" } } }, windows);
    const actor = new Actor("k", { ...config, analytics: measured });
    actor.ingest([{ ...purchase("p1", 0), value: 5, properties: { amount: 99 } }, { ...view("v1"), value: 7 }, { ...purchase("p2", 0), properties: { amount: "lots" } }], T0);
    const [w] = actor.selectWindows({ spec: "1m", limit: 10 });
    expect(w!.all).toMatchObject({ count: 3, valued: 2, sum: 106 });
  });

  test("without a configuration file, events are aggregated and recorded as they come", () => {
    const actor = new Actor("k", { ...config, analytics: undefined });
    actor.ingest([purchase("p1", 1_500)], T0);
    actor.outbox.markDurable();
    expect(eventRecords(actor)[0]!.enriched).toBeUndefined();
  });
});

describe("the process host", () => {
  test("records stored as journal references keep their enrichment through a checkpoint and a crash", async () => {
    const store = new FlakyStore();
    const sink = new FakeSink("s");
    sink.down = 1_000_000;
    const start = (at: number) => {
      const fake = fakeEnv(at);
      return { runtime: new ProcessHost({ store, config: { ...config, checkpointIntervalMs: 1_000 }, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [sink] }), ...fake };
    };
    const run = async (h: ReturnType<typeof start>, totalMs: number) => {
      for (let t = 0; t < totalMs; t += 10) {
        h.timers.advance(10);
        for (let i = 0; i < 4; i++) await Bun.sleep(0);
      }
    };
    let host = start(T0);
    const result = host.runtime.ingest([purchase("p1", 1_500), purchase("p2", 20)]);
    host.timers.advance(0);
    await result;
    await run(host, 1_500);
    expect(store.list("").some(([k, v]) => k.includes("ob/") && v.includes('"ref":') && v.includes("high_value"))).toBe(true);
    host = start(host.clock.now() + 1); // a crash: memory and timers gone
    sink.down = 0;
    await run(host, 2_000);
    expect(sink.order.map((r) => [(r as EventRecord).id, (r as EventRecord).enriched])).toEqual([
      ["p1", { high_value: true, first_purchase: true }],
      ["p2", undefined],
    ]);
  });
});

describe("detection rules in the actor", () => {
  const rules = parseAnalyticsConfig(
    {
      types: { purchase: { windows: ["1m"] } },
      rules: [
        { name: "burst", type: "purchase", window: "1m", aggregate: "count", op: ">", threshold: 3 },
        { name: "big", type: "purchase", window: "1m", aggregate: "sum", op: ">=", threshold: 100 },
      ],
    },
    [parseWindowSpec("1m") as WindowSpec],
  );
  const ruleConfig: Config = { ...DEFAULT_CONFIG, windows: [parseWindowSpec("1m") as WindowSpec], allowedLatenessMs: 0, analytics: rules };

  test("a threshold fires once per window, at the event that crossed it, with that event's id; again in the next window", () => {
    const actor = new Actor("k", ruleConfig);
    actor.ingest([purchase("p1", 10), purchase("p2", 10), view("v1"), purchase("p3", 10)], T0);
    expect(actor.recentAlerts()).toEqual([]);
    actor.ingest([purchase("p4", 10), purchase("p5", 70), purchase("p6", 5)], T0 + 1);
    expect(actor.recentAlerts().map((a) => [a.rule, a.eventId, a.value, a.window.start])).toEqual([
      ["burst", "p4", 4, T0],
      ["big", "p5", 110, T0],
    ]);
    actor.ingest([purchase("q1", 1, T0 + 60_000), purchase("q2", 1, T0 + 60_000), purchase("q3", 1, T0 + 60_000), purchase("q4", 1, T0 + 60_000)], T0 + 2);
    expect(actor.recentAlerts().map((a) => [a.rule, a.eventId, a.window.start])).toEqual([
      ["burst", "p4", T0],
      ["big", "p5", T0],
      ["burst", "q4", T0 + 60_000],
    ]);
    const shown = alertRecordView(actor.recentAlerts()[0]!);
    expect(AlertRecordViewSchema.safeParse(JSON.parse(JSON.stringify(shown))).success).toBe(true);
    expect(shown).toMatchObject({ kind: "alert", key: "k", rule: "burst", window: { shape: "1m" }, aggregate: "count", event_id: "p4" });
  });

  test("a restart fires nothing twice: the detector's state and the recent alerts are checkpointed", () => {
    const actor = new Actor("k", ruleConfig);
    actor.ingest([purchase("p1", 1), purchase("p2", 1), purchase("p3", 1), purchase("p4", 1)], T0);
    expect(actor.recentAlerts()).toHaveLength(1);
    const rows = new Map<string, string>();
    for (const [k, v] of actor.drainWrites({ inlineRefs: true }).puts) rows.set(k, v);
    const restored = Actor.restore("k", ruleConfig, [...rows].sort(([a], [b]) => (a < b ? -1 : 1)), T0);
    restored.ingest([purchase("p5", 1), purchase("p6", 1)], T0 + 1);
    expect(restored.recentAlerts().map((a) => a.eventId)).toEqual(["p4"]);
  });

  test("recent alerts are segment rows of the new alerts; a legacy alerts row (with `recent`) reads the same and is migrated", () => {
    const actor = new Actor("k", ruleConfig);
    actor.ingest([purchase("p1", 1), purchase("p2", 1), purchase("p3", 1), purchase("p4", 1)], T0);
    const first = actor.drainWrites({ inlineRefs: true });
    const alertRows = first.puts.filter(([k]) => k.startsWith(ACTOR_ROW.alertPrefix));
    expect(alertRows.map(([, v]) => (JSON.parse(v) as Array<{ eventId: string }>).map((a) => a.eventId))).toEqual([["p4"]]);
    expect(JSON.parse(new Map(first.puts).get(ACTOR_ROW.alerts)!)).not.toHaveProperty("recent");

    // The store as a version before alert segments left it: the alerts in the detector's row.
    const legacy = new Map(first.puts.filter(([k]) => !k.startsWith(ACTOR_ROW.alertPrefix)));
    const detectorRow = JSON.parse(legacy.get(ACTOR_ROW.alerts)!) as { detector: unknown };
    legacy.set(ACTOR_ROW.alerts, JSON.stringify({ ...detectorRow, recent: JSON.parse(alertRows[0]![1]) }));
    const restored = Actor.restore("k", ruleConfig, [...legacy].sort(([a], [b]) => (a < b ? -1 : 1)), T0);
    expect(restored.recentAlerts().map((a) => a.eventId)).toEqual(["p4"]);
    const migrated = restored.drainWrites({ inlineRefs: true });
    expect(JSON.parse(new Map(migrated.puts).get(ACTOR_ROW.alerts)!)).not.toHaveProperty("recent");
    expect(migrated.puts.filter(([k]) => k.startsWith(ACTOR_ROW.alertPrefix)).map(([, v]) => (JSON.parse(v) as Array<{ eventId: string }>).map((a) => a.eventId))).toEqual([["p4"]]);
    // And nothing fires twice after it.
    restored.ingest([purchase("p5", 1)], T0 + 1);
    expect(restored.recentAlerts().map((a) => a.eventId)).toEqual(["p4"]);
  });

  test("the process host serves them at GET /v1/actors/:key/alerts and in the live view as event: alert", async () => {
    const fake = fakeEnv(T0);
    const runtime = new ProcessHost({ store: new FlakyStore(), config: ruleConfig, clock: fake.clock, random: fake.random, timers: fake.timers });
    const app = createApp({ backend: runtime, config: ruleConfig, env: fake.env, host: "memory", access: OPEN_ACCESS });
    const live = sseReader(await pumpedRequest(app, fake.timers)("/v1/actors/k/live"));
    const post = pumpedRequest(app, fake.timers);
    const batch = [1, 2, 3, 4].map((i) => ({ event_id: `p${i}`, event_type: "purchase", key: "k", timestamp: T0, value: 1 }));
    expect((await post("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(batch) })).status).toBe(200);
    const alert = await live.until((m) => m.event === "alert");
    expect(JSON.parse(alert.data)).toMatchObject({ rule: "burst", event_id: "p4", value: 4 });
    await live.cancel();
    const listed = (await (await post("/v1/actors/k/alerts")).json()) as any;
    expect(listed.alerts.map((a: any) => [a.rule, a.event_id])).toEqual([["burst", "p4"]]);
  });
});

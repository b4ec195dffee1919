import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/http/app.ts";
import { accessFor, OPEN_ACCESS } from "../../src/http/access.ts";
import { readSettings } from "../../src/settings/env.ts";
import { createHash } from "node:crypto";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { BackpressureError } from "../../src/actor/errors.ts";
import type { Event } from "../../src/actor/event.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { fakeEnv } from "../support/fake-env.ts";
import { FakeSink } from "../support/fake-sink.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);

function setup(sinks: FakeSink[], overrides: Partial<Config> = {}, store = new MemoryKvStore()) {
  const fake = fakeEnv(T0);
  const config: Config = {
    ...DEFAULT_CONFIG,
    windows: [parseWindowSpec("1m") as WindowSpec],
    allowedLatenessMs: 0,
    sinks: sinks.map((s) => s.name),
    delivery: { ...DEFAULT_CONFIG.delivery, batchSize: 50, backoffBaseMs: 50, backoffMaxMs: 1_000, breakerThreshold: 3, breakerCooldownMs: 500 },
    ...overrides,
  };
  const runtime = new ProcessHost({ store, config, clock: fake.clock, random: fake.random, timers: fake.timers, sinks });
  /** Moves virtual time in small steps, letting promises settle between them. */
  const run = async (ms: number, step = 10) => {
    for (let t = 0; t < ms; t += step) {
      fake.timers.advance(step);
      for (let i = 0; i < 5; i++) await Bun.sleep(0);
    }
  };
  const ingest = async (events: Event[]) => {
    const p = runtime.ingest(events);
    fake.timers.advance(0);
    return p;
  };
  return { ...fake, config, runtime, store, run, ingest };
}

const ev = (key: string, i: number, value = i): Event => ({ id: `${key}-${i}`, assigned: false, type: "buy", key, ts: T0 + i * 1_000, value });
const keys = ["a", "b", "c", "d"];
const batch = (from: number, to: number) => keys.flatMap((k) => Array.from({ length: to - from }, (_, j) => ev(k, from + j)));
const expectedIds = (k: string, count: number) => Array.from({ length: count }, (_, i) => `${k}-${i}`);

describe("ProcessHost delivery", () => {
  test("accepted events reach every sink once, in per-key order, within the max delay", async () => {
    const sinks = [new FakeSink("one"), new FakeSink("two")];
    const { ingest, run } = setup(sinks);
    await ingest(batch(0, 30));
    expect(sinks[0]!.calls).toHaveLength(0);
    await run(150);
    for (const sink of sinks) for (const k of keys) expect(sink.eventIds(k)).toEqual(expectedIds(k, 30));
  });

  test("outage: the breaker opens, ingest goes on, and on recovery everything arrives once, in order", async () => {
    const redis = new FakeSink("redis");
    const other = new FakeSink("other");
    const { ingest, run, runtime } = setup([redis, other]);
    redis.down = 1_000_000;
    for (let i = 0; i < 10; i++) {
      await ingest(batch(i * 5, i * 5 + 5));
      await run(200);
    }
    const status = (await runtime.outbox("a"))!.sinks.find((s) => s.sink === "redis")!;
    expect(status.breaker).not.toBe("closed");
    expect(status.breaker_opened).toBeGreaterThanOrEqual(1);
    // The healthy sink was not held back.
    for (const k of keys) expect(other.eventIds(k)).toEqual(expectedIds(k, 50));
    expect(redis.applied.size).toBe(0);
    redis.down = 0;
    await run(3_000);
    for (const k of keys) expect(redis.eventIds(k)).toEqual(expectedIds(k, 50));
    const after = (await runtime.outbox("a"))!;
    expect(after.backlog).toEqual({ redis: 0, other: 0 });
    expect(after.sinks.find((s) => s.sink === "redis")).toMatchObject({ breaker: "closed", breaker_closed: 1 });
  });

  test("an unknown outcome (applied, then a timeout) is redelivered with no second effect", async () => {
    const sink = new FakeSink("s");
    sink.lieNext = 3;
    const { ingest, run } = setup([sink]);
    await ingest(batch(0, 20));
    await run(3_000);
    expect(sink.calls.length).toBeGreaterThan(3);
    for (const k of keys) expect(sink.eventIds(k)).toEqual(expectedIds(k, 20));
    expect(sink.applied.size).toBe(80);
  });

  test("a crash after the commit and before the send: the restarted host delivers what was acknowledged", async () => {
    const store = new MemoryKvStore();
    const before = new FakeSink("s");
    const first = setup([before], {}, store);
    await first.ingest(batch(0, 10));
    expect(before.calls).toHaveLength(0); // crashed here: no close(), no delivery
    const after = new FakeSink("s");
    const second = setup([after], {}, store);
    await second.run(200);
    for (const k of keys) expect(after.eventIds(k)).toEqual(expectedIds(k, 10));
  });

  test("GET /ready: ok, degraded while retrying, down with the breaker open, 503 once down longer than configured; details for operators only", async () => {
    const sink = new FakeSink("s");
    const { ingest, runtime, config, env, run } = setup([sink], { readySinkDownAfterMs: 2_000 });
    const metricsKey = "kf_ready_test_key_0123456789";
    const { auth } = readSettings({ KEYFLOW_API_KEYS: `ops:metrics:${createHash("sha256").update(metricsKey).digest("hex")}` });
    const app = createApp({ backend: runtime, config, env, host: "memory", access: accessFor(auth, true) });
    const ready = async (withKey = true) => {
      const res = await app.request("/ready", withKey ? { headers: { authorization: `Bearer ${metricsKey}` } } : {});
      return { status: res.status, body: (await res.json()) as any };
    };
    await ingest(batch(0, 2));
    await run(200);
    expect(await ready()).toMatchObject({ status: 200, body: { status: "ready", sinks: [{ sink: "s", status: "ok", last_error: null }] } });
    expect((await ready()).body.sinks[0].latency_ms).toBeNumber();
    sink.down = 1_000_000;
    await ingest(batch(2, 4));
    /** Steps virtual time until the sink's readiness leaves `status` (bounded). */
    const until = async (leaves: string) => {
      for (let i = 0; i < 2_000; i++) {
        const r = await ready();
        if (r.body.sinks[0].status !== leaves) return r;
        await run(1, 1);
      }
      throw new Error(`still ${leaves}`);
    };
    // The first failure leaves the breaker closed (threshold 3): degraded, with the error.
    const degraded = await until("ok");
    expect(degraded.body.sinks[0]).toMatchObject({ status: "degraded" });
    expect(degraded.body.sinks[0].last_error).toContain("connection refused");
    expect((await until("degraded")).body.sinks[0]).toMatchObject({ status: "down" });
    expect((await ready()).status).toBe(200); // down, not yet for 2 s
    await run(2_500);
    const notReady = await ready();
    expect(notReady).toMatchObject({ status: 503, body: { status: "not_ready" } });
    expect(notReady.body.sinks[0].down_for_s).toBeGreaterThanOrEqual(2);
    // Without the metrics scope: the verdict only, no errors.
    expect(await ready(false)).toEqual({ status: 503, body: { status: "not_ready" } });
    sink.down = 0;
    await run(3_000);
    expect(await ready()).toMatchObject({ status: 200, body: { status: "ready", sinks: [{ status: "ok" }] } });
  });

  test("backpressure: over the outbox bound ingest is refused with 429 and Retry-After; nothing is dropped", async () => {
    const sink = new FakeSink("s");
    sink.down = 1_000_000;
    const { ingest, runtime, config, env, run, timers } = setup([sink], { outboxMax: 5 });
    await ingest(batch(0, 5)); // 5 records for each key
    await expect(ingest([ev("a", 100)])).rejects.toBeInstanceOf(BackpressureError);
    const app = createApp({ backend: runtime, config, env, host: "memory", access: OPEN_ACCESS });
    const res = await app.request("/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ event_id: "x", event_type: "buy", user_id: "b", timestamp: T0 }),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as any).error.code).toBe("backpressure");
    sink.down = 0;
    await run(3_000);
    await ingest([ev("a", 100)]);
    timers.advance(0);
    await run(200);
    expect(sink.eventIds("a")).toEqual([...expectedIds("a", 5), "a-100"]);
  });

  test("a poison record is dead-lettered, listed, and replayed once the sink accepts it", async () => {
    const sink = new FakeSink("s");
    sink.poison = (r) => r.kind === "event" && r.id === "a-3";
    const { ingest, run, runtime, config, env } = setup([sink]);
    await ingest(batch(0, 6));
    await run(300);
    expect(sink.eventIds("a")).toEqual(["a-0", "a-1", "a-2", "a-4", "a-5"]);
    const app = createApp({ backend: runtime, config, env, host: "memory", access: OPEN_ACCESS });
    const dlq = (await (await app.request("/v1/actors/a/dlq")).json()) as any;
    expect(dlq.dead_letters).toHaveLength(1);
    expect(dlq.dead_letters[0]).toMatchObject({ id: 0, sink: "s", record: { kind: "event", event_id: "a-3" } });
    expect(dlq.dead_letters[0].error).toContain("payload refused");

    sink.poison = () => false;
    const replaying = app.request("/v1/actors/a/dlq/replay?sink=s", { method: "POST" });
    await run(300); // the replay's commit and the delivery both run on virtual time
    expect(await (await replaying).json()).toEqual({ key: "a", replayed: 1 });
    expect(sink.eventIds("a")).toEqual(["a-0", "a-1", "a-2", "a-4", "a-5", "a-3"]);
    expect(((await (await app.request("/v1/actors/a/dlq")).json()) as any).dead_letters).toEqual([]);
    const bad = await app.request("/v1/actors/a/dlq/replay?sink=nope", { method: "POST" });
    expect(bad.status).toBe(400);
  });

  test("defect 13: a clean stop once every sink has every event leaves no journal, outbox rows or backlog marks", async () => {
    const sinks = [new FakeSink("one"), new FakeSink("two")];
    const store = new MemoryKvStore();
    const { ingest, run, runtime } = setup(sinks, {}, store);
    await ingest(batch(0, 30));
    await run(300);
    for (const sink of sinks) for (const k of keys) expect(sink.eventIds(k)).toEqual(expectedIds(k, 30));
    await runtime.close();
    const rows = store.list("").map(([k]) => k);
    expect(rows.filter((k) => k.startsWith("j/"))).toEqual([]);
    expect(rows.filter((k) => k.startsWith("b/"))).toEqual([]);
    expect(rows.filter((k) => /\/(ob|oc)\//.test(k))).toEqual([]);
    // What stays is each actor's state and dedupe IDs.
    for (const k of keys) expect(rows).toContain(`a/${k}/state`);
  });

  test("a clean stop while a sink is down keeps a backlog mark and the records in full; the restart delivers them", async () => {
    const store = new MemoryKvStore();
    const down = new FakeSink("s");
    down.down = 1_000_000;
    const first = setup([down], {}, store);
    await first.ingest(batch(0, 5));
    await first.run(300);
    await first.runtime.close();
    const rows = store.list("").map(([k]) => k);
    expect(rows.filter((k) => k.startsWith("j/"))).toEqual([]);
    expect(rows.filter((k) => k.startsWith("b/")).sort()).toEqual(keys.map((k) => `b/${k}`));
    const segment = JSON.parse(store.get(rows.find((k) => k.startsWith("a/a/ob/"))!)!);
    expect(segment.every((r: { kind?: string; id?: string }) => r.kind === "event" && typeof r.id === "string")).toBe(true);
    const up = new FakeSink("s");
    const second = setup([up], {}, store);
    await second.run(300);
    for (const k of keys) expect(up.eventIds(k)).toEqual(expectedIds(k, 5));
    await second.runtime.close();
    expect(store.list("").map(([k]) => k).filter((k) => k.startsWith("b/") || k.startsWith("j/") || k.includes("/ob/"))).toEqual([]);
  });

  test("delivery progress is journaled, not checkpointed: acks add journal rows, the actors' rows wait for their checkpoint", async () => {
    const sink = new FakeSink("s");
    const store = new MemoryKvStore();
    const written: string[][] = [];
    const write = store.write.bind(store);
    store.write = (puts, deletes) => {
      written.push(puts.map(([k]) => k));
      write(puts, deletes);
    };
    const { ingest, run, runtime } = setup([sink], { checkpointIntervalMs: 60_000 }, store);
    await ingest(batch(0, 20));
    await run(200);
    for (const k of keys) expect(sink.eventIds(k)).toEqual(expectedIds(k, 20));
    // The ingest and each settled batch: journal rows only (and the tenant's usage, with the commit that created its keys); no actor row yet.
    expect(written.length).toBeGreaterThanOrEqual(2);
    expect(written.flat().filter((k) => !k.startsWith("u/") && k !== "m/usage-version").every((k) => k.startsWith("j/"))).toBe(true);
    expect(written.slice(1).flat().every((k) => k.startsWith("j/"))).toBe(true);
    expect(runtime.stats.checkpoints).toBe(0);
    // A crash now loses no ack: the restarted host knows every record was taken and sends nothing again.
    const again = new FakeSink("s");
    const restarted = setup([again], {}, store);
    await restarted.run(300);
    expect(again.calls).toHaveLength(0);
    expect((await restarted.runtime.outbox("a"))!.backlog).toEqual({ s: 0 });
  });

  test("several batches in flight per sink; a key's records are in one batch at a time, in order", async () => {
    const sink = new FakeSink("s");
    sink.hold = true;
    const many = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const { ingest, run } = setup([sink], { delivery: { ...DEFAULT_CONFIG.delivery, batchSize: 10, maxBatchSize: 10, maxInFlight: 3 } });
    const events = (from: number, to: number) => many.flatMap((k) => Array.from({ length: to - from }, (_, j) => ev(k, from + j)));
    await ingest(events(0, 2));
    await run(20);
    expect(sink.inFlight).toBe(3);
    await ingest(events(2, 4));
    for (let round = 0; round < 40 && (sink.inFlight > 0 || sink.release() > 0); round++) {
      sink.release();
      await run(20);
    }
    expect(sink.maxInFlight).toBe(3);
    for (const call of sink.calls) expect(call.length).toBeLessThanOrEqual(10);
    for (const k of many) expect(sink.eventIds(k)).toEqual(expectedIds(k, 4));
    // No key was in two calls in flight at once.
    expect(sink.overlaps).toBe(0);
  });

  test("under a backlog, batches grow up to maxBatchSize, and back to batchSize once it is gone", async () => {
    const sink = new FakeSink("s");
    const wide = Array.from({ length: 100 }, (_, i) => `w${i}`);
    const { ingest, run } = setup([sink], { delivery: { ...DEFAULT_CONFIG.delivery, batchSize: 10, maxBatchSize: 80, maxInFlight: 1 } });
    await ingest(wide.flatMap((k) => Array.from({ length: 5 }, (_, j) => ev(k, j))));
    await run(500);
    const sizes = sink.calls.map((c) => c.length);
    expect(sizes.slice(0, 4)).toEqual([10, 20, 40, 80]);
    expect(Math.max(...sizes)).toBe(80);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(500);
    await ingest([ev("w0", 9)]);
    await run(100);
    expect(sink.calls.at(-1)!.length).toBe(1);
  });
});

import { describe, expect, test } from "bun:test";
import { Actor } from "../../src/actor/actor.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import type { Event } from "../../src/actor/event.ts";
import { Outbox, type EventRecord, type NewRecord, type OutboxAlert, type OutboxRecord, type RecordBody, type WindowRecord } from "../../src/actor/outbox.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { parseAnalyticsConfig } from "../../src/settings/analytics.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { FakeSink } from "../support/fake-sink.ts";
import { FlakyStore } from "../support/flaky-store.ts";
import { fakeEnv } from "../support/fake-env.ts";
import { alertRecordView, idempotencyKey } from "../../src/delivery/records.ts";
import { render } from "../../src/http/views.ts";
import { DeadLetterViewSchema } from "../../src/http/schemas.ts";

const ev = (n: number, key = "k"): NewRecord => ({ kind: "event", key, id: `e${n}`, type: "t", ts: n, receivedAt: 0, late: false });
/** Appends, then marks everything durable (the host does so once its commit succeeded). */
const add = (ob: Outbox, ...records: NewRecord[]) => {
  for (const r of records) ob.append(r);
  ob.markDurable();
};

/** Applies drain() rows to a map, as storage would; rows() is what restore reads. */
class Rows {
  readonly map = new Map<string, string>();
  commit(outbox: Outbox) {
    const { puts, deletes } = outbox.drain();
    for (const k of deletes) this.map.delete(k);
    for (const [k, v] of puts) this.map.set(k, v);
    return { puts, deletes };
  }
  rows(): Array<[string, string]> {
    return [...this.map].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }
}

describe("Outbox", () => {
  test("each sink has its own cursor; a slow sink does not hold back the others", () => {
    const ob = new Outbox(["fast", "slow"]);
    add(ob, ...Array.from({ length: 5 - 0 }, (_, i) => ev(0 + i)));
    expect(ob.pending("fast", 10).map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
    ob.ack("fast", 5);
    expect(ob.pending("fast", 10)).toEqual([]);
    expect(ob.pending("slow", 2).map((r) => r.n)).toEqual([0, 1]);
    expect(ob.backlog("fast")).toBe(0);
    expect(ob.backlog("slow")).toBe(5);
    expect(ob.backlog()).toBe(5);
  });

  test("one row per commit; a segment is deleted once every sink is past it", () => {
    const ob = new Outbox(["a", "b"]);
    const rows = new Rows();
    add(ob, ...Array.from({ length: 100 - 0 }, (_, i) => ev(0 + i)));
    const first = rows.commit(ob);
    expect(first.puts.filter(([k]) => k.startsWith("ob/"))).toHaveLength(1);
    expect(first.puts.some(([k]) => k.startsWith("oc/"))).toBe(false); // cursors live in the state row
    add(ob, ...Array.from({ length: 150 - 100 }, (_, i) => ev(100 + i)));
    rows.commit(ob);
    ob.ack("a", 150);
    ob.ack("b", 120);
    const third = rows.commit(ob);
    expect(third.deletes).toEqual(["ob/000000000000"]);
    expect([...rows.map.keys()].filter((k) => k.startsWith("ob/"))).toEqual(["ob/000000000001"]);
    ob.ack("b", 150);
    expect(rows.commit(ob).deletes).toEqual(["ob/000000000001"]);
  });

  test("restore resumes cursors, records and dead letters", () => {
    const ob = new Outbox(["a", "b"]);
    const rows = new Rows();
    add(ob, ...Array.from({ length: 10 - 0 }, (_, i) => ev(0 + i)));
    rows.commit(ob);
    ob.ack("a", 7);
    ob.deadLetter("b", ob.pending("b", 1)[0]!, "refused", 1, 1_000);
    ob.ack("b", 1);
    rows.commit(ob);
    const back = Outbox.restore(["a", "b"], undefined, ob.getMeta(), rows.rows());
    expect(back.pending("a", 100).map((r) => r.n)).toEqual([7, 8, 9]);
    expect(back.pending("b", 100).map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(back.deadLetters()).toEqual(ob.deadLetters());
    add(back, ev(10));
    expect(back.pending("a", 100).map((r) => r.n)).toEqual([7, 8, 9, 10]);
  });

  test("a sink enabled later receives what comes from then on", () => {
    const ob = new Outbox(["a"]);
    const rows = new Rows();
    add(ob, ...Array.from({ length: 3 - 0 }, (_, i) => ev(0 + i)));
    rows.commit(ob);
    const back = Outbox.restore(["a", "new"], undefined, ob.getMeta(), rows.rows());
    expect(back.pending("new", 10)).toEqual([]);
    add(back, ev(3));
    expect(back.pending("new", 10).map((r) => r.n)).toEqual([3]);
    expect(back.pending("a", 10).map((r) => r.n)).toEqual([0, 1, 2, 3]);
  });

  test("dead letters are mirrored to postgres only, listed, and replayed to their own sink", () => {
    const ob = new Outbox(["redis", "postgres"], "postgres");
    add(ob, ev(0), ev(1));
    const [first] = ob.pending("redis", 1);
    ob.deadLetter("redis", first!, "WRONGTYPE", 1, 5);
    ob.markDurable();
    ob.ack("redis", 1);
    expect(ob.deadLetters()).toEqual([{ id: 0, sink: "redis", record: { ...(first as EventRecord) }, error: "WRONGTYPE", attempts: 1, failedAt: 5 }]);
    // postgres sees the two events and the mirror; redis never sees the mirror
    expect(ob.pending("postgres", 10).map((r) => r.kind)).toEqual(["event", "event", "dead_letter"]);
    expect(ob.pending("redis", 10).map((r) => r.n)).toEqual([1]);
    ob.ack("redis", 2);
    expect(ob.backlog("redis")).toBe(1); // the mirror is counted until passed over
    expect(ob.pending("redis", 10)).toEqual([]);
    expect(ob.backlog("redis")).toBe(0);

    expect(ob.replay({ sink: "redis" })).toBe(1);
    ob.markDurable();
    expect(ob.deadLetters()).toEqual([]);
    const replayed = ob.pending("redis", 10);
    expect(replayed.map((r) => [r.kind, (r as EventRecord).id, r.only])).toEqual([["event", "e0", "redis"]]);
    // A mirror that fails is not mirrored again.
    const mirror = ob.pending("postgres", 10).find((r) => r.kind === "dead_letter")!;
    ob.deadLetter("postgres", mirror, "down", 9, 9);
    expect(ob.deadLetters()).toEqual([]);
  });

  test("a record goes to sinks only once its commit is durable", () => {
    const ob = new Outbox(["a"]);
    ob.append(ev(0));
    expect(ob.pending("a", 10)).toEqual([]);
    expect(ob.backlog("a")).toBe(1);
    ob.markDurable();
    ob.append(ev(1));
    expect(ob.pending("a", 10).map((r) => r.n)).toEqual([0]);
  });

  test("a checkpoint stores only the records some sink has still to take", () => {
    const ob = new Outbox(["a", "b"]);
    const rows = new Rows();
    add(ob, ev(0), ev(1), ev(2));
    ob.ack("a", 3);
    ob.ack("b", 2);
    const { puts } = rows.commit(ob);
    const segment = puts.find(([k]) => k.startsWith("ob/"))!;
    expect(JSON.parse(segment[1]).map((r: { n: number }) => r.n)).toEqual([2]);
    add(ob, ev(3));
    ob.ack("a", 4);
    ob.ack("b", 4);
    expect(rows.commit(ob).puts.filter(([k]) => k.startsWith("ob/"))).toEqual([]);
    expect([...rows.map.keys()].filter((k) => k.startsWith("ob/"))).toEqual([]);
  });

  test("records whose event is in the host's journal are stored as references and resolved on restore", () => {
    const journal = new Map<string, RecordBody>();
    const ob = new Outbox(["a"]);
    const rows = new Rows();
    for (let n = 0; n < 3; n++) {
      const record = ob.append({ ...(ev(n) as EventRecord), properties: { n } }) as EventRecord;
      record.ref = [7, 0, n];
      journal.set(record.ref.join("/"), { key: "k", id: `e${n}`, type: "t", ts: n, receivedAt: 0, properties: { n } });
    }
    ob.markDurable();
    const { puts } = rows.commit(ob);
    const stored = JSON.parse(puts.find(([k]) => k.startsWith("ob/"))![1]);
    expect(stored[0]).toEqual({ n: 0, ref: [7, 0, 0], late: false });
    expect(ob.minStoredRef()).toBe(7);
    const back = Outbox.restore(["a"], undefined, ob.getMeta(), rows.rows(), (ref) => journal.get(ref.join("/")));
    expect(back.pending("a", 10).map((r) => [(r as EventRecord).id, (r as EventRecord).properties])).toEqual([
      ["e0", { n: 0 }],
      ["e1", { n: 1 }],
      ["e2", { n: 2 }],
    ]);
    // Before the journal goes, what is left is stored in full.
    ob.ack("a", 1);
    const inline = ob.drain(true);
    expect(inline.deletes).toEqual(["ob/000000000000"]);
    expect(JSON.parse(inline.puts.find(([k]) => k.startsWith("ob/"))![1]).map((r: EventRecord) => [r.kind, r.id, r.ref])).toEqual([
      ["event", "e1", undefined],
      ["event", "e2", undefined],
    ]);
    expect(ob.minStoredRef()).toBeUndefined();
  });

  test("a restore needs only the references of records some sink has still to take", () => {
    const ob = new Outbox(["a"]);
    const rows = new Rows();
    const record = ob.append(ev(0)) as EventRecord;
    record.ref = [3, 0, 0];
    ob.markDurable();
    rows.commit(ob);
    ob.ack("a", 1);
    // The segment is stale (its record was taken); the cursor moved in the same state: nothing to resolve.
    const back = Outbox.restore(["a"], undefined, ob.getMeta(), rows.rows(), () => undefined);
    expect(back.backlog("a")).toBe(0);
    expect(() => Outbox.restore(["a"], undefined, { ...ob.getMeta(), cursors: [["a", 0]] }, rows.rows(), () => undefined)).toThrow(/journal row/);
  });

  test("with no sinks nothing is recorded", () => {
    const ob = new Outbox([]);
    ob.append(ev(0));
    expect(ob.enabled).toBe(false);
    expect(ob.drain().puts).toEqual([]);
    expect(ob.backlog()).toBe(0);
  });
});

describe("Actor outbox records", () => {
  const T0 = Date.UTC(2026, 0, 1);
  const config = (emit: Config["emit"]): Config => ({
    ...DEFAULT_CONFIG,
    windows: [parseWindowSpec("1m") as WindowSpec],
    allowedLatenessMs: 0,
    sinks: ["s"],
    emit,
  });
  const event = (id: string, ts: number, value: number): Event => ({ id, assigned: false, type: "buy", key: "k", ts, value });

  test("final: accepted events once each (duplicates not), and each window once, when it closes", () => {
    const actor = new Actor("k", config("final"));
    actor.ingest([event("a", T0, 1), event("b", T0 + 1_000, 2), event("a", T0, 1)], T0);
    actor.ingest([event("c", T0 + 60_000, 4)], T0);
    actor.outbox.markDurable();
    const records = actor.outbox.pending("s", 100);
    expect(records.map((r) => r.kind)).toEqual(["event", "event", "event", "window"]);
    const w = records[3] as WindowRecord;
    expect(w).toMatchObject({ spec: "1m", start: T0, revision: 1, final: true, all: { count: 2, sum: 3 } });
  });

  test("updates: a revision per ingest call that changed the window, then the final one above them", () => {
    const actor = new Actor("k", config("updates"));
    actor.ingest([event("a", T0, 1), event("b", T0 + 1, 2)], T0);
    actor.ingest([event("c", T0 + 2, 3)], T0);
    actor.ingest([event("d", T0 + 60_000, 4)], T0);
    actor.outbox.markDurable();
    const windows = actor.outbox.pending("s", 100).filter((r): r is WindowRecord => r.kind === "window" && r.start === T0);
    expect(windows.map((w) => [w.revision, w.final, w.all.count])).toEqual([
      [1, false, 2],
      [2, false, 3],
      [3, true, 3],
    ]);
  });

  test("an actor over its outbox bound refuses ingest without changing anything", () => {
    const actor = new Actor("k", { ...config("final"), outboxMax: 2 });
    actor.ingest([event("a", T0, 1), event("b", T0 + 1, 2)], T0);
    expect(() => actor.ingest([event("c", T0 + 2, 3)], T0)).toThrow(/behind/);
    expect(actor.snapshot().totals.events).toBe(2);
    actor.outbox.ack("s", 2);
    expect(actor.ingest([event("c", T0 + 2, 3)], T0)).toEqual([{ status: "accepted" }]);
  });
});

describe("alerts in the outbox", () => {
  const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
  const windows = [parseWindowSpec("1m") as WindowSpec];
  const analytics = parseAnalyticsConfig(
    { types: { purchase: { windows: ["1m"] } }, rules: [{ name: "burst", type: "purchase", window: "1m", aggregate: "count", op: ">", threshold: 3 }] },
    windows,
  );
  const config: Config = { ...DEFAULT_CONFIG, windows, allowedLatenessMs: 0, analytics, sinks: ["redis", "postgres"], deadLetterMirror: "postgres" };
  const purchase = (id: string, ts = T0): Event => ({ id, assigned: false, type: "purchase", key: "k", ts, value: 1 });
  const burst = (actor: Actor, at = T0) => actor.ingest(["p1", "p2", "p3", "p4", "p5"].map((id) => purchase(id)), at);
  const alertsOf = (records: OutboxRecord[]) => records.filter((r): r is OutboxAlert => r.kind === "alert");

  test("a firing is appended once per rule and window, with its trigger; nothing without sinks", () => {
    const actor = new Actor("k", config);
    burst(actor);
    actor.ingest([purchase("p6"), purchase("p4")], T0 + 1); // more of the same window, and a retry
    actor.outbox.markDurable();
    const alerts = alertsOf(actor.outbox.pending("redis", 100));
    expect(alerts).toEqual([
      { kind: "alert", n: expect.any(Number), rule: "burst", key: "k", window: { shape: "1m", start: T0, end: T0 + 60_000 }, aggregate: "count", value: 4, eventId: "p4", firedAt: T0 },
    ]);
    expect(idempotencyKey(alerts[0]!)).toBe(JSON.stringify(["default", "k", "burst", "1m", T0]));
    const quiet = new Actor("k", { ...config, sinks: [] });
    burst(quiet);
    expect(quiet.recentAlerts()).toHaveLength(1);
    expect(quiet.outbox.backlog()).toBe(0);
  });

  test("stored in full (never a journal reference) and restored as it was, after a restart too", () => {
    const actor = new Actor("k", config);
    burst(actor);
    actor.outbox.markDurable();
    const [alert] = alertsOf(actor.outbox.pending("redis", 100));
    const rows = new Map<string, string>();
    const { puts } = actor.drainWrites();
    for (const [k, v] of puts) rows.set(k, v);
    const segment = JSON.parse([...rows].find(([k]) => k.startsWith("ob/"))![1]) as unknown[];
    expect(segment).toContainEqual(alert);
    const back = Actor.restore("k", config, [...rows].sort(), T0 + 1);
    expect(alertsOf(back.outbox.pending("redis", 100))).toEqual([alert!]);
    // The detector's state came back with it: the same window does not fire again.
    back.ingest([purchase("p9")], T0 + 2);
    back.outbox.markDurable();
    expect(alertsOf(back.outbox.pending("postgres", 100))).toEqual([alert!]);
  });

  test("dead-lettered in full, mirrored, shown by the DLQ view and replayed to its own sink", () => {
    const actor = new Actor("k", config);
    burst(actor);
    actor.outbox.markDurable();
    const ob = actor.outbox;
    const [alert] = alertsOf(ob.pending("redis", 100));
    ob.deadLetter("redis", alert!, "WRONGTYPE", 3, T0 + 5);
    ob.markDurable();
    expect(ob.deadLetters()).toEqual([{ id: 0, sink: "redis", record: alert!, error: "WRONGTYPE", attempts: 3, failedAt: T0 + 5 }]);
    const mirror = ob.pending("postgres", 100).find((r) => r.kind === "dead_letter")!;
    expect(mirror).toMatchObject({ kind: "dead_letter", sink: "redis", record: alert });
    const [view] = render.deadLetters(actor);
    expect(view!.record).toEqual(alertRecordView(alert!));
    expect(DeadLetterViewSchema.safeParse(JSON.parse(JSON.stringify(view))).success).toBe(true);
    // The dead letters survive a restart as they were.
    const rows = new Map<string, string>();
    for (const [k, v] of actor.drainWrites().puts) rows.set(k, v);
    const back = Actor.restore("k", config, [...rows].sort(), T0 + 6);
    expect(back.outbox.deadLetters()).toEqual(ob.deadLetters());
    ob.ack("redis", ob.nextN);
    expect(ob.replay({ sink: "redis" })).toBe(1);
    ob.markDurable();
    const replayed = ob.pending("redis", 100);
    expect(replayed).toEqual([{ ...alert!, n: replayed[0]!.n, only: "redis" }]);
    expect(idempotencyKey(replayed[0] as OutboxAlert)).toBe(idempotencyKey(alert!));
    expect(ob.pending("postgres", 100).some((r) => r.only === "redis")).toBe(false);
  });

  test("the process host: events around an alert stored as journal references, a crash, one alert delivered", async () => {
    const store = new FlakyStore();
    const sink = new FakeSink("s");
    sink.down = 1_000_000;
    const hostConfig = { ...config, sinks: ["s"], deadLetterMirror: undefined, checkpointIntervalMs: 1_000 };
    const start = (at: number) => {
      const fake = fakeEnv(at);
      return { runtime: new ProcessHost({ store, config: hostConfig, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [sink] }), ...fake };
    };
    const run = async (h: ReturnType<typeof start>, totalMs: number) => {
      for (let t = 0; t < totalMs; t += 10) {
        h.timers.advance(10);
        for (let i = 0; i < 4; i++) await Bun.sleep(0);
      }
    };
    let host = start(T0);
    const ingest = async (h: ReturnType<typeof start>, ids: string[]) => {
      const result = h.runtime.ingest(ids.map((id) => purchase(id)));
      h.timers.advance(0);
      await result;
    };
    await ingest(host, ["p1", "p2", "p3", "p4", "p5"]);
    await ingest(host, ["p3", "p4", "p6"]); // retries, and one more
    await run(host, 1_500);
    const segments = store.list("").filter(([k]) => k.includes("ob/")).map(([, v]) => v);
    expect(segments.some((v) => v.includes('"ref":'))).toBe(true);
    expect(segments.some((v) => v.includes('"kind":"alert"') && v.includes('"eventId":"p4"'))).toBe(true);
    host = start(host.clock.now() + 1); // a crash: memory and timers gone
    await ingest(host, ["p2", "p7"]);
    sink.down = 0;
    await run(host, 2_000);
    // The alert went in right after p4, the event that crossed the threshold; each event resolves to its own id.
    expect(sink.order.map((r) => (r.kind === "event" ? r.id : r.kind))).toEqual(["p1", "p2", "p3", "p4", "alert", "p5", "p6", "p7"]);
    expect([...sink.applied.keys()].filter((id) => id.startsWith("alert|"))).toEqual([`alert|k|burst|1m|${T0}`]);
  });
});

import { describe, expect, test } from "bun:test";
import { Actor } from "../../src/actor/actor.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import type { Event } from "../../src/actor/event.ts";
import { Outbox, type EventRecord, type NewRecord, type WindowRecord } from "../../src/actor/outbox.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";

const ev = (n: number, key = "k"): NewRecord => ({ kind: "event", key, id: `e${n}`, type: "t", ts: n, receivedAt: 0, late: false });

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
    for (let n = 0; n < 5; n++) ob.append(ev(n));
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
    for (let n = 0; n < 100; n++) ob.append(ev(n));
    const first = rows.commit(ob);
    expect(first.puts.filter(([k]) => k.startsWith("ob/"))).toHaveLength(1);
    for (let n = 100; n < 150; n++) ob.append(ev(n));
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
    for (let n = 0; n < 10; n++) ob.append(ev(n));
    rows.commit(ob);
    ob.ack("a", 7);
    ob.deadLetter("b", ob.pending("b", 1)[0]!, "refused", 1, 1_000);
    ob.ack("b", 1);
    rows.commit(ob);
    const back = Outbox.restore(["a", "b"], undefined, ob.getMeta(), rows.rows());
    expect(back.pending("a", 100).map((r) => r.n)).toEqual([7, 8, 9]);
    expect(back.pending("b", 100).map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(back.deadLetters()).toEqual(ob.deadLetters());
    back.append(ev(10));
    expect(back.pending("a", 100).map((r) => r.n)).toEqual([7, 8, 9, 10]);
  });

  test("a sink enabled later receives what comes from then on", () => {
    const ob = new Outbox(["a"]);
    const rows = new Rows();
    for (let n = 0; n < 3; n++) ob.append(ev(n));
    rows.commit(ob);
    const back = Outbox.restore(["a", "new"], undefined, ob.getMeta(), rows.rows());
    expect(back.pending("new", 10)).toEqual([]);
    back.append(ev(3));
    expect(back.pending("new", 10).map((r) => r.n)).toEqual([3]);
    expect(back.pending("a", 10).map((r) => r.n)).toEqual([0, 1, 2, 3]);
  });

  test("dead letters are mirrored to postgres only, listed, and replayed to their own sink", () => {
    const ob = new Outbox(["redis", "postgres"], "postgres");
    ob.append(ev(0));
    ob.append(ev(1));
    const [first] = ob.pending("redis", 1);
    ob.deadLetter("redis", first!, "WRONGTYPE", 1, 5);
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
    expect(ob.deadLetters()).toEqual([]);
    const replayed = ob.pending("redis", 10);
    expect(replayed.map((r) => [r.kind, (r as EventRecord).id, r.only])).toEqual([["event", "e0", "redis"]]);
    // A mirror that fails is not mirrored again.
    const mirror = ob.pending("postgres", 10).find((r) => r.kind === "dead_letter")!;
    ob.deadLetter("postgres", mirror, "down", 9, 9);
    expect(ob.deadLetters()).toEqual([]);
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

import { describe, expect, test } from "bun:test";
import { SegmentLog } from "../../src/actor/segment-log.ts";
import { Actor, type LateEntry } from "../../src/actor/actor.ts";
import { ACTOR_ROW } from "../../src/actor/layout.ts";
import { DEFAULT_ACTOR_CONFIG } from "../../src/actor/config.ts";
import { Prng } from "../../src/sim/prng.ts";

const entry = (n: number): LateEntry => ({ id: `e${n}`, type: "t", ts: n, receivedAt: 1_000 + n, watermark: 10_000, missed: ["1m"] });

/** Storage as drain() leaves it: segment rows by seq, and whether the legacy row is still there. */
class Rows {
  readonly segments = new Map<number, string>();
  legacy: LateEntry[] | undefined;
  apply(log: SegmentLog<LateEntry>): { written: number } {
    const { puts, deletes, replacesLegacy } = log.drain();
    for (const seq of deletes) {
      expect(this.segments.has(seq)).toBe(true);
      this.segments.delete(seq);
    }
    for (const [seq, text] of puts) this.segments.set(seq, text);
    if (replacesLegacy) this.legacy = undefined;
    return { written: puts.reduce((n, [, text]) => n + (JSON.parse(text) as unknown[]).length, 0) };
  }
  restore(size: number): SegmentLog<LateEntry> {
    return SegmentLog.restore(size, this.legacy, [...this.segments].sort((a, b) => a[0] - b[0]));
  }
}

describe("segment log (the late log, the recent alerts)", () => {
  test("keeps the last `size` entries, oldest first", () => {
    const log = new SegmentLog<LateEntry>(3);
    for (let n = 0; n < 50; n++) log.add(entry(n));
    expect(log.list().map((e) => e.id)).toEqual(["e47", "e48", "e49"]);
    expect(log.length).toBe(3);
  });

  test("a checkpoint writes only the entries added since the last one, not the whole log", () => {
    const log = new SegmentLog<LateEntry>(1_000);
    const rows = new Rows();
    for (let n = 0; n < 1_000; n++) log.add(entry(n));
    expect(rows.apply(log).written).toBe(1_000);
    log.add(entry(1_000));
    expect(log.dirty).toBe(true);
    expect(rows.apply(log).written).toBe(1);
    expect(log.dirty).toBe(false);
    expect(rows.apply(log).written).toBe(0);
  });

  test("segments that rolled out entirely are deleted; storage keeps every visible entry", () => {
    const log = new SegmentLog<LateEntry>(10);
    const rows = new Rows();
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 4; i++) log.add(entry(round * 4 + i));
      rows.apply(log);
      // Ten visible entries in segments of four: never more than four segments are needed.
      expect(rows.segments.size).toBeLessThanOrEqual(4);
      expect(rows.restore(10).list()).toEqual(log.list());
    }
  });

  test("drained after every entry (a Durable Object), the newest segment takes entries until it holds 64: a row written per drain, few deletes", () => {
    const log = new SegmentLog<LateEntry>(1_000);
    const rows = new Rows();
    let deletes = 0;
    for (let n = 0; n < 5_000; n++) {
      log.add(entry(n));
      const before = rows.segments.size;
      const { puts, deletes: gone } = (() => {
        const d = log.drain();
        for (const seq of d.deletes) rows.segments.delete(seq);
        for (const [seq, text] of d.puts) rows.segments.set(seq, text);
        return d;
      })();
      expect(puts).toHaveLength(1);
      deletes += gone.length;
      expect(rows.segments.size).toBeLessThanOrEqual(Math.ceil(1_000 / 64) + 1);
      expect(rows.segments.size - before).toBeLessThanOrEqual(1);
    }
    // One delete per 64 entries once the log is full, not one per entry.
    expect(deletes).toBeLessThanOrEqual(Math.ceil(4_000 / 64) + 1);
    expect(rows.restore(1_000).list()).toEqual(log.list());
  });

  test("a batch larger than the log writes only what stays visible, in rows of at most 256 entries", () => {
    const log = new SegmentLog<LateEntry>(1_000);
    const rows = new Rows();
    for (let n = 0; n < 5_000; n++) log.add(entry(n));
    expect(rows.apply(log).written).toBe(1_000);
    expect(rows.segments.size).toBe(4);
    expect(rows.restore(1_000).list().map((e) => e.id)).toEqual(Array.from({ length: 1_000 }, (_, i) => `e${4_000 + i}`));
  });

  test("matches the model (the last `size` of everything added) across random drains and restores", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const prng = new Prng(seed);
      const random = () => prng.next();
      const size = 1 + Math.floor(random() * 40);
      let log = new SegmentLog<LateEntry>(size);
      const rows = new Rows();
      const added: LateEntry[] = [];
      let n = 0;
      for (let step = 0; step < 200; step++) {
        const r = random();
        if (r < 0.6) {
          const count = Math.floor(random() * (random() < 0.1 ? 3 * size : 5));
          for (let i = 0; i < count; i++) {
            const e = entry(n++);
            added.push(e);
            log.add(e);
          }
        } else if (r < 0.9) rows.apply(log);
        else {
          // A restart: what was not drained is lost, as a crash loses what was not committed.
          log = rows.restore(size);
          added.length = 0;
          added.push(...log.list());
        }
        expect(log.list()).toEqual(added.slice(-size));
      }
      rows.apply(log);
      expect(rows.restore(size).list()).toEqual(added.slice(-size));
    }
  });

  test("a legacy row (one row, before segments) is read, then replaced by segments at the next drain", () => {
    const rows = new Rows();
    rows.legacy = [entry(1), entry(2), entry(3)];
    const log = rows.restore(2);
    expect(log.list().map((e) => e.id)).toEqual(["e2", "e3"]);
    expect(log.dirty).toBe(true);
    rows.apply(log);
    expect(rows.legacy).toBeUndefined();
    expect(rows.restore(2).list().map((e) => e.id)).toEqual(["e2", "e3"]);
  });

  test("restored with a smaller size, it drops the segments that no longer hold visible entries", () => {
    const log = new SegmentLog<LateEntry>(1_000);
    const rows = new Rows();
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100; i++) log.add(entry(round * 100 + i));
      rows.apply(log);
    }
    expect(rows.segments.size).toBe(10);
    const smaller = rows.restore(150);
    expect(smaller.dirty).toBe(true);
    rows.apply(smaller);
    expect(rows.segments.size).toBe(2);
    expect(rows.restore(150).list().map((e) => e.id)).toEqual(Array.from({ length: 150 }, (_, i) => `e${850 + i}`));
  });
});

describe("an actor's late log in storage", () => {
  const T0 = 1_700_000_000_000;
  const event = (id: string, ts: number) => ({ id, assigned: false, type: "purchase", key: "k", ts, value: 1 });

  test("is written as segment rows of the new entries and restored with the actor", () => {
    const actor = new Actor("k", DEFAULT_ACTOR_CONFIG);
    actor.ingest([event("now", T0 + 3_600_000 * 5)], T0);
    actor.drainWrites();
    actor.ingest([event("old-1", T0), event("old-2", T0 + 1)], T0);
    const first = actor.drainWrites();
    const lateRows = first.puts.filter(([k]) => k.startsWith(ACTOR_ROW.latePrefix));
    expect(lateRows).toHaveLength(1);
    expect((JSON.parse(lateRows[0]![1]) as LateEntry[]).map((e) => e.id)).toEqual(["old-1", "old-2"]);
    actor.ingest([event("old-3", T0 + 2)], T0);
    const second = actor.drainWrites();
    // The newest segment is small: it takes the new entry (rewritten as one row).
    const more = second.puts.filter(([k]) => k.startsWith(ACTOR_ROW.latePrefix));
    expect(more.map(([k, v]) => [k, (JSON.parse(v) as LateEntry[]).map((e) => e.id)])).toEqual([[lateRows[0]![0], ["old-1", "old-2", "old-3"]]]);

    const latest = new Map([...first.puts, ...second.puts]);
    const restored = Actor.restore("k", DEFAULT_ACTOR_CONFIG, [...latest].sort((a, b) => (a[0] < b[0] ? -1 : 1)), T0);
    expect(restored.lateLog().map((e) => e.id)).toEqual(["old-1", "old-2", "old-3"]);
  });

  test("a store written before segments (one `late` row) reads the same and is migrated by the next checkpoint", () => {
    const actor = new Actor("k", DEFAULT_ACTOR_CONFIG);
    actor.ingest([event("now", T0 + 3_600_000 * 5)], T0);
    const state = new Map(actor.drainWrites().puts);
    state.set(ACTOR_ROW.late, JSON.stringify([{ id: "legacy", type: "purchase", ts: T0, receivedAt: T0, watermark: T0 + 1, missed: ["1m", "1h"] }]));
    const restored = Actor.restore("k", DEFAULT_ACTOR_CONFIG, [...state].sort((a, b) => (a[0] < b[0] ? -1 : 1)), T0);
    expect(restored.lateLog().map((e) => e.id)).toEqual(["legacy"]);
    restored.ingest([event("old", T0)], T0);
    const writes = restored.drainWrites();
    expect(writes.deletes).toContain(ACTOR_ROW.late);
    const segs = writes.puts.filter(([k]) => k.startsWith(ACTOR_ROW.latePrefix)).flatMap(([, v]) => (JSON.parse(v) as LateEntry[]).map((e) => e.id));
    expect(segs).toEqual(["legacy", "old"]);
  });
});

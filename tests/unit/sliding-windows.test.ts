import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { aggregateOps, typedAggregateOps, type TypedValue } from "../../src/actor/aggregate-ops.ts";
import { SlidingWindows, type SlidingWindow } from "../../src/actor/sliding-windows.ts";
import type { Aggregate } from "../../src/actor/windows.ts";
import { Prng } from "../../src/sim/prng.ts";
import { byStart, FINAL_WATERMARK, anyStreamArb, fcParams, onlyFinalClose, rowFromAggregate, rowOf, streamArb, type Row, type StreamOp } from "../support/window-streams.ts";

type Value = number | undefined;

interface Run {
  /** Windows close() returned, in the order it returned them. */
  finals: Row[];
  /** Every add's `updated`, as rows with revisions. */
  updates: Array<Array<Row & { revision: number }>>;
  late: boolean[];
}

/** Runs the module over the ops; `restoreAt`: checkpoint through JSON text and restore before that op. */
function run(sizeMs: number, latenessMs: number, ops: StreamOp[], restoreAt = -1): Run {
  let sw = new SlidingWindows<Aggregate, Value>(sizeMs, latenessMs, aggregateOps);
  const out: Run = { finals: [], updates: [], late: [] };
  ops.forEach((op, i) => {
    if (i === restoreAt) sw = SlidingWindows.fromJSON(JSON.parse(JSON.stringify(sw.toJSON())), aggregateOps);
    if (op.kind === "close") {
      out.finals.push(...sw.close(op.watermark).map(toRow));
      return;
    }
    const { updated, late } = sw.add(op.ts, op.value);
    out.late.push(late);
    out.updates.push(updated.map((w) => ({ ...toRow(w), revision: w.revision })));
  });
  return out;
}

function toRow(w: SlidingWindow<Aggregate>): Row {
  return rowFromAggregate(w.start, w.end, w.aggregate);
}

/**
 * The reference, written from the definition rather than the algorithm: with W_i the watermark
 * after op i (the largest timestamp or close watermark so far), an event is accepted when
 * ts + size + lateness >= W_i; window [s, e] closes at the first op i with W_i > e + lateness.
 * It exists when, before it closed, it was some accepted event's left window (s = t - size), or
 * some accepted event's right window (s = t + 1) with an accepted event in (t, e] arrived as well.
 * It holds the accepted events in [s, e] that arrived before it closed.
 */
function reference(sizeMs: number, latenessMs: number, ops: StreamOp[], ignoreLateness = false): { rows: Row[]; late: boolean[] } {
  const watermarks: number[] = [];
  const accepted: Array<{ ts: number; value: Value; at: number }> = [];
  const late: boolean[] = [];
  let w = -Infinity;
  ops.forEach((op, at) => {
    w = Math.max(w, op.kind === "add" ? op.ts : op.watermark);
    watermarks.push(w);
    if (op.kind !== "add") return;
    const isLate = !ignoreLateness && op.ts + sizeMs + latenessMs < w;
    late.push(isLate);
    if (!isLate) accepted.push({ ts: op.ts, value: op.value, at });
  });
  const closesAt = (end: number) => {
    const i = ignoreLateness ? ops.length - 1 : watermarks.findIndex((wm) => wm > end + latenessMs);
    return i < 0 ? Infinity : i;
  };
  const starts = new Set(accepted.flatMap((e) => [e.ts - sizeMs, e.ts + 1]));
  const rows: Row[] = [];
  for (const s of starts) {
    const e = s + sizeMs;
    const closed = closesAt(e);
    const before = accepted.filter((a) => a.at < closed);
    const isLeft = before.some((a) => a.ts - sizeMs === s);
    const isRight = before.some((a) => a.ts + 1 === s) && before.some((u) => u.ts >= s && u.ts <= e);
    if (!isLeft && !isRight) continue;
    rows.push(rowOf(s, e, before.filter((a) => a.ts >= s && a.ts <= e).map((a) => a.value)));
  }
  return { rows: rows.sort(byStart), late };
}

/**
 * A second, independent characterization where nothing is late: sliding a range [s, s + size] over
 * the events, each distinct non-empty set of events in it is one window, at the first s giving it.
 */
function distinctSets(sizeMs: number, events: Array<{ id: number; ts: number; value: Value }>): Row[] {
  const lo = Math.min(...events.map((e) => e.ts)) - sizeMs - 1;
  const hi = Math.max(...events.map((e) => e.ts)) + 1;
  const rows: Row[] = [];
  let previous = "";
  for (let s = lo; s <= hi; s++) {
    const inside = events.filter((e) => e.ts >= s && e.ts <= s + sizeMs);
    const set = inside.map((e) => e.id).join(",");
    if (set && set !== previous) rows.push(rowOf(s, s + sizeMs, inside.map((e) => e.value)));
    previous = set;
  }
  return rows;
}

const shapeArb = fc.record({ size: fc.integer({ min: 1, max: 30 }), lateness: fc.integer({ min: 0, max: 20 }) });

function checkAgainstReference(size: number, lateness: number, ops: StreamOp[]): { r: Run; ref: ReturnType<typeof reference> } {
  const r = run(size, lateness, ops);
  const ref = reference(size, lateness, ops);
  expect(finalRows(r)).toEqual(ref.rows);
  expect(r.late).toEqual(ref.late);
  return { r, ref };
}

function finalRows(r: Run): Row[] {
  return [...r.finals].sort(byStart);
}

describe("sliding windows: Kafka's documented example", () => {
  // SlidingWindows javadoc: time difference 5000 ms, records 1 @ 8000, 2 @ 9200, 3 @ 12400.
  const ops: StreamOp[] = [
    { kind: "add", id: 0, ts: 8000, value: 1 },
    { kind: "add", id: 1, ts: 9200, value: 2 },
    { kind: "add", id: 2, ts: 12400, value: 3 },
    { kind: "close", watermark: FINAL_WATERMARK },
  ];

  test("five windows: three as records enter, two as they leave", () => {
    const r = run(5000, 0, ops);
    expect(r.finals).toEqual([
      rowOf(3000, 8000, [1]),
      rowOf(4200, 9200, [1, 2]),
      rowOf(7400, 12400, [1, 2, 3]),
      rowOf(8001, 13001, [2, 3]),
      rowOf(9201, 14201, [3]),
    ]);
  });

  test("each record updates the windows it falls into and creates the missing ones", () => {
    const r = run(5000, 0, ops);
    const spans = r.updates.map((u) => u.map((w) => `[${w.start};${w.end}]#${w.revision}`));
    expect(spans).toEqual([
      ["[3000;8000]#1"],
      // 9200 enters: its left window, and 8000's right window (the first record after 8000 left).
      ["[4200;9200]#1", "[8001;13001]#1"],
      // 12400 falls into 8000's right window; its left window; 9200's right window.
      ["[7400;12400]#1", "[8001;13001]#2", "[9201;14201]#1"],
    ]);
    expect(r.late).toEqual([false, false, false]);
  });

  test("the right window of the newest record waits for a record after it", () => {
    const sw = new SlidingWindows<Aggregate, Value>(5000, 0, aggregateOps);
    sw.add(8000, 1);
    expect(sw.open().map((w) => w.start)).toEqual([3000]);
  });
});

describe("sliding windows: boundaries, lateness, closing", () => {
  test("both ends are inclusive: events exactly size apart share a window", () => {
    const sw = new SlidingWindows<Aggregate, Value>(10, 0, aggregateOps);
    sw.add(100, 1);
    const { updated } = sw.add(110, 2);
    // 110's left window holds 100 too; 100's right window [101, 111] (100 left) holds 110 alone.
    expect(updated.map((w) => [w.start, w.end, w.aggregate.count])).toEqual([
      [100, 110, 2],
      [101, 111, 1],
    ]);
    sw.add(121, 4);
    // 121 is 11 after 110: no window holds both.
    expect(sw.open().find((w) => w.start === 111)!.aggregate.count).toBe(1);
  });

  test("the right window of an event is the left window of an event size + 1 later", () => {
    const sw = new SlidingWindows<Aggregate, Value>(10, 0, aggregateOps);
    sw.add(100, 1);
    sw.add(111, 2);
    expect(sw.open().map((w) => [w.start, w.end, w.aggregate.count])).toEqual([[101, 111, 1]]);
    expect(sw.close(FINAL_WATERMARK).map((w) => [w.start, w.end, w.aggregate.count])).toEqual([
      [90, 100, 1],
      [101, 111, 1],
    ]);
  });

  test("a window closes once the watermark passes end + allowed lateness", () => {
    const sw = new SlidingWindows<Aggregate, Value>(10, 5, aggregateOps);
    sw.add(100, 1);
    expect(sw.nextCloseAt()).toBe(106);
    expect(sw.close(105)).toEqual([]);
    // Still open at 105: an event at 100 is still accepted.
    expect(sw.add(100, 2).updated.map((w) => w.aggregate.count)).toEqual([2]);
    expect(sw.close(106).map((w) => [w.start, w.end, w.aggregate.count, w.revision])).toEqual([[90, 100, 2, 2]]);
    expect(sw.nextCloseAt()).toBeNull();
  });

  test("an out-of-order event updates its open windows only; beyond every window it is late", () => {
    const sw = new SlidingWindows<Aggregate, Value>(10, 0, aggregateOps);
    sw.add(100, 1);
    sw.add(111, 2); // watermark 111: [90, 100] is closed
    const { updated, late } = sw.add(105, 4);
    expect(late).toBe(false);
    // [101, 111] gets it; its own left window [95, 105] is closed; its right window [106, 116] holds 111.
    expect(updated.map((w) => [w.start, w.end, w.aggregate.count, w.aggregate.sum])).toEqual([
      [101, 111, 2, 6],
      [106, 116, 1, 2],
    ]);
    expect(sw.add(100, 8)).toEqual({ updated: [], late: true });
    expect(sw.add(101, 8).late).toBe(false);
  });

  test("a window created after its events' own windows closed still holds them (Kafka 4.1.1 loses them)", () => {
    const sw = new SlidingWindows<Aggregate, Value>(30, 18, aggregateOps);
    sw.add(1004, 0);
    // Accepted (970 + 30 + 18 >= 1004), but [940, 970] is closed already: in no window yet.
    for (let i = 0; i < 5; i++) expect(sw.add(970, 1)).toMatchObject({ late: false });
    sw.add(1011, 0);
    // 966's right window [967, 997] holds the five. Kafka seeds it from a window holding 970, which it
    // never created, and forwards nothing (checked with TopologyTestDriver).
    const { updated } = sw.add(966, 0);
    expect(updated.map((w) => [w.start, w.end, w.aggregate.count])).toEqual([[967, 997, 5]]);
  });

  test("min and max of a window created after others are exact (no subtraction)", () => {
    const sw = new SlidingWindows<Aggregate, Value>(10, 100, aggregateOps);
    sw.add(100, 1);
    sw.add(105, 50);
    sw.add(110, 7);
    const windows = sw.close(FINAL_WATERMARK);
    // 100 left: without the minimum. 105 left: without the maximum.
    expect(windows.find((w) => w.start === 101)!.aggregate).toEqual({ count: 2, valued: 2, sum: 57, min: 7, max: 50 });
    expect(windows.find((w) => w.start === 106)!.aggregate).toEqual({ count: 1, valued: 1, sum: 7, min: 7, max: 7 });
  });

  test("per-type aggregates through typedAggregateOps", () => {
    const sw = new SlidingWindows(10, 0, typedAggregateOps);
    sw.add(100, { type: "click", value: 2 });
    sw.add(104, { type: "view" });
    const { updated } = sw.add(108, { type: "click", value: 5 });
    const left = updated.find((w) => w.end === 108)!;
    expect(left.aggregate.all).toEqual({ count: 3, valued: 2, sum: 7, min: 2, max: 5 });
    expect(left.aggregate.types).toEqual([
      ["click", { count: 2, valued: 2, sum: 7, min: 2, max: 5 }],
      ["view", { count: 1, valued: 0, sum: 0, min: null, max: null }],
    ]);
    const restored = SlidingWindows.fromJSON<typeof left.aggregate, TypedValue>(JSON.parse(JSON.stringify(sw.toJSON())), typedAggregateOps);
    expect(restored.open()).toEqual(sw.open());
  });

  test("returned windows are copies", () => {
    const sw = new SlidingWindows<Aggregate, Value>(10, 0, aggregateOps);
    const [w] = sw.add(100, 1).updated;
    w!.aggregate.count = 99;
    expect(sw.open()[0]!.aggregate.count).toBe(1);
  });

  test("invalid shapes and timestamps are bugs of the caller", () => {
    expect(() => new SlidingWindows(0, 0, aggregateOps)).toThrow(/invariant/);
    expect(() => new SlidingWindows(10, -1, aggregateOps)).toThrow(/invariant/);
    expect(() => new SlidingWindows(10, 0, aggregateOps).add(1.5, 1)).toThrow(/invariant/);
  });
});

describe("sliding windows: against the reference model", () => {
  test("final windows, their aggregates and late events equal the reference's", () => {
    fc.assert(
      fc.property(shapeArb, anyStreamArb, fc.boolean(), ({ size, lateness }, stream, closeBetween) => {
        checkAgainstReference(size, lateness, closeBetween ? stream : onlyFinalClose(stream));
      }),
      fcParams(400),
    );
  });

  test("the generated streams reach late events, partly closed windows, out-of-order right windows and events in no window", () => {
    const seen = { late: 0, partial: 0, outOfOrderRight: 0, nowhere: 0 };
    const cases = fc.sample(fc.tuple(shapeArb, anyStreamArb, fc.boolean()), { numRuns: 3000, seed: 12 });
    for (const [{ size, lateness }, stream, closeBetween] of cases) {
      const ops = closeBetween ? stream : onlyFinalClose(stream);
      const { r, ref } = checkAgainstReference(size, lateness, ops);
      seen.late += ref.late.filter(Boolean).length;
      // Closing changed some window's events, although no event was late.
      const ideal = reference(size, lateness, ops, true).rows;
      if (JSON.stringify(ideal) !== JSON.stringify(ref.rows) && ref.late.every((l) => !l)) seen.partial++;
      const adds = ops.filter((op) => op.kind === "add");
      adds.forEach((op, i) => {
        const earlier = adds.slice(0, i).some((o) => o.ts > op.ts);
        if (earlier && r.updates[i]!.some((w) => w.start === op.ts + 1)) seen.outOfOrderRight++;
        if (!r.late[i] && !r.updates[i]!.some((w) => w.start <= op.ts && op.ts <= w.end)) seen.nowhere++;
      });
    }
    expect(seen.late).toBeGreaterThan(50);
    expect(seen.partial).toBeGreaterThan(10);
    expect(seen.outOfOrderRight).toBeGreaterThan(50);
    expect(seen.nowhere).toBeGreaterThan(0);
  });

  test("without lateness, each distinct set of events within size is one window, and none is empty", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), anyStreamArb, (size, ops) => {
        // Allowed lateness beyond the stream's span: nothing is late, nothing closes before the end.
        const events = ops.filter((op) => op.kind === "add");
        const r = run(size, 1_000_000, [...events, ops.at(-1)!]);
        expect(finalRows(r)).toEqual(distinctSets(size, events));
        expect(r.finals.every((w) => w.count > 0)).toBe(true);
      }),
      fcParams(300),
    );
  });

  test("close() returns each window once, in end order, and updates carry increasing revisions", () => {
    fc.assert(
      fc.property(shapeArb, anyStreamArb, ({ size, lateness }, ops) => {
        let sw = new SlidingWindows<Aggregate, Value>(size, lateness, aggregateOps);
        const revisions = new Map<number, number>();
        const closed = new Set<number>();
        for (const op of ops) {
          if (op.kind === "add") {
            for (const w of sw.add(op.ts, op.value).updated) {
              expect(closed.has(w.start)).toBe(false);
              expect(w.revision).toBe((revisions.get(w.start) ?? 0) + 1);
              revisions.set(w.start, w.revision);
            }
            continue;
          }
          const finals = sw.close(op.watermark);
          expect(finals.map((w) => w.end)).toEqual(finals.map((w) => w.end).sort((a, b) => a - b));
          for (const w of finals) {
            expect(closed.has(w.start)).toBe(false);
            expect(w.revision).toBe(revisions.get(w.start)!);
            expect(w.end + lateness).toBeLessThan(sw.watermark!);
            closed.add(w.start);
          }
          expect(sw.open().every((w) => w.end + lateness >= sw.watermark!)).toBe(true);
        }
        expect(closed.size).toBe(revisions.size);
      }),
      fcParams(300),
    );
  });

  test("checkpoint through JSON and restore mid-stream: identical results", () => {
    fc.assert(
      fc.property(shapeArb, anyStreamArb, fc.nat(), ({ size, lateness }, ops, at) => {
        expect(run(size, lateness, ops, at % ops.length)).toEqual(run(size, lateness, ops));
      }),
      fcParams(300),
    );
  });
});

describe("sliding windows: the reference check is not vacuous", () => {
  test("one changed aggregate in the module's output is caught", () => {
    const ops = fc.sample(streamArb, { numRuns: 50, seed: 7 }).find((o) => reference(10, 5, o).rows.length > 2)!;
    const r = finalRows(run(10, 5, ops));
    const ref = reference(10, 5, ops).rows;
    expect(r).toEqual(ref);
    const mutated = r.map((row, i) => (i === Math.floor(r.length / 2) ? { ...row, count: row.count + 1 } : row));
    expect(mutated).not.toEqual(ref);
  });

  test("a wrong model (half-open windows) is falsified", () => {
    const wrong = (size: number, ops: StreamOp[]) =>
      reference(size, 1_000_000, ops).rows.map((row) => {
        const inside = ops.filter((op): op is Extract<StreamOp, { kind: "add" }> => op.kind === "add" && op.ts >= row.start && op.ts < row.end);
        return rowOf(row.start, row.end, inside.map((op) => op.value));
      });
    const result = fc.check(
      fc.property(fc.integer({ min: 1, max: 30 }), anyStreamArb, (size, ops) => {
        expect(finalRows(run(size, 1_000_000, ops))).toEqual(wrong(size, ops));
      }),
      { numRuns: 300, seed: 1 },
    );
    expect(result.failed).toBe(true);
  });

  test("a model that ignores lateness is falsified", () => {
    const result = fc.check(
      fc.property(shapeArb, anyStreamArb, ({ size, lateness }, ops) => {
        expect(finalRows(run(size, lateness, ops))).toEqual(reference(size, lateness, ops, true).rows);
      }),
      { numRuns: 300, seed: 1 },
    );
    expect(result.failed).toBe(true);
  });
});

describe("sliding windows: memory", () => {
  test("state after many events with moving time holds only the events within size + lateness", () => {
    const size = 100;
    const lateness = 50;
    const prng = new Prng(12);
    const sw = new SlidingWindows<Aggregate, Value>(size, lateness, aggregateOps);
    let clock = 0;
    let maxEvents = 0;
    let maxWindows = 0;
    const recent: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      clock += prng.int(20);
      const ts = prng.chance(0.1) ? clock - prng.int(200) : clock;
      if (sw.add(ts, prng.int(100)).late) continue;
      recent.push(ts);
      sw.close(clock);
      const state = sw.toJSON();
      const horizon = sw.watermark! - size - lateness - 1;
      // Exactly the accepted events at or after the horizon are kept.
      expect(state.events.length).toBe(recent.filter((t) => t >= horizon).length);
      // Every open window is the left or right window of one of them.
      expect(state.windows.length).toBeLessThanOrEqual(2 * state.events.length);
      maxEvents = Math.max(maxEvents, state.events.length);
      maxWindows = Math.max(maxWindows, state.windows.length);
      while (recent.length && recent[0]! < horizon - 200) recent.shift();
    }
    // About 10 ms apart, 151 ms of events: a few dozen, however long the stream.
    expect(maxEvents).toBeLessThan(60);
    expect(maxWindows).toBeLessThan(120);
  });
});

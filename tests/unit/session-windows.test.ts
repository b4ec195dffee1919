import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { aggregateOps, typedAggregateOps, type TypedAggregate, type TypedValue } from "../../src/actor/aggregate-ops.ts";
import { SessionWindows, type Session } from "../../src/actor/session-windows.ts";
import type { Aggregate } from "../../src/actor/windows.ts";
import { Prng } from "../../src/sim/prng.ts";
import { byStart, FINAL_WATERMARK, anyStreamArb, fcParams, onlyFinalClose, rowFromAggregate, rowOf, streamArb, type Row, type StreamOp } from "../support/window-streams.ts";

type Value = number | undefined;
type Revised = Row & { revision: number };

interface Run {
  /** Sessions close() returned, in the order it returned them. */
  finals: Revised[];
  /** What each add emitted. */
  adds: Array<{ upserted: Revised | null; retracted: Revised[]; late: boolean }>;
}

function revised(s: Session<Aggregate>): Revised {
  return { ...rowFromAggregate(s.start, s.end, s.aggregate), revision: s.revision };
}

/** Runs the module over the ops; `restoreAt`: checkpoint through JSON text and restore before that op. */
function run(gapMs: number, latenessMs: number, ops: StreamOp[], restoreAt = -1): Run {
  let sw = new SessionWindows<Aggregate, Value>(gapMs, latenessMs, aggregateOps);
  const out: Run = { finals: [], adds: [] };
  ops.forEach((op, i) => {
    if (i === restoreAt) sw = SessionWindows.fromJSON(JSON.parse(JSON.stringify(sw.toJSON())), aggregateOps);
    if (op.kind === "close") {
      out.finals.push(...sw.close(op.watermark).map(revised));
      return;
    }
    const { upserted, retracted, late } = sw.add(op.ts, op.value);
    out.adds.push({ upserted: upserted && revised(upserted), retracted: retracted.map(revised), late });
  });
  return out;
}

/** Sessions of a set of events by definition: sorted by ts, split where consecutive events are more than gap apart. */
function partition<E extends { ts: number }>(gapMs: number, events: E[]): E[][] {
  const sorted = [...events].sort((a, b) => a.ts - b.ts);
  const parts: E[][] = [];
  for (const e of sorted) {
    const last = parts.at(-1);
    if (last && e.ts - last.at(-1)!.ts <= gapMs) last.push(e);
    else parts.push([e]);
  }
  return parts;
}

function sessionRow(events: Array<{ ts: number; value: Value }>): Row {
  return rowOf(events[0]!.ts, events.at(-1)!.ts, events.map((e) => e.value));
}

/**
 * The reference, from the definition and recomputed from scratch at every op: the open events are
 * partitioned into sessions; with W the watermark (largest timestamp or close watermark so far),
 * a session whose last event + gap + lateness < W is closed, i.e. frozen out of the open events.
 * An event is late when adding it to the open events would make a closed session: when it is
 * within gap of no open session and ts + gap + lateness < W. Any other joins the open events.
 * `closedJoin` makes an event within gap of a closed session late too (a wrong model, below).
 */
function reference(gapMs: number, latenessMs: number, ops: StreamOp[], closedJoin = false): { rows: Row[]; late: boolean[] } {
  let open: Array<{ ts: number; value: Value }> = [];
  const closed: Row[] = [];
  const late: boolean[] = [];
  let w = -Infinity;
  for (const op of ops) {
    w = Math.max(w, op.kind === "add" ? op.ts : op.watermark);
    for (const part of partition(gapMs, open)) {
      if (part.at(-1)!.ts + gapMs + latenessMs >= w) continue;
      closed.push(sessionRow(part));
      open = open.filter((e) => !part.includes(e));
    }
    if (op.kind !== "add") continue;
    const near = (s: Row) => op.ts >= s.start - gapMs && op.ts <= s.end + gapMs;
    const nearOpen = partition(gapMs, open).some((part) => near(sessionRow(part)));
    const isLate = (!nearOpen && op.ts + gapMs + latenessMs < w) || (closedJoin && closed.some(near));
    late.push(isLate);
    if (!isLate) open.push({ ts: op.ts, value: op.value });
  }
  assert(open.length === 0, "the final close closes every session");
  return { rows: closed.sort(byStart), late };
}

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** What a sink holds after applying every emission in order: upsert by (start, end), delete on retraction. */
function sinkView(r: Run): Map<string, Revised> {
  const sink = new Map<string, Revised>();
  for (const { upserted, retracted } of r.adds) {
    for (const s of retracted) sink.delete(`${s.start}:${s.end}`);
    if (upserted) sink.set(`${upserted.start}:${upserted.end}`, upserted);
  }
  return sink;
}

const strip = ({ revision: _, ...row }: Revised): Row => row;

function checkAgainstReference(gap: number, lateness: number, ops: StreamOp[]): { r: Run; ref: ReturnType<typeof reference> } {
  const r = run(gap, lateness, ops);
  const ref = reference(gap, lateness, ops);
  expect([...r.finals].sort(byStart).map(strip)).toEqual(ref.rows);
  expect([...sinkView(r).values()].sort(byStart).map(strip)).toEqual(ref.rows);
  expect(r.adds.map((a) => a.late)).toEqual(ref.late);
  return { r, ref };
}

const shapeArb = fc.record({
  gap: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 25 })),
  lateness: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 20 })),
});

describe("session windows: Kafka's documented example", () => {
  // SessionWindows javadoc: gap 5, records 1 @ 10, 2 @ 12, 3 @ 20: sessions [10, 12] and [20, 20];
  // then 4 @ 16 merges both into [10, 20].
  test("with [10, 12] still open (grace 3), 16 merges both sessions; the old identities are retracted", () => {
    const sw = new SessionWindows<Aggregate, Value>(5, 3, aggregateOps);
    sw.add(10, 1);
    expect(sw.add(12, 2).retracted.map((s) => [s.start, s.end])).toEqual([[10, 10]]);
    expect(sw.add(20, 3)).toMatchObject({ upserted: { start: 20, end: 20, revision: 1 }, retracted: [], late: false });
    expect(sw.open().map((s) => [s.start, s.end])).toEqual([
      [10, 12],
      [20, 20],
    ]);
    const { upserted, retracted } = sw.add(16, 4);
    expect(upserted).toEqual({ start: 10, end: 20, aggregate: { count: 4, valued: 4, sum: 10, min: 1, max: 4 }, revision: 3 });
    expect(retracted.map((s) => [s.start, s.end, s.revision])).toEqual([
      [10, 12, 2],
      [20, 20, 1],
    ]);
  });

  test("with no grace, [10, 12] closed at stream time 20 (12 + 5 < 20): 16 starts from [20, 20] only (as Kafka 4.1 does)", () => {
    const sw = new SessionWindows<Aggregate, Value>(5, 0, aggregateOps);
    for (const [ts, v] of [
      [10, 1],
      [12, 2],
      [20, 3],
    ] as const)
      sw.add(ts, v);
    expect(sw.close(20).map((s) => [s.start, s.end])).toEqual([[10, 12]]);
    const { upserted, retracted, late } = sw.add(16, 4);
    expect(late).toBe(false);
    expect([upserted!.start, upserted!.end, upserted!.aggregate.count]).toEqual([16, 20, 2]);
    expect(retracted.map((s) => [s.start, s.end])).toEqual([[20, 20]]);
  });

  test("the same without calling close() first: a closed session is never joined", () => {
    const sw = new SessionWindows<Aggregate, Value>(5, 0, aggregateOps);
    for (const ts of [10, 12, 20]) sw.add(ts, 1);
    expect(sw.add(16, 1).upserted).toMatchObject({ start: 16, end: 20 });
    expect(sw.close(FINAL_WATERMARK).map((s) => [s.start, s.end, s.aggregate.count])).toEqual([
      [10, 12, 2],
      [16, 20, 2],
    ]);
  });
});

describe("session windows: gap, closing, lateness", () => {
  test("the gap is inclusive: an event exactly gap after the last one extends the session", () => {
    const sw = new SessionWindows<Aggregate, Value>(5, 0, aggregateOps);
    sw.add(10, 1);
    expect(sw.add(15, 1).upserted).toMatchObject({ start: 10, end: 15 });
    expect(sw.add(21, 1).upserted).toMatchObject({ start: 21, end: 21 });
    expect(sw.add(21, 1)).toMatchObject({ upserted: { start: 21, end: 21, revision: 2 }, retracted: [] });
  });

  test("an event inside a session updates it without a retraction", () => {
    const sw = new SessionWindows<Aggregate, Value>(10, 0, aggregateOps);
    sw.add(100, 1);
    sw.add(108, 2);
    const r = sw.add(104, 3);
    expect(r.retracted).toEqual([]);
    expect(r.upserted).toEqual({ start: 100, end: 108, aggregate: { count: 3, valued: 3, sum: 6, min: 1, max: 3 }, revision: 3 });
  });

  test("a session closes once the watermark passes end + gap + allowed lateness", () => {
    const sw = new SessionWindows<Aggregate, Value>(10, 5, aggregateOps);
    sw.add(100, 1);
    expect(sw.nextCloseAt()).toBe(116);
    expect(sw.close(115)).toEqual([]);
    // At 115 an event 15 ms earlier than the watermark still extends it.
    expect(sw.add(100, 2).upserted!.aggregate.count).toBe(2);
    expect(sw.close(116).map((s) => [s.start, s.end, s.aggregate.count])).toEqual([[100, 100, 2]]);
    expect(sw.nextCloseAt()).toBeNull();
  });

  test("an event whose session would already be closed is late", () => {
    const sw = new SessionWindows<Aggregate, Value>(10, 5, aggregateOps);
    sw.add(200, 1);
    expect(sw.add(184, 1)).toEqual({ upserted: null, retracted: [], late: true });
    expect(sw.add(185, 1).upserted).toMatchObject({ start: 185, end: 185 });
    expect(sw.add(190, 1).upserted).toMatchObject({ start: 185, end: 200, revision: 2 });
  });

  test("an event older than that but within gap of an open session extends it backwards (as Kafka)", () => {
    const sw = new SessionWindows<Aggregate, Value>(10, 0, aggregateOps);
    sw.add(110, 1);
    sw.add(120, 1);
    // 105 + 10 < 120, yet [110, 120] is open and 105 is within gap of it.
    expect(sw.add(105, 1)).toMatchObject({ upserted: { start: 105, end: 120 }, late: false });
    expect(sw.add(94, 1).late).toBe(true);
  });

  test("an event inside a closed session's span extends an open session: the two overlap (as Kafka)", () => {
    const sw = new SessionWindows<Aggregate, Value>(10, 0, aggregateOps);
    for (const ts of [100, 110, 130]) sw.add(ts, 1); // [100, 110] closed at 130
    expect(sw.add(120, 1).upserted).toMatchObject({ start: 120, end: 130 }); // within gap of [100, 110] too
    expect(sw.add(115, 1).upserted).toMatchObject({ start: 115, end: 130 });
    const { upserted, retracted } = sw.add(109, 1);
    expect([upserted!.start, upserted!.end, retracted.map((s) => [s.start, s.end])]).toEqual([109, 130, [[115, 130]]]);
    // Kafka Streams 4.1.1 forwards the same (TopologyTestDriver): ... 115:130:null 109:130:{4 events}.
    expect(sw.close(FINAL_WATERMARK).map((s) => [s.start, s.end, s.aggregate.count])).toEqual([
      [100, 110, 2],
      [109, 130, 4],
    ]);
  });

  test("a session ending at exactly stream time - gap - lateness is still open and joined (Kafka 4.1.1 overwrites it)", () => {
    const sw = new SessionWindows<Aggregate, Value>(5, 3, aggregateOps);
    sw.add(1000, 1);
    sw.add(992, 1); // 992 + 5 + 3 = 1000: open
    // Kafka's processor accepts both, but its store already hides [992, 992] from the second, which
    // then overwrites it: one event lost (checked with TopologyTestDriver).
    expect(sw.add(992, 1)).toMatchObject({ upserted: { start: 992, end: 992, revision: 2, aggregate: { count: 2 } }, late: false });
  });

  test("per-type aggregates merge through typedAggregateOps", () => {
    const sw = new SessionWindows<TypedAggregate, TypedValue>(5, 10, typedAggregateOps);
    sw.add(10, { type: "view" });
    sw.add(20, { type: "buy", value: 9 });
    const { upserted } = sw.add(15, { type: "view", value: 1 });
    expect(upserted!.aggregate).toEqual({
      all: { count: 3, valued: 2, sum: 10, min: 1, max: 9 },
      types: [
        ["buy", { count: 1, valued: 1, sum: 9, min: 9, max: 9 }],
        ["view", { count: 2, valued: 1, sum: 1, min: 1, max: 1 }],
      ],
    });
    const restored = SessionWindows.fromJSON<TypedAggregate, TypedValue>(JSON.parse(JSON.stringify(sw.toJSON())), typedAggregateOps);
    expect(restored.open()).toEqual(sw.open());
  });

  test("invalid shapes and timestamps are bugs of the caller", () => {
    expect(() => new SessionWindows(0, 0, aggregateOps)).toThrow(/invariant/);
    expect(() => new SessionWindows(5, -1, aggregateOps)).toThrow(/invariant/);
    expect(() => new SessionWindows(5, 0, aggregateOps).add(Number.NaN, 1)).toThrow(/invariant/);
  });
});

describe("session windows: against the reference model", () => {
  test("final sessions, the sink's view of the emissions and late events equal the reference's", () => {
    fc.assert(
      fc.property(shapeArb, anyStreamArb, fc.boolean(), ({ gap, lateness }, stream, closeBetween) => {
        checkAgainstReference(gap, lateness, closeBetween ? stream : onlyFinalClose(stream));
      }),
      fcParams(400),
    );
  });

  test("the generated streams reach merges, late events, events near closed sessions and overlaps", () => {
    const seen = { merges: 0, late: 0, nearClosed: 0, overlaps: 0 };
    const cases = fc.sample(fc.tuple(shapeArb, anyStreamArb, fc.boolean()), { numRuns: 3000, seed: 12 });
    for (const [{ gap, lateness }, stream, closeBetween] of cases) {
      const ops = closeBetween ? stream : onlyFinalClose(stream);
      const { r, ref } = checkAgainstReference(gap, lateness, ops);
      seen.merges += r.adds.filter((a) => a.retracted.length === 2).length;
      seen.late += ref.late.filter(Boolean).length;
      if (JSON.stringify(reference(gap, lateness, ops, true)) !== JSON.stringify(ref)) seen.nearClosed++;
      if (ref.rows.some((row, i) => i > 0 && row.start <= ref.rows[i - 1]!.end)) seen.overlaps++;
    }
    expect(seen.merges).toBeGreaterThan(50);
    expect(seen.late).toBeGreaterThan(50);
    expect(seen.nearClosed).toBeGreaterThan(50);
    expect(seen.overlaps).toBeGreaterThan(0);
  });

  test("without lateness, the sessions are the events split where they are more than gap apart", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 25 }), anyStreamArb, (gap, ops) => {
        const events = ops.filter((op): op is Extract<StreamOp, { kind: "add" }> => op.kind === "add");
        const r = run(gap, 1_000_000, [...events, ops.at(-1)!]);
        expect(r.finals.map(strip)).toEqual(partition(gap, events).map(sessionRow));
      }),
      fcParams(300),
    );
  });

  test("retractions name live sessions, revisions increase, identities never come back, finals are final", () => {
    fc.assert(
      fc.property(shapeArb, anyStreamArb, ({ gap, lateness }, ops) => {
        const sw = new SessionWindows<Aggregate, Value>(gap, lateness, aggregateOps);
        const live = new Map<string, Revised>();
        const gone = new Set<string>();
        for (const op of ops) {
          if (op.kind === "close") {
            const finals = sw.close(op.watermark).map(revised);
            expect(finals.map((s) => s.end)).toEqual(finals.map((s) => s.end).sort((a, b) => a - b));
            for (const s of finals) {
              const id = `${s.start}:${s.end}`;
              // The final state is the last one upserted.
              expect(live.get(id)).toEqual(s);
              expect(s.end + gap + lateness).toBeLessThan(sw.watermark!);
              live.delete(id);
              gone.add(id);
            }
            continue;
          }
          const { upserted, retracted } = sw.add(op.ts, op.value);
          for (const s of retracted.map(revised)) {
            const id = `${s.start}:${s.end}`;
            expect(live.get(id)).toEqual(s);
            expect(upserted!.revision).toBeGreaterThan(s.revision);
            live.delete(id);
            gone.add(id);
          }
          if (!upserted) continue;
          const id = `${upserted.start}:${upserted.end}`;
          expect(gone.has(id)).toBe(false);
          expect(upserted.revision).toBeGreaterThan(live.get(id)?.revision ?? 0);
          live.set(id, revised(upserted));
        }
        expect(live.size).toBe(0);
      }),
      fcParams(300),
    );
  });

  test("checkpoint through JSON and restore mid-stream: identical results", () => {
    fc.assert(
      fc.property(shapeArb, anyStreamArb, fc.nat(), ({ gap, lateness }, ops, at) => {
        expect(run(gap, lateness, ops, at % ops.length)).toEqual(run(gap, lateness, ops));
      }),
      fcParams(300),
    );
  });
});

describe("session windows: the reference check is not vacuous", () => {
  test("one changed session in the module's output is caught", () => {
    const ops = fc.sample(streamArb, { numRuns: 50, seed: 7 }).find((o) => reference(5, 5, o).rows.length > 2)!;
    const r = [...run(5, 5, ops).finals].sort(byStart).map(strip);
    const ref = reference(5, 5, ops).rows;
    expect(r).toEqual(ref);
    const mutated = r.map((row, i) => (i === 1 ? { ...row, end: row.end + 1 } : row));
    expect(mutated).not.toEqual(ref);
  });

  test("a wrong model (events less than gap apart, exclusive) is falsified", () => {
    const result = fc.check(
      fc.property(fc.integer({ min: 1, max: 25 }), anyStreamArb, (gap, ops) => {
        const events = ops.filter((op): op is Extract<StreamOp, { kind: "add" }> => op.kind === "add");
        expect(run(gap, 1_000_000, [...events, ops.at(-1)!]).finals.map(strip)).toEqual(partition(gap - 1, events).map(sessionRow));
      }),
      { numRuns: 300, seed: 1 },
    );
    expect(result.failed).toBe(true);
  });

  test("a wrong model (an event within gap of a closed session is late) is falsified", () => {
    const result = fc.check(
      fc.property(shapeArb, anyStreamArb, ({ gap, lateness }, ops) => {
        expect(run(gap, lateness, ops).adds.map((a) => a.late)).toEqual(reference(gap, lateness, ops, true).late);
      }),
      { numRuns: 300, seed: 1 },
    );
    expect(result.failed).toBe(true);
  });
});

describe("session windows: memory", () => {
  test("state after many events with moving time holds only the open sessions", () => {
    const gap = 30;
    const lateness = 50;
    const prng = new Prng(21);
    const sw = new SessionWindows<Aggregate, Value>(gap, lateness, aggregateOps);
    let clock = 0;
    let maxSessions = 0;
    let closed = 0;
    for (let i = 0; i < 20_000; i++) {
      // Bursts of activity separated by pauses longer than the gap.
      clock += prng.chance(0.05) ? gap + prng.int(100) : prng.int(10);
      const ts = prng.chance(0.1) ? clock - prng.int(120) : clock;
      sw.add(ts, prng.int(100));
      closed += sw.close(clock).length;
      const { sessions } = sw.toJSON();
      expect(sessions.every((s) => s.end + gap + lateness >= sw.watermark!)).toBe(true);
      maxSessions = Math.max(maxSessions, sessions.length);
    }
    expect(closed).toBeGreaterThan(500);
    // Open sessions end within gap + lateness of the watermark and are more than gap apart.
    expect(maxSessions).toBeLessThanOrEqual(Math.ceil((gap + lateness) / gap) + 1);
  });
});

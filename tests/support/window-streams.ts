import fc from "fast-check";
import type { Aggregate } from "../../src/actor/windows.ts";

/**
 * Event streams for the window-shape property tests (sliding-windows, session-windows): events out
 * of order, with equal timestamps, late beyond allowed lateness and in bursts, and watermark
 * advances (the actor's idle close) between them. Values are whole numbers or absent, so sums are
 * exact whatever order they are added in.
 */
export type StreamOp = { kind: "add"; id: number; ts: number; value: number | undefined } | { kind: "close"; watermark: number };

/** A window or session as the tests compare them. */
export interface Row {
  start: number;
  end: number;
  count: number;
  valued: number;
  sum: number;
  min: number | null;
  max: number | null;
}

/** A last close with a watermark past everything closes every window and session. */
export const FINAL_WATERMARK = 1e12;

const step = fc.record({
  /** How far the producer's clock moves before this op. */
  advance: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: 5, max: 40 }) }),
  /** How far behind the producer's clock the event is (0 mostly: in order). */
  delay: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 15 }) }, { weight: 1, arbitrary: fc.integer({ min: 16, max: 80 }) }),
  /** Copies at the same timestamp (bursts). */
  burst: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 5 }) }),
  /** Absent one time in six. */
  value: fc.option(fc.integer({ min: -50, max: 50 }), { freq: 6, nil: undefined }),
  /** One step in eight is a watermark advance instead of an event, this far past the clock. */
  close: fc.oneof({ weight: 7, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 30 }) }),
});

/** Ops ending with a final close; event ids are arrival order. */
export const streamArb: fc.Arbitrary<StreamOp[]> = fc.array(step, { minLength: 1, maxLength: 45 }).map((steps) => {
  const ops: StreamOp[] = [];
  let clock = 1_000;
  let id = 0;
  for (const s of steps) {
    clock += s.advance;
    if (s.close !== undefined) {
      ops.push({ kind: "close", watermark: clock + s.close });
      continue;
    }
    for (let i = 0; i < s.burst; i++) ops.push({ kind: "add", id: id++, ts: clock - s.delay, value: s.value });
  }
  ops.push({ kind: "close", watermark: FINAL_WATERMARK });
  return ops;
});

/** The ops without the watermark advances before the final close (as when the caller never closes in between). */
export function onlyFinalClose(ops: StreamOp[]): StreamOp[] {
  return ops.filter((op, i) => op.kind === "add" || i === ops.length - 1);
}

/**
 * Events a few ms apart, each arriving up to 40 ms after its time, in arrival order: steady
 * disorder, so sessions that started apart get bridged and windows close between related events.
 */
export const disorderedArb: fc.Arbitrary<StreamOp[]> = fc
  .array(
    fc.record({
      step: fc.integer({ min: 0, max: 12 }),
      delay: fc.integer({ min: 0, max: 40 }),
      value: fc.option(fc.integer({ min: -50, max: 50 }), { freq: 6, nil: undefined }),
    }),
    { minLength: 1, maxLength: 40 },
  )
  .map((steps) => {
    let ts = 1_000;
    const timed = steps.map((s, id) => ({ id, ts: (ts += s.step), value: s.value, arrival: ts + s.delay }));
    timed.sort((a, b) => a.arrival - b.arrival || a.id - b.id);
    const ops: StreamOp[] = timed.map(({ id, ts, value }) => ({ kind: "add", id, ts, value }));
    ops.push({ kind: "close", watermark: FINAL_WATERMARK });
    return ops;
  });

/** Either kind of stream. */
export const anyStreamArb = fc.oneof(streamArb, disorderedArb);

export function rowOf(start: number, end: number, values: Array<number | undefined>): Row {
  const valued = values.filter((v): v is number => v !== undefined);
  return {
    start,
    end,
    count: values.length,
    valued: valued.length,
    sum: valued.reduce((a, b) => a + b, 0),
    min: valued.length ? Math.min(...valued) : null,
    max: valued.length ? Math.max(...valued) : null,
  };
}

export function rowFromAggregate(start: number, end: number, a: Aggregate): Row {
  return { start, end, count: a.count, valued: a.valued, sum: a.sum, min: a.min, max: a.max };
}

export function byStart(a: Row, b: Row): number {
  return a.start - b.start || a.end - b.end;
}

/** fast-check settings: FC_SEED=<n> replays a reported failure, FC_RUNS=<n> changes the length. */
export function fcParams<T>(numRuns: number): fc.Parameters<T> {
  const seed = process.env.FC_SEED;
  return { numRuns: Number(process.env.FC_RUNS ?? numRuns), ...(seed ? { seed: Number(seed) } : {}) };
}

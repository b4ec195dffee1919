import { describe, expect, test } from "bun:test";
import { aggregateView } from "../../src/delivery/records.ts";
import { windowView } from "../../src/http/views.ts";
import { addToAggregate, emptyAggregate, parseWindowSpec, specName, windowStarts, type WindowSpec } from "../../src/actor/windows.ts";
import { SeededRandom } from "../support/fake-env.ts";

const S = 1_000;
const M = 60_000;
const H = 3_600_000;

function spec(text: string): WindowSpec {
  const parsed = parseWindowSpec(text);
  if (typeof parsed === "string") throw new Error(parsed);
  return parsed;
}

/** Brute force: every epoch-aligned window [k*hop, k*hop+size) with k >= 0 that contains ts, newest first. */
function bruteStarts(s: WindowSpec, ts: number): number[] {
  const starts: number[] = [];
  for (let start = 0; start <= ts; start += s.hop) if (ts < start + s.size) starts.push(start);
  return starts.reverse();
}

/** End of the earliest-ending window containing ts: the first of its windows to close. */
function earliestEnd(s: WindowSpec, ts: number): number {
  return Math.min(...windowStarts(s, ts)) + s.size;
}

describe("parseWindowSpec", () => {
  test("tumbling spec: hop equals size", () => {
    expect(parseWindowSpec("1m")).toEqual({ name: "1m", size: M, hop: M });
    expect(parseWindowSpec("1h")).toEqual({ name: "1h", size: H, hop: H });
    expect(parseWindowSpec("30s")).toEqual({ name: "30s", size: 30 * S, hop: 30 * S });
  });

  test("hopping spec: size every hop", () => {
    expect(parseWindowSpec("5m/1m")).toEqual({ name: "5m/1m", size: 5 * M, hop: M });
    expect(parseWindowSpec("1h/15m")).toEqual({ name: "1h/15m", size: H, hop: 15 * M });
  });

  test("names are normalized to the shortest spelling", () => {
    expect(parseWindowSpec("60s")).toEqual({ name: "1m", size: M, hop: M });
    expect(parseWindowSpec("300s/60000ms")).toEqual({ name: "5m/1m", size: 5 * M, hop: M });
    expect(parseWindowSpec("90s")).toEqual({ name: "90s", size: 90 * S, hop: 90 * S });
  });

  test("a hop equal to the size is a tumbling window", () => {
    expect(parseWindowSpec("1m/1m")).toEqual({ name: "1m", size: M, hop: M });
    expect(parseWindowSpec("1m/60s")).toEqual({ name: "1m", size: M, hop: M });
  });

  test("surrounding whitespace is ignored", () => {
    expect(parseWindowSpec("  5m/1m ")).toEqual({ name: "5m/1m", size: 5 * M, hop: M });
    expect(parseWindowSpec("5m / 1m")).toEqual({ name: "5m/1m", size: 5 * M, hop: M });
  });

  test.each([
    ["", "size"],
    ["abc", "size"],
    ["0s", "size"],
    ["-1m", "size"],
    ["1.5m", "size"],
    ["5m/", "hop"],
    ["5m/0s", "hop"],
    ["5m/x", "hop"],
    ["1m/5m", "multiple"],
    ["5m/2m", "multiple"],
    ["1m/2m/3m", "more than one"],
  ])("rejects %p", (text, fragment) => {
    const result = parseWindowSpec(text);
    expect(typeof result).toBe("string");
    expect(result as string).toContain(fragment);
  });

  test("specName", () => {
    expect(specName(M, M)).toBe("1m");
    expect(specName(5 * M, M)).toBe("5m/1m");
    expect(specName(86_400_000, H)).toBe("1d/1h");
    expect(specName(1500, 1500)).toBe("1500ms");
  });
});

describe("tumbling windows", () => {
  const m1 = spec("1m");

  test("an event belongs to exactly one window", () => {
    expect(windowStarts(m1, 0)).toEqual([0]);
    expect(windowStarts(m1, 1)).toEqual([0]);
    expect(windowStarts(m1, 59_999)).toEqual([0]);
    expect(windowStarts(m1, 125_000)).toEqual([120_000]);
  });

  test("a timestamp exactly at a boundary starts the next window (half-open)", () => {
    expect(windowStarts(m1, M)).toEqual([M]);
    expect(windowStarts(m1, 2 * M)).toEqual([2 * M]);
    expect(earliestEnd(m1, M - 1)).toBe(M);
    expect(earliestEnd(m1, M)).toBe(2 * M);
  });

  test("the containing window of real timestamps", () => {
    expect(earliestEnd(m1, 0)).toBe(M);
    expect(earliestEnd(m1, 125_000)).toBe(180_000);
    const t = Date.UTC(2026, 10, 21, 10, 30, 15, 250);
    expect(earliestEnd(m1, t)).toBe(Date.UTC(2026, 10, 21, 10, 31, 0, 0));
    expect(windowStarts(spec("1h"), t)).toEqual([Date.UTC(2026, 10, 21, 10, 0, 0, 0)]);
  });
});

describe("hopping windows", () => {
  const h5 = spec("5m/1m");

  test("an event belongs to size/hop windows, newest first", () => {
    const ts = 10 * M + 30 * S;
    expect(windowStarts(h5, ts)).toEqual([10 * M, 9 * M, 8 * M, 7 * M, 6 * M]);
    for (const start of windowStarts(h5, ts)) {
      expect(start <= ts && ts < start + h5.size).toBe(true);
    }
  });

  test("a timestamp exactly at a start is in the window starting there, not the one ending there", () => {
    expect(windowStarts(h5, 10 * M)).toEqual([10 * M, 9 * M, 8 * M, 7 * M, 6 * M]);
    // [5m, 10m) does not contain 10m.
    expect(windowStarts(h5, 10 * M)).not.toContain(5 * M);
    expect(windowStarts(h5, 10 * M - 1)).toEqual([9 * M, 8 * M, 7 * M, 6 * M, 5 * M]);
    expect(earliestEnd(h5, 10 * M - 1)).toBe(10 * M);
    expect(earliestEnd(h5, 10 * M)).toBe(11 * M);
  });

  test("near the epoch only windows starting at or after 0 exist", () => {
    expect(windowStarts(h5, 0)).toEqual([0]);
    expect(windowStarts(h5, 2 * M + 1)).toEqual([2 * M, M, 0]);
    expect(earliestEnd(h5, 0)).toBe(5 * M);
    expect(earliestEnd(h5, 2 * M + 1)).toBe(5 * M);
    expect(earliestEnd(h5, 5 * M)).toBe(6 * M);
  });

  test("every window of a real timestamp has full size/hop multiplicity", () => {
    const ts = Date.UTC(2026, 0, 1, 12, 7, 13);
    const starts = windowStarts(h5, ts);
    expect(starts).toEqual([7, 6, 5, 4, 3].map((m) => Date.UTC(2026, 0, 1, 12, m, 0)));
    expect(earliestEnd(h5, ts)).toBe(Date.UTC(2026, 0, 1, 12, 8, 0));
    expect(windowStarts(spec("1h/15m"), ts)).toEqual([0, -15, -30, -45].map((m) => Date.UTC(2026, 0, 1, 12, m, 0)));
  });

  test("randomized: windowStarts agrees with brute force", () => {
    const rng = new SeededRandom(42);
    const specs = ["1m", "5m/1m", "10s/5s", "1h/15m", "3s/1s", "7s"].map(spec);
    for (let i = 0; i < 2_000; i++) {
      const s = specs[rng.int(specs.length)]!;
      // Mostly random, sometimes exactly on a hop boundary or one ms either side of it.
      let ts = rng.int(3 * H);
      if (rng.int(3) === 0) ts = Math.floor(ts / s.hop) * s.hop + (rng.int(3) - 1);
      ts = Math.max(0, ts);
      const expected = bruteStarts(s, ts);
      expect(windowStarts(s, ts)).toEqual(expected);
      expect(expected.length).toBe(Math.min(s.size / s.hop, Math.floor(ts / s.hop) + 1));
    }
  });
});

describe("aggregates", () => {
  test("empty aggregate", () => {
    expect(emptyAggregate()).toEqual({ count: 0, valued: 0, sum: 0, min: null, max: null });
    expect(aggregateView(emptyAggregate())).toEqual({ count: 0, sum: 0, min: null, max: null, avg: null });
  });

  test("count covers every event; sum/min/max/avg only valued ones", () => {
    const agg = emptyAggregate();
    for (const v of [5, undefined, -3, 10, undefined, 0]) addToAggregate(agg, v);
    expect(agg).toEqual({ count: 6, valued: 4, sum: 12, min: -3, max: 10 });
    expect(aggregateView(agg)).toEqual({ count: 6, sum: 12, min: -3, max: 10, avg: 3 });
  });

  test("events without a value count but leave min/max/avg empty", () => {
    const agg = emptyAggregate();
    addToAggregate(agg, undefined);
    addToAggregate(agg, undefined);
    expect(agg).toEqual({ count: 2, valued: 0, sum: 0, min: null, max: null });
    expect(aggregateView(agg).avg).toBeNull();
  });

  test("zero is a real value for min and max", () => {
    const agg = emptyAggregate();
    addToAggregate(agg, 0);
    expect(agg.min).toBe(0);
    expect(agg.max).toBe(0);
    addToAggregate(agg, 4);
    expect(agg.min).toBe(0);
    expect(agg.max).toBe(4);
    addToAggregate(agg, -1);
    expect(agg.min).toBe(-1);
    expect(aggregateView(agg).avg).toBeCloseTo(1, 10);
  });

  test("randomized: aggregate matches direct computation", () => {
    const rng = new SeededRandom(7);
    for (let round = 0; round < 50; round++) {
      const agg = emptyAggregate();
      const values: Array<number | undefined> = [];
      const n = 1 + rng.int(40);
      for (let i = 0; i < n; i++) values.push(rng.int(4) === 0 ? undefined : rng.int(2001) - 1000);
      for (const v of values) addToAggregate(agg, v);
      const valued = values.filter((v): v is number => v !== undefined);
      expect(agg.count).toBe(n);
      expect(agg.valued).toBe(valued.length);
      expect(agg.sum).toBe(valued.reduce((a, b) => a + b, 0));
      expect(agg.min).toBe(valued.length ? Math.min(...valued) : null);
      expect(agg.max).toBe(valued.length ? Math.max(...valued) : null);
      const view = aggregateView(agg);
      expect(view.avg).toBe(valued.length ? agg.sum / valued.length : null);
    }
  });

  test("windowView renders overall and per-type aggregates", () => {
    const all = emptyAggregate();
    const click = emptyAggregate();
    const buy = emptyAggregate();
    addToAggregate(all, undefined);
    addToAggregate(click, undefined);
    addToAggregate(all, 8);
    addToAggregate(buy, 8);
    addToAggregate(all, 2);
    addToAggregate(buy, 2);
    const w = { spec: "1m", start: 0, end: M, all, types: new Map([["click", click], ["buy", buy]]) };
    const view = windowView(w);
    expect(view).toMatchObject({ size: "1m", start: "1970-01-01T00:00:00.000Z", end: "1970-01-01T00:01:00.000Z" });
    expect(view).toMatchObject({ count: 3, sum: 10, min: 2, max: 8, avg: 5, closed: false });
    expect(view.by_type).toEqual({
      click: { count: 1, sum: 0, min: null, max: null, avg: null },
      buy: { count: 2, sum: 10, min: 2, max: 8, avg: 5 },
    });
    expect(windowView(w, "buy")).toMatchObject({ type: "buy", count: 2, avg: 5 });
    expect(windowView(w, "nope")).toMatchObject({ type: "nope", count: 0, avg: null });
    const closed = windowView({ ...w, closedAt: 2 * M, closedBy: "idle" as const });
    expect(closed).toMatchObject({ closed: true, closed_at: "1970-01-01T00:02:00.000Z", closed_by: "idle" });
  });
});

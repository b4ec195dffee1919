import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { AggregateName, AlertRecord, Comparison, DetectionRule } from "../../src/actor/analytics.ts";
import { alertIdempotencyKey, Detector, detectionRuleProblem, type DetectorState, type WindowObservation } from "../../src/actor/detect.ts";
import { actorName } from "../../src/actor/tenant.ts";

const M = 60_000;
const KEY = "user-1";

type Values = Partial<Record<AggregateName, number>>;

function obs(start: number, values: Values, final = false, extra: Partial<WindowObservation> = {}): WindowObservation {
  return { type: "purchase", shape: "1m", start, end: start + M, aggregates: (name) => values[name], final, ...extra };
}

/** A JSON round trip of the detector's state, as a checkpoint makes one. */
function restarted(d: Detector, rules: readonly DetectionRule[]): Detector {
  return new Detector(d.key, rules, JSON.parse(JSON.stringify(d.toJSON())));
}

const threshold = (op: Comparison, value: number, aggregate: AggregateName = "count"): DetectionRule => ({
  name: "many",
  kind: "threshold",
  type: "purchase",
  window: "1m",
  aggregate,
  op,
  threshold: value,
});

describe("threshold", () => {
  const rules = [threshold(">", 10)];

  test("fires once per window, at the first observation past the threshold, naming its event", () => {
    const d = new Detector(KEY, rules);
    expect(d.observe(obs(0, { count: 5 }), "e1", 100)).toEqual([]);
    expect(d.observe(obs(0, { count: 10 }), "e2", 200)).toEqual([]);
    expect(d.observe(obs(0, { count: 11 }), "e3", 300)).toEqual([
      { kind: "alert", rule: "many", key: KEY, window: { shape: "1m", start: 0, end: M }, aggregate: "count", value: 11, eventId: "e3", firedAt: 300 },
    ]);
    expect(d.observe(obs(0, { count: 12 }), "e4", 400)).toEqual([]);
    expect(d.observe(obs(0, { count: 12 }, true), "e5", 500)).toEqual([]);
  });

  test("not for a window that never crosses; at the close for one first seen there", () => {
    const d = new Detector(KEY, rules);
    for (const [count, final] of [[3, false], [10, false], [10, true]] as const) expect(d.observe(obs(M, { count }, final), "e", 0)).toEqual([]);
    expect(d.observe(obs(2 * M, { count: 20 }, true), "e9", 900).map((a) => [a.window.start, a.value, a.eventId])).toEqual([[2 * M, 20, "e9"]]);
  });

  test("other types and shapes, missing and non-finite aggregates fire nothing", () => {
    const d = new Detector(KEY, rules);
    expect(d.observe(obs(0, { count: 99 }, false, { type: "view" }), "e", 0)).toEqual([]);
    expect(d.observe(obs(0, { count: 99 }, false, { shape: "5m" }), "e", 0)).toEqual([]);
    expect(d.observe(obs(0, { sum: 99 }), "e", 0)).toEqual([]);
    expect(d.observe(obs(0, { count: Infinity }), "e", 0)).toEqual([]);
    expect(d.watches("purchase", "1m")).toBe(true);
    expect(d.watches("purchase", "5m")).toBe(false);
    expect(d.observe(obs(0, { count: 11 }), "e", 0)).toHaveLength(1);
  });

  test("a restart from the serialized state fires no window twice", () => {
    let d = new Detector(KEY, rules);
    expect(d.observe(obs(0, { count: 11 }), "e1", 1)).toHaveLength(1);
    d = restarted(d, rules);
    expect(d.observe(obs(0, { count: 15 }), "e2", 2)).toEqual([]);
    expect(d.observe(obs(M, { count: 15 }), "e3", 3)).toHaveLength(1);
    d = restarted(d, rules);
    expect(d.observe(obs(M, { count: 16 }, true), "e4", 4)).toEqual([]);
    expect(d.toJSON().rules[0]!.fired).toEqual([]);
  });

  test("a closed window is never judged again, and its fired state is forgotten", () => {
    const d = new Detector(KEY, rules);
    d.observe(obs(0, { count: 11 }), "e1", 1);
    d.observe(obs(0, { count: 11 }, true), "e2", 2);
    expect(d.observe(obs(0, { count: 50 }), "e3", 3)).toEqual([]);
    expect(d.toJSON().rules[0]).toMatchObject({ fired: [], closedThrough: 0, closed: [] });
  });
});

describe("session windows (they do not close in start order)", () => {
  const rule: DetectionRule = { name: "long", kind: "threshold", type: "purchase", window: "session:5m", aggregate: "count", op: ">=", threshold: 2 };
  const session = (start: number, end: number, count: number, final = false): WindowObservation => ({
    type: "purchase",
    shape: "session:5m",
    start,
    end,
    aggregates: (name) => (name === "count" ? count : undefined),
    final,
  });

  test("a session extended backwards over a closed one is another window and fires; a start fired for never fires again", () => {
    const d = new Detector(KEY, [rule]);
    expect(d.observe(session(100, 200, 2), "e1", 1).map((a) => a.window.start)).toEqual([100]);
    d.observe(session(100, 200, 2, true), "e2", 2); // closed
    // An open session reaching back before the closed one's start: judged, and fires.
    expect(d.observe(session(50, 300, 3), "e3", 3).map((a) => [a.window.start, a.eventId])).toEqual([[50, "e3"]]);
    // A later session starting where the closed one did: the alert (rule, key, shape, 100) exists already.
    expect(d.observe(session(100, 400, 5), "e4", 4)).toEqual([]);
    // Through a restart too.
    const restored = new Detector(KEY, [rule], JSON.parse(JSON.stringify(d.toJSON())));
    expect(restored.observe(session(50, 500, 6), "e5", 5)).toEqual([]);
    expect(restored.observe(session(30, 500, 7), "e6", 6).map((a) => a.window.start)).toEqual([30]);
  });

  test("the firings a session rule remembers are bounded", () => {
    const d = new Detector(KEY, [rule]);
    for (let i = 0; i < 1_200; i++) d.observe(session(i * 1_000, i * 1_000 + 10, 2), `e${i}`, i);
    const fired = d.toJSON().rules[0]!.fired;
    expect(fired.length).toBe(1_000);
    expect(fired[0]).toBe(200 * 1_000);
  });
});

describe("change", () => {
  const rule: DetectionRule = { name: "jump", kind: "change", type: "purchase", window: "1m", aggregate: "sum", op: ">=", ratio: 2 };

  test("compares with the latest closed window ending at or before this one starts", () => {
    const d = new Detector(KEY, [rule]);
    expect(d.observe(obs(0, { sum: 100 }), "a", 0)).toEqual([]); // no previous window
    expect(d.observe(obs(0, { sum: 100 }, true), "b", 0)).toEqual([]);
    expect(d.observe(obs(M, { sum: 150 }), "c", 0)).toEqual([]); // 1.5
    const [alert] = d.observe(obs(M, { sum: 250 }), "d", 7); // 2.5
    expect(alert).toMatchObject({ rule: "jump", value: 250, baseline: { previous: 100 }, eventId: "d", window: { start: M } });
    expect(d.observe(obs(M, { sum: 300 }), "e", 0)).toEqual([]); // once per window
  });

  test("the previous window is the latest CLOSED one: before 1m..2m closes, 2m..3m compares with 0..1m", () => {
    const d = new Detector(KEY, [rule]);
    d.observe(obs(0, { sum: 100 }, true), "a", 0);
    d.observe(obs(M, { sum: 250 }), "b", 0); // fires against 100
    expect(d.observe(obs(2 * M, { sum: 150 }), "c", 0)).toEqual([]); // 150 / 100
    d.observe(obs(M, { sum: 250 }, true), "d", 0);
    expect(d.observe(obs(2 * M, { sum: 400 }), "e", 0)).toEqual([]); // 400 / 250 = 1.6
    expect(d.observe(obs(2 * M, { sum: 500 }), "f", 0)).toMatchObject([{ value: 500, baseline: { previous: 250 } }]);
  });

  test("hopping windows compare with the latest one that does not overlap", () => {
    const hop = { ...rule, window: "2m/1m" };
    const d = new Detector(KEY, [hop]);
    const w = (start: number, sum: number, final: boolean) => obs(start, { sum }, final, { shape: "2m/1m", end: start + 2 * M });
    d.observe(w(0, 10, true), "a", 0);
    d.observe(w(M, 100, true), "b", 0);
    // 2m..4m: previous is 0..2m (10), not the overlapping 1m..3m (100).
    expect(d.observe(w(2 * M, 30, false), "c", 0)).toMatchObject([{ value: 30, baseline: { previous: 10 } }]);
    // 3m..5m: previous is 1m..3m (100).
    expect(d.observe(w(3 * M, 150, false), "d", 0)).toEqual([]);
    expect(d.toJSON().rules[0]!.closed).toEqual([[0, 2 * M, 10], [M, 3 * M, 100]]);
    d.observe(w(2 * M, 30, true), "e", 0);
    d.observe(w(3 * M, 150, true), "f", 0);
    // 0..2m can be no later window's previous any more: every later one starts after 3m, where 1m..3m ends.
    expect(d.toJSON().rules[0]!.closed).toEqual([[M, 3 * M, 100], [2 * M, 4 * M, 30], [3 * M, 5 * M, 150]]);
  });

  test("a previous value of 0 gives no ratio; closed windows without a value are skipped", () => {
    const d = new Detector(KEY, [rule]);
    d.observe(obs(0, { sum: 0 }, true), "a", 0);
    expect(d.observe(obs(M, { sum: 500 }), "b", 0)).toEqual([]);
    d.observe(obs(M, { sum: 5 }, true), "c", 0);
    d.observe(obs(2 * M, {}, true), "d", 0);
    expect(d.observe(obs(3 * M, { sum: 10 }), "e", 0)).toMatchObject([{ baseline: { previous: 5 } }]);
  });

  test("ratios below one: a drop", () => {
    const drop: DetectionRule = { ...rule, name: "drop", op: "<=", ratio: 0.5 };
    const d = new Detector(KEY, [drop]);
    d.observe(obs(0, { sum: 100 }, true), "a", 0);
    expect(d.observe(obs(M, { sum: 60 }), "b", 0)).toEqual([]);
    expect(d.observe(obs(M, { sum: 50 }), "c", 0)).toMatchObject([{ value: 50, baseline: { previous: 100 } }]);
  });
});

describe("zscore", () => {
  const rule: DetectionRule = { name: "spike", kind: "zscore", type: "purchase", window: "1m", aggregate: "count", above: 2, baseline: 4, warmup: 3 };
  const close = (d: Detector, start: number, count: number) => expect(d.observe(obs(start, { count }, true), "x", 0)).toEqual([]);

  test("hand-computed: warm-up, sample stddev, strict >, rolling baseline", () => {
    const d = new Detector(KEY, [rule]);
    close(d, 0, 10);
    close(d, M, 12);
    expect(d.observe(obs(2 * M, { count: 1_000 }), "a", 0)).toEqual([]); // 2 closed windows < warmup 3
    d.observe(obs(2 * M, { count: 14 }, true), "b", 0); // a window is judged before it joins the baseline
    // Baseline 10, 12, 14: mean 12, sample stddev sqrt((4 + 0 + 4) / 2) = 2.
    expect(d.observe(obs(3 * M, { count: 15 }), "c", 0)).toEqual([]); // z = 1.5
    expect(d.observe(obs(3 * M, { count: 16 }), "d", 0)).toEqual([]); // z = 2, not above 2
    expect(d.observe(obs(3 * M, { count: 17 }), "e", 5)).toEqual([
      {
        kind: "alert",
        rule: "spike",
        key: KEY,
        window: { shape: "1m", start: 3 * M, end: 4 * M },
        aggregate: "count",
        value: 17,
        baseline: { mean: 12, stddev: 2, windows: 3 },
        eventId: "e",
        firedAt: 5,
      },
    ]);
    expect(d.observe(obs(3 * M, { count: 30 }, true), "f", 0)).toEqual([]); // once per window
    close(d, 4 * M, 11);
    // The last 4 closed: 12, 14, 30, 11; mean 16.75; squares 22.5625 + 7.5625 + 175.5625 + 33.0625 = 238.75; / 3.
    const stddev = Math.sqrt(238.75 / 3);
    expect(d.toJSON().rules[0]!.closed.map((c) => c[2])).toEqual([12, 14, 30, 11]);
    expect(d.observe(obs(5 * M, { count: 34 }), "g", 0)).toEqual([]); // z = 17.25 / 8.92 = 1.93
    expect(d.observe(obs(5 * M, { count: 35 }), "h", 0)).toMatchObject([{ value: 35, baseline: { mean: 16.75, stddev, windows: 4 } }]);
  });

  test("stddev 0: any value above a flat baseline fires, the baseline value does not", () => {
    const d = new Detector(KEY, [{ ...rule, warmup: 0 }]);
    close(d, 0, 5);
    close(d, M, 5);
    expect(d.observe(obs(2 * M, { count: 5 }), "a", 0)).toEqual([]);
    expect(d.observe(obs(2 * M, { count: 6 }), "b", 0)).toMatchObject([{ baseline: { mean: 5, stddev: 0, windows: 2 } }]);
  });

  test("warm-up 0 still needs two windows for a standard deviation", () => {
    const d = new Detector(KEY, [{ ...rule, warmup: 0 }]);
    close(d, 0, 5);
    expect(d.observe(obs(M, { count: 500 }), "a", 0)).toEqual([]);
  });

  test("the baseline survives a restart; a rule whose target changed starts afresh", () => {
    let d = new Detector(KEY, [rule]);
    for (const [i, count] of [10, 12, 14].entries()) close(d, i * M, count);
    d = restarted(d, [rule]);
    expect(d.observe(obs(3 * M, { count: 17 }), "a", 0)).toHaveLength(1);
    const retargeted = { ...rule, aggregate: "sum" as const };
    const fresh = new Detector(KEY, [retargeted], d.toJSON());
    expect(fresh.toJSON().rules[0]).toMatchObject({ fired: [], closed: [], closedThrough: null });
    const shorter = new Detector(KEY, [{ ...rule, baseline: 2, warmup: 2 }], d.toJSON());
    expect(shorter.toJSON().rules[0]!.closed.map((c) => c[2])).toEqual([12, 14]);
  });
});

describe("rules, state and identity", () => {
  test("rules are checked: unique names, usable parameters", () => {
    const z: DetectionRule = { name: "z", kind: "zscore", type: "t", window: "1m", aggregate: "count", above: 2, baseline: 5, warmup: 3 };
    expect(detectionRuleProblem(z)).toBeUndefined();
    expect(detectionRuleProblem({ ...z, baseline: 1 })).toBeString();
    expect(detectionRuleProblem({ ...z, warmup: 6 })).toBeString();
    expect(detectionRuleProblem({ ...z, baseline: 2.5 })).toBeString();
    expect(detectionRuleProblem({ ...threshold(">", Infinity) })).toBeString();
    expect(() => new Detector(KEY, [z, z])).toThrow(/unique/);
    expect(() => new Detector(KEY, [{ ...z, baseline: 0 }])).toThrow(/baseline/);
  });

  test("corrupt state is refused; unknown rules in it are dropped; hostile rule names are plain data", () => {
    const rule = { ...threshold(">", 1), name: "__proto__" };
    expect(() => new Detector(KEY, [rule], { v: 2, rules: [] })).toThrow();
    expect(() => new Detector(KEY, [rule], { v: 1, rules: [{ rule: "x" }] })).toThrow();
    const d = new Detector(KEY, [rule]);
    expect(d.observe(obs(0, { count: 2 }), "a", 0)).toMatchObject([{ rule: "__proto__" }]);
    const state: DetectorState = JSON.parse(JSON.stringify(d.toJSON()));
    state.rules.push({ rule: "gone", target: "[]", fired: [1], closedThrough: null, closed: [] });
    const again = new Detector(KEY, [rule], state);
    expect(again.observe(obs(0, { count: 3 }), "b", 0)).toEqual([]);
    expect(again.toJSON().rules.map((r) => r.rule)).toEqual(["__proto__"]);
  });

  test("rules on one window fire in rule order, each once", () => {
    const rules = [threshold(">", 1), { ...threshold(">", 2, "sum"), name: "rich" }];
    const d = new Detector(KEY, rules);
    expect(d.observe(obs(0, { count: 2, sum: 5 }), "a", 0).map((a) => a.rule)).toEqual(["many", "rich"]);
  });

  test("alertIdempotencyKey: tenant, client key, rule, shape and start as a JSON array", () => {
    const d = new Detector(actorName("acme", 'a|"b'), [threshold(">", 1)]);
    const [alert] = d.observe(obs(M, { count: 2 }), "e", 0);
    expect(alertIdempotencyKey(alert!)).toBe(JSON.stringify(["acme", 'a|"b', "many", "1m", M]));
    const [plain] = new Detector("user-1", [threshold(">", 1)]).observe(obs(M, { count: 2 }), "e", 0);
    expect(alertIdempotencyKey(plain!)).toBe('["default","user-1","many","1m",60000]');
  });
});

// ---------------------------------------------------------------------------------------------
// The model: a brute-force restatement of the rules over the whole observation history, with no
// pruning and no incremental state, against which the detector is checked on random streams.

interface Step {
  obs: WindowObservation;
  values: Values;
  eventId: string;
}

type Alert = Omit<AlertRecord, "firedAt"> & { firedAt: number };

function modelAlerts(key: string, rules: readonly DetectionRule[], steps: readonly Step[]): Alert[] {
  const alerts: Alert[] = [];
  steps.forEach(({ obs: o, values, eventId }, index) => {
    for (const rule of rules) {
      if (rule.type !== o.type || rule.window !== o.shape) continue;
      const history = steps.slice(0, index).filter((s) => s.obs.type === o.type && s.obs.shape === o.shape);
      // Closed windows before this observation, in close order, the first close of each start only.
      const closes = history.filter((s, i) => s.obs.final && !history.slice(0, i).some((t) => t.obs.final && t.obs.start >= s.obs.start));
      if (closes.some((s) => s.obs.start >= o.start)) continue; // a window already closed
      const value = values[rule.aggregate];
      if (value === undefined) continue;
      const alreadyFired = alerts.some((a) => a.rule === rule.name && a.window.start === o.start);
      if (alreadyFired) continue;
      const valued = closes.filter((s) => s.values[rule.aggregate] !== undefined);
      let baseline: Alert["baseline"] | undefined;
      let fires = false;
      if (rule.kind === "threshold") fires = cmp(value, rule.op, rule.threshold);
      if (rule.kind === "change") {
        const before = valued.filter((s) => s.obs.end <= o.start);
        before.sort((a, b) => b.obs.end - a.obs.end || b.obs.start - a.obs.start);
        const previous = before[0]?.values[rule.aggregate];
        if (previous !== undefined && previous !== 0) {
          fires = cmp(value / previous, rule.op, rule.ratio);
          baseline = { previous };
        }
      }
      if (rule.kind === "zscore") {
        const xs = valued.slice(-rule.baseline).map((s) => s.values[rule.aggregate]!);
        if (xs.length >= 2 && xs.length >= rule.warmup) {
          const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
          const stddev = Math.sqrt(xs.reduce((a, x) => a + (x - mean) * (x - mean), 0) / (xs.length - 1));
          const z = stddev === 0 ? (value === mean ? 0 : (value - mean) * Infinity) : (value - mean) / stddev;
          fires = z > rule.above;
          baseline = { mean, stddev, windows: xs.length };
        }
      }
      if (!fires) continue;
      alerts.push({
        kind: "alert",
        rule: rule.name,
        key,
        window: { shape: o.shape, start: o.start, end: o.end },
        aggregate: rule.aggregate,
        value,
        ...(baseline ? { baseline } : {}),
        eventId,
        firedAt: index,
      });
    }
  });
  return alerts;
}

function cmp(a: number, op: Comparison, b: number): boolean {
  return { ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "==": a === b, "!=": a !== b }[op];
}

function runDetector(detector: Detector, steps: readonly Step[], from: number, to: number): Alert[] {
  const out: Alert[] = [];
  for (let i = from; i < to; i++) out.push(...detector.observe(steps[i]!.obs, steps[i]!.eventId, i));
  return out;
}

const OPS: Comparison[] = [">", ">=", "<", "<=", "==", "!="];
const aggregateArb = fc.constantFrom<AggregateName>("count", "sum");
const ruleArb: fc.Arbitrary<Omit<DetectionRule, "name">> = fc.oneof(
  fc.record({ kind: fc.constant("threshold" as const), aggregate: aggregateArb, op: fc.constantFrom(...OPS), threshold: fc.integer({ min: -3, max: 25 }) }),
  fc.record({ kind: fc.constant("change" as const), aggregate: aggregateArb, op: fc.constantFrom(...OPS), ratio: fc.constantFrom(-1, 0.5, 1, 1.5, 2, 3) }),
  fc
    .record({ kind: fc.constant("zscore" as const), aggregate: aggregateArb, above: fc.constantFrom(-1, 0, 0.5, 1, 2), baseline: fc.integer({ min: 2, max: 5 }), warmup: fc.nat(5) })
    .map((r) => ({ ...r, warmup: Math.min(r.warmup, r.baseline) })),
).map((r) => ({ ...r, type: "purchase", window: "w" }) as Omit<DetectionRule, "name">);
const rulesArb = fc.array(ruleArb, { minLength: 1, maxLength: 4 }).map((rs) => rs.map((r, i) => ({ ...r, name: `r${i}` }) as DetectionRule));

const valuesArb: fc.Arbitrary<Values> = fc
  .record({ count: fc.integer({ min: 0, max: 12 }), sum: fc.option(fc.integer({ min: -4, max: 24 }), { nil: undefined, freq: 6 }) })
  .map(({ count, sum }) => (sum === undefined ? { count } : { count, sum }));

const windowArb = fc.record({
  gap: fc.integer({ min: 1, max: 3 }),
  length: fc.integer({ min: 1, max: 3 }),
  updates: fc.array(valuesArb, { maxLength: 4 }),
  final: valuesArb,
});

type Of<A> = A extends fc.Arbitrary<infer T> ? T : never;

const streamArb = fc.record({
  sessions: fc.boolean(),
  size: fc.integer({ min: 1, max: 3 }),
  windows: fc.array(windowArb, { minLength: 1, maxLength: 8 }),
  noise: fc.array(fc.tuple(fc.constantFrom("view/w", "purchase/v"), valuesArb, fc.nat()), { maxLength: 4 }),
  /** Observations of windows already closed (to be ignored), after which step. */
  resends: fc.array(fc.tuple(fc.nat(), valuesArb), { maxLength: 3 }),
  choices: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
});

/**
 * An ordered stream of observations: windows of fixed size (overlapping when size > gap) or
 * sessions (disjoint, of varying length), their updates interleaved at random, closes in start
 * order, with observations of other types and shapes and re-sent observations of closed windows.
 */
function buildSteps(s: Of<typeof streamArb>): Step[] {
  let start = 0;
  const windows = s.windows.map((w) => {
    start += w.gap * M;
    const end = s.sessions ? start + (w.length * M) / 4 : start + s.size * M;
    const list = [...w.updates.map((values) => ({ values, final: false })), { values: w.final, final: true }];
    return { start, end, list };
  });
  const raw: Array<{ o: WindowObservation; values: Values }> = [];
  const make = (type: string, shape: string, w: { start: number; end: number }, values: Values, final: boolean) => ({
    o: { type, shape, start: w.start, end: w.end, aggregates: (name: AggregateName) => values[name], final },
    values,
  });
  let step = 0;
  for (;;) {
    const open = windows.findIndex((w) => w.list.length > 0);
    if (open < 0) break;
    // Any window may take its next update; only the oldest unclosed one may close.
    const candidates = windows.map((w, i) => i).filter((i) => windows[i]!.list.length > 0 && (!windows[i]!.list[0]!.final || i === open));
    const i = candidates[s.choices[step++ % s.choices.length]! % candidates.length]!;
    const next = windows[i]!.list.shift()!;
    raw.push(make("purchase", "w", windows[i]!, next.values, next.final));
  }
  for (const [what, values, at] of s.noise) {
    const [type, shape] = what.split("/") as [string, string];
    raw.splice(at % (raw.length + 1), 0, make(type, shape, windows[at % windows.length]!, values, at % 2 === 0));
  }
  for (const [at, values] of s.resends) {
    const position = at % (raw.length + 1);
    const closed = raw.slice(0, position).filter((r) => r.o.final && r.o.type === "purchase" && r.o.shape === "w");
    const target = closed[at % Math.max(1, closed.length)];
    if (target) raw.splice(position, 0, make("purchase", "w", target.o, values, at % 3 === 0));
  }
  return raw.map((r, i) => ({ obs: r.o, values: r.values, eventId: `e${i}` }));
}

const caseArb = fc.record({ rules: rulesArb, stream: streamArb, cut: fc.nat(), crash: fc.nat() });

type Case = Of<typeof caseArb>;
type Variant = (state: DetectorState) => DetectorState;
const SEED = 20_260_512;

/** The property: uninterrupted, restored at a cut, and replayed after a crash, the detector says what the model says. */
function agreesWithModel(c: Case, mutateRules: (rules: DetectionRule[]) => DetectionRule[] = (r) => r, mutateState: Variant = (s) => s): boolean {
  const steps = buildSteps(c.stream);
  const expected = modelAlerts(KEY, c.rules, steps);
  const rules = mutateRules(c.rules);
  const checkpoint = (d: Detector) => new Detector(KEY, rules, mutateState(JSON.parse(JSON.stringify(d.toJSON()))));

  const straight = runDetector(new Detector(KEY, rules), steps, 0, steps.length);
  expect(straight).toEqual(expected);
  const keys = expected.map(alertIdempotencyKey);
  expect(new Set(keys).size).toBe(keys.length); // once per rule and window

  // Restored from its serialized state at a random step: none lost, none twice.
  const cut = c.cut % (steps.length + 1);
  const first = new Detector(KEY, rules);
  const head = runDetector(first, steps, 0, cut);
  expect([...head, ...runDetector(checkpoint(first), steps, cut, steps.length)]).toEqual(expected);

  // A host went on from that checkpoint and crashed: the next one replays from it and makes the alerts
  // the first had made again, the same in identity, content and event (sinks dedupe them).
  const crash = cut + (c.crash % (steps.length - cut + 1));
  const lost = runDetector(checkpoint(first), steps, cut, crash);
  const resumed = checkpoint(first);
  const replayed = runDetector(resumed, steps, cut, steps.length);
  expect(replayed.slice(0, lost.length)).toEqual(lost);
  expect([...head, ...replayed]).toEqual(expected);

  // Bounded: what a rule remembers of a window goes when it closes.
  for (const saved of resumed.toJSON().rules) {
    expect(saved.fired.every((start) => saved.closedThrough === null || start > saved.closedThrough)).toBe(true);
    const rule = c.rules.find((r) => r.name === saved.rule)!;
    if (rule.kind === "zscore") expect(saved.closed.length).toBeLessThanOrEqual(rule.baseline);
    if (rule.kind === "threshold") expect(saved.closed).toEqual([]);
    if (rule.kind === "change") expect(saved.closed.length).toBeLessThanOrEqual(c.stream.sessions ? 2 : c.stream.size + 1);
  }
  return true;
}

describe("the detector against a brute-force model", () => {
  test("random streams: the same alerts as the model, uninterrupted, restored mid-stream and replayed after a crash", () => {
    fc.assert(
      fc.property(caseArb, (c) => agreesWithModel(c)),
      { seed: SEED, numRuns: 1_500 },
    );
  });

  test("the streams exercise every rule kind firing, closed-window re-sends and restores mid-window", () => {
    const samples = fc.sample(caseArb, { seed: SEED, numRuns: 400 });
    const fired = new Set<string>();
    let resends = 0;
    for (const c of samples) {
      const steps = buildSteps(c.stream);
      for (const a of modelAlerts(KEY, c.rules, steps)) fired.add(c.rules.find((r) => r.name === a.rule)!.kind);
      resends += c.stream.resends.length;
    }
    expect([...fired].sort()).toEqual(["change", "threshold", "zscore"]);
    expect(resends).toBeGreaterThan(100);
  });

  const caught = (mutateRules?: (rules: DetectionRule[]) => DetectionRule[], mutateState?: Variant) =>
    fc.check(
      fc.property(caseArb, (c) => agreesWithModel(c, mutateRules, mutateState)),
      { seed: SEED, numRuns: 1_500 },
    ).failed;

  test("the comparison catches a detector that forgets what it fired across a restart", () => {
    expect(caught(undefined, (s) => ({ ...s, rules: s.rules.map((r) => ({ ...r, fired: [] })) }))).toBe(true);
  });

  test("the comparison catches a detector that forgets its closed windows across a restart", () => {
    expect(caught(undefined, (s) => ({ ...s, rules: s.rules.map((r) => ({ ...r, closed: r.closed.slice(1) })) }))).toBe(true);
  });

  test("the comparison catches an off-by-one comparison (>= for >)", () => {
    const flip = (rules: DetectionRule[]) => rules.map((r) => (r.kind === "threshold" && r.op === ">" ? { ...r, op: ">=" as const } : r));
    expect(caught(flip)).toBe(true);
  });

  test("the comparison catches a zscore with a shorter baseline", () => {
    const shorter = (rules: DetectionRule[]) =>
      rules.map((r) => (r.kind === "zscore" && r.baseline > 2 ? { ...r, baseline: r.baseline - 1, warmup: Math.min(r.warmup, r.baseline - 1) } : r));
    expect(caught(shorter)).toBe(true);
  });
});

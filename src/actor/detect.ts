import { z } from "zod";
import { assert } from "../ports/assert.ts";
import type { AggregateName, AlertRecord, DetectionRule, WindowShapeName } from "./analytics.ts";
import { compare } from "./enrich.ts";
import { splitActorName } from "./tenant.ts";

/**
 * Detection (issue 12): one actor's rules on its windows' aggregates. Pure and synchronous: the
 * caller reports each update and each close of a window of a watched (type, shape), with the event
 * that caused it and the time, and gets the alerts to emit. Its state is JSON (toJSON(), given back
 * to the constructor), checkpointed with the actor's, so a restart neither fires an alert twice nor loses one.
 *
 * Per rule, over the windows of its type and shape, in observation order:
 * - a rule fires at most once per window (identity: rule, key, shape, start), at the first update or
 *   close whose value satisfies it; a window whose aggregate is undefined (or not finite) never fires;
 * - threshold: `value op threshold`;
 * - change: `value / previous op ratio`, where previous is the value of the latest window closed
 *   before this observation that ends at or before this window starts (greatest end, then start):
 *   for tumbling windows the one just before, once closed; for hopping and sliding windows the latest
 *   one that does not overlap; for sessions the previous session. Closed windows without a value are
 *   skipped; with no previous window, or a previous value of 0, there is no ratio and no firing;
 * - zscore: z = (value - mean) / stddev over the values of the last `baseline` windows closed before
 *   this observation (sample standard deviation, n - 1), only once max(warmup, 2) such windows exist;
 *   fires when z > above (spikes; one-sided). With stddev 0, z is +Infinity above the mean, -Infinity
 *   below and 0 at it. The window being closed joins the baseline after it is judged.
 *
 * Contract with the caller: a closed window is never observed again. Tumbling, hopping and sliding
 * windows of one shape all have one size, so they close in start order: an observation of a window
 * starting at or before the last closed one is ignored, and what a rule remembers of a window goes
 * when it closes, which keeps the state bounded.
 *
 * Session windows do not close in start order: an out-of-order event may extend an open session
 * backwards over one already closed (closed sessions are final and invisible to later events,
 * session-windows.ts). Such a session starts elsewhere: it is another window (sinks see the old
 * identity retracted) and may fire again, but never twice for one start, even one a closed session
 * had: a rule remembers the starts it fired for in its last MAX_SESSION_MEMORY firings, and for
 * change rules its last MAX_SESSION_MEMORY closed sessions (a bound, not a window of time: far beyond
 * what a key's sessions within allowed lateness reach).
 */

export interface WindowObservation {
  type: string;
  shape: WindowShapeName;
  start: number;
  end: number;
  /** The window's aggregates for `type`, by name; undefined when it has none (e.g. avg of no values). */
  aggregates: (name: AggregateName) => number | undefined;
  /** True for the window's close (its last observation). */
  final: boolean;
}

/** What a rule must satisfy to be run (config validation should refuse the rest): its problem, if any. */
export function detectionRuleProblem(rule: DetectionRule): string | undefined {
  if (rule.kind === "threshold" && !Number.isFinite(rule.threshold)) return "threshold must be a finite number";
  if (rule.kind === "change" && !Number.isFinite(rule.ratio)) return "ratio must be a finite number";
  if (rule.kind === "zscore") {
    if (!Number.isFinite(rule.above)) return "above must be a finite number";
    if (!Number.isInteger(rule.baseline) || rule.baseline < 2 || rule.baseline > MAX_BASELINE) {
      return `baseline must be a whole number of windows from 2 to ${MAX_BASELINE}`;
    }
    if (!Number.isInteger(rule.warmup) || rule.warmup < 0 || rule.warmup > rule.baseline) return "warmup must be a whole number from 0 to baseline";
  }
  return undefined;
}

/** Most closed windows a zscore baseline keeps: they are part of every checkpoint. */
export const MAX_BASELINE = 1_000;
/** Session windows: firings (starts) and closed sessions a rule remembers (see the module comment). */
export const MAX_SESSION_MEMORY = 1_000;

const watchesSessions = (rule: DetectionRule) => rule.window.startsWith("session:");

/**
 * What a sink dedupes an alert on: a JSON array of tenant, client key, rule, window shape and start,
 * e.g. `["default","user-1","big-spender","1h",1795255200000]` (as delivery/records.ts does for records).
 */
export function alertIdempotencyKey(alert: AlertRecord): string {
  const { tenant, key } = splitActorName(alert.key);
  return JSON.stringify([tenant, key, alert.rule, alert.window.shape, alert.window.start]);
}

interface ClosedValue {
  start: number;
  end: number;
  value: number;
}

interface RuleState {
  /** Starts of the rule's open windows it has fired for. */
  fired: Set<number>;
  /** Start of the last window closed: no window starting at or before it is observed again. */
  closedThrough: number | null;
  /** zscore: the last `baseline` closed values; change: the closed windows that may still be a later one's previous. */
  closed: ClosedValue[];
}

type Baseline = NonNullable<AlertRecord["baseline"]>;
/** A rule's judgement of a value: undefined when it does not fire, else what it compared the value with. */
type Verdict = { baseline?: Baseline } | undefined;

const freshState = (): RuleState => ({ fired: new Set(), closedThrough: null, closed: [] });

/** What a rule's remembered state is about: kept across a restart only while these stay the same. */
const targetOf = (rule: DetectionRule) => JSON.stringify([rule.kind, rule.type, rule.window, rule.aggregate]);

const savedRule = z.object({
  rule: z.string(),
  target: z.string(),
  fired: z.array(z.number()),
  closedThrough: z.number().nullable(),
  closed: z.array(z.tuple([z.number(), z.number(), z.number()])),
});
const savedState = z.object({ v: z.literal(1), rules: z.array(savedRule) });

/** A detector's state as JSON: per rule, the starts it fired for, the last closed start and [start, end, value] of the closed windows it keeps. */
export type DetectorState = z.infer<typeof savedState>;

/** The value a rule judges: the aggregate when it is a finite number. */
function valueOf(rule: DetectionRule, obs: WindowObservation): number | undefined {
  const value = obs.aggregates(rule.aggregate);
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** The previous window of one starting at `start` among `closed` (see the module comment). */
function previousOf(closed: readonly ClosedValue[], start: number): ClosedValue | undefined {
  let best: ClosedValue | undefined;
  for (const c of closed) {
    if (c.end <= start && (!best || c.end > best.end || (c.end === best.end && c.start > best.start))) best = c;
  }
  return best;
}

function meanAndStddev(values: readonly number[]): { mean: number; stddev: number } {
  assert(values.length >= 2, "a sample standard deviation needs two values");
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) * (v - mean);
  return { mean, stddev: Math.sqrt(squares / (values.length - 1)) };
}

function zScore(value: number, mean: number, stddev: number): number {
  if (stddev > 0) return (value - mean) / stddev;
  return value > mean ? Infinity : value < mean ? -Infinity : 0;
}

function judge(rule: DetectionRule, value: number, state: RuleState, start: number): Verdict {
  switch (rule.kind) {
    case "threshold":
      return compare(value, rule.op, rule.threshold) ? {} : undefined;
    case "change": {
      const previous = previousOf(state.closed, start);
      if (!previous || previous.value === 0) return undefined;
      return compare(value / previous.value, rule.op, rule.ratio) ? { baseline: { previous: previous.value } } : undefined;
    }
    case "zscore": {
      const values = state.closed.map((c) => c.value);
      if (values.length < Math.max(rule.warmup, 2)) return undefined;
      const { mean, stddev } = meanAndStddev(values);
      return zScore(value, mean, stddev) > rule.above ? { baseline: { mean, stddev, windows: values.length } } : undefined;
    }
  }
}

/** Records a window's close in a rule's state, forgetting what no later observation can need. */
function close(rule: DetectionRule, state: RuleState, start: number, end: number, value: number | undefined): void {
  const sessions = watchesSessions(rule);
  if (!sessions) {
    state.closedThrough = start;
    for (const fired of state.fired) if (fired <= start) state.fired.delete(fired);
  }
  if (rule.kind === "threshold") return;
  if (value !== undefined) state.closed.push({ start, end, value });
  if (rule.kind === "zscore") {
    if (state.closed.length > rule.baseline) state.closed.splice(0, state.closed.length - rule.baseline);
    return;
  }
  if (sessions) {
    if (state.closed.length > MAX_SESSION_MEMORY) state.closed.splice(0, state.closed.length - MAX_SESSION_MEMORY);
    return;
  }
  // Later windows start after `start`: a closed window is outranked for good by one ending at or before it.
  const outranks = (d: ClosedValue, c: ClosedValue) => d.end <= start && (d.end > c.end || (d.end === c.end && d.start > c.start));
  state.closed = state.closed.filter((c) => !state.closed.some((d) => outranks(d, c)));
}

function restoreRule(rule: DetectionRule, saved: z.infer<typeof savedRule> | undefined): RuleState {
  if (!saved || saved.target !== targetOf(rule)) return freshState();
  let closed = saved.closed.map(([start, end, value]) => ({ start, end, value }));
  if (rule.kind === "threshold") closed = [];
  if (rule.kind === "zscore") closed = closed.slice(-rule.baseline);
  return { fired: new Set(saved.fired), closedThrough: saved.closedThrough, closed };
}

/** One actor's detection rules and what they remember. */
export class Detector {
  private readonly states = new Map<string, RuleState>();
  /** Rules by the type, then the shape, they watch (nested Maps: types are client data; no key is built per event). */
  private readonly watching = new Map<string, Map<WindowShapeName, DetectionRule[]>>();

  /**
   * `key`: the actor's name (tenant and key, as records carry it). `state`: what toJSON() returned
   * (parsed JSON); rules whose name or target (kind, type, window, aggregate) changed start afresh.
   */
  constructor(
    readonly key: string,
    private readonly rules: readonly DetectionRule[],
    state?: unknown,
  ) {
    const saved = state === undefined ? undefined : savedState.parse(state);
    const byName = new Map(saved?.rules.map((r) => [r.rule, r]));
    for (const rule of rules) {
      assert(!this.states.has(rule.name), `detection rule names are unique ("${rule.name}")`);
      const problem = detectionRuleProblem(rule);
      assert(problem === undefined, `detection rule "${rule.name}": ${problem} (config validation)`);
      this.states.set(rule.name, restoreRule(rule, byName.get(rule.name)));
      let byShape = this.watching.get(rule.type);
      if (!byShape) this.watching.set(rule.type, (byShape = new Map()));
      const list = byShape.get(rule.window);
      if (list) list.push(rule);
      else byShape.set(rule.window, [rule]);
    }
  }

  /** Whether any rule watches windows of this type and shape (callers may skip observing the rest). */
  watches(type: string, shape: WindowShapeName): boolean {
    return this.watching.get(type)?.has(shape) ?? false;
  }

  /**
   * The alerts one update or close of a window makes, in rule order. `eventId`: the event whose
   * arrival made this observation (for a close, the one that advanced the watermark, or whatever
   * the caller names for an idle close); `now`: the alerts' firedAt.
   */
  observe(obs: WindowObservation, eventId: string, now: number): AlertRecord[] {
    assert(Number.isFinite(obs.start) && Number.isFinite(obs.end) && obs.start <= obs.end, "a window starts before it ends");
    assert(Number.isFinite(now), "time is a finite number");
    const alerts: AlertRecord[] = [];
    for (const rule of this.watching.get(obs.type)?.get(obs.shape) ?? []) {
      const alert = this.step(rule, obs, eventId, now);
      if (alert) alerts.push(alert);
    }
    return alerts;
  }

  private step(rule: DetectionRule, obs: WindowObservation, eventId: string, now: number): AlertRecord | undefined {
    const state = this.states.get(rule.name)!;
    if (state.closedThrough !== null && obs.start <= state.closedThrough && !watchesSessions(rule)) return undefined;
    const value = valueOf(rule, obs);
    let alert: AlertRecord | undefined;
    if (value !== undefined && !state.fired.has(obs.start)) {
      const verdict = judge(rule, value, state, obs.start);
      if (verdict) {
        state.fired.add(obs.start);
        if (watchesSessions(rule) && state.fired.size > MAX_SESSION_MEMORY) state.fired.delete(Math.min(...state.fired));
        alert = {
          kind: "alert",
          rule: rule.name,
          key: this.key,
          window: { shape: obs.shape, start: obs.start, end: obs.end },
          aggregate: rule.aggregate,
          value,
          ...verdict,
          eventId,
          firedAt: now,
        };
      }
    }
    if (obs.final) close(rule, state, obs.start, obs.end, value);
    return alert;
  }

  /** The state to checkpoint with the actor's (JSON; the same on every host for the same input). */
  toJSON(): DetectorState {
    return {
      v: 1,
      rules: this.rules.map((rule) => {
        const state = this.states.get(rule.name)!;
        return {
          rule: rule.name,
          target: targetOf(rule),
          fired: [...state.fired].sort((a, b) => a - b),
          closedThrough: state.closedThrough,
          closed: state.closed.map((c): [number, number, number] => [c.start, c.end, c.value]),
        };
      }),
    };
  }
}

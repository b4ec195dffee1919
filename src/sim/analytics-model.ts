/**
 * The model's per-type windows and detection rules (issue 12), restated from docs/analytics-config.md,
 * docs/windows.md and the window modules' definitions, not borrowed from src/actor: it keeps a type's
 * accepted events and rebuilds what must exist from them.
 *
 * - A type's own windows are its configured shapes that KEYFLOW_WINDOWS does not have. They see the
 *   key's watermark W (the newest event time, or the idle advance): after an event, W counts it.
 * - tumbling/hopping: as the key's windows (epoch-aligned [start, start+size)), closed when
 *   end + lateness <= W; an event is late for the spec when a window holding it is closed.
 * - sliding (size): [s, s+size] inclusive. The windows that must exist are, over the accepted events,
 *   each one's left window (s = t - size) and its right window (s = t + 1) when some event lies in
 *   (t, t + 1 + size]; one is created when first required while open (s + size + lateness >= W) and
 *   holds the accepted events in its range; closed when s + size + lateness < W. An event is late
 *   when t + size + lateness < W.
 * - session (gap): an event joins the open sessions within gap of it (start - gap <= t <= end + gap),
 *   merging them; a change of span retracts the superseded sessions; closed when
 *   end + gap + lateness < W; late when it joins none and t + gap + lateness < W.
 * - revisions: 1 at creation, +1 per event added; a merged session one past the largest merged.
 * - threshold rules fire at the first observation (an update of a window by an event, or its close)
 *   where the aggregate satisfies them, once per rule and window start.
 */
import type { AnalyticsConfig, DetectionRule, WindowShape } from "../actor/analytics.ts";
import { windowShapeName } from "../actor/window-shapes.ts";

export interface MAgg {
  count: number;
  valued: number;
  sum: number;
  min: number | null;
  max: number | null;
}

export const zeroAgg = (): MAgg => ({ count: 0, valued: 0, sum: 0, min: null, max: null });

export function addTo(agg: MAgg, value: number | undefined): void {
  agg.count++;
  if (value === undefined) return;
  agg.valued++;
  agg.sum += value;
  if (agg.min === null || value < agg.min) agg.min = value;
  if (agg.max === null || value > agg.max) agg.max = value;
}

/** One window of a type's own, as the model keeps it. */
export interface MSeriesWindow {
  start: number;
  end: number;
  agg: MAgg;
  rev: number;
}

export interface SeriesChangeModel extends MSeriesWindow {
  retracted?: boolean;
}

interface ShapeModel {
  /** `w`: the key's watermark with the event counted. */
  add(ts: number, value: number | undefined, w: number): { late: boolean; changes: SeriesChangeModel[] };
  close(w: number): MSeriesWindow[];
  open(): MSeriesWindow[];
}

const copy = (x: MSeriesWindow): MSeriesWindow => ({ start: x.start, end: x.end, agg: { ...x.agg }, rev: x.rev });

class AlignedModel implements ShapeModel {
  private readonly windows = new Map<number, MSeriesWindow>();
  constructor(
    private readonly size: number,
    private readonly hop: number,
    private readonly lateness: number,
  ) {}

  add(ts: number, value: number | undefined, w: number) {
    let late = false;
    const changes: SeriesChangeModel[] = [];
    for (let k = 0; k * this.hop < this.size; k++) {
      const start = Math.floor(ts / this.hop) * this.hop - k * this.hop;
      if (start < 0) break;
      if (start + this.size + this.lateness <= w) {
        late = true;
        continue;
      }
      let win = this.windows.get(start);
      if (!win) this.windows.set(start, (win = { start, end: start + this.size, agg: zeroAgg(), rev: 0 }));
      addTo(win.agg, value);
      win.rev++;
      changes.push(copy(win));
    }
    return { late, changes };
  }

  close(w: number): MSeriesWindow[] {
    const closed = [...this.windows.values()].filter((x) => x.end + this.lateness <= w);
    for (const x of closed) this.windows.delete(x.start);
    return closed;
  }

  open(): MSeriesWindow[] {
    return [...this.windows.values()].map(copy);
  }
}

class SlidingModel implements ShapeModel {
  private events: Array<{ ts: number; value: number | undefined }> = [];
  private readonly windows = new Map<number, MSeriesWindow>();
  constructor(
    private readonly size: number,
    private readonly lateness: number,
  ) {}

  add(ts: number, value: number | undefined, w: number) {
    const changes: SeriesChangeModel[] = [];
    if (ts + this.size + this.lateness < w) return { late: true, changes };
    const isOpen = (s: number) => s + this.size + this.lateness >= w;
    for (const win of this.windows.values()) {
      if (win.start <= ts && ts <= win.end && isOpen(win.start)) {
        addTo(win.agg, value);
        win.rev++;
        changes.push(copy(win));
      }
    }
    this.events.push({ ts, value });
    const required = new Set<number>();
    for (const e of this.events) {
      required.add(e.ts - this.size);
      if (this.events.some((u) => u.ts > e.ts && u.ts <= e.ts + 1 + this.size)) required.add(e.ts + 1);
    }
    for (const s of required) {
      if (this.windows.has(s) || !isOpen(s)) continue;
      const win: MSeriesWindow = { start: s, end: s + this.size, agg: zeroAgg(), rev: 1 };
      for (const e of this.events) if (e.ts >= s && e.ts <= s + this.size) addTo(win.agg, e.value);
      this.windows.set(s, win);
      changes.push(copy(win));
    }
    // No window that is still open can hold an event older than this.
    this.events = this.events.filter((e) => e.ts >= w - this.size - this.lateness - 1);
    return { late: false, changes };
  }

  close(w: number): MSeriesWindow[] {
    const closed = [...this.windows.values()].filter((x) => x.start + this.size + this.lateness < w);
    for (const x of closed) this.windows.delete(x.start);
    return closed;
  }

  open(): MSeriesWindow[] {
    return [...this.windows.values()].map(copy);
  }
}

class SessionModel implements ShapeModel {
  private sessions: MSeriesWindow[] = [];
  private closed: MSeriesWindow[] = [];
  constructor(
    private readonly gap: number,
    private readonly lateness: number,
    /** Test hook (a wrong model): sessions split at half the gap. */
    private readonly halfGap = false,
  ) {}

  add(ts: number, value: number | undefined, w: number) {
    this.advance(w);
    const changes: SeriesChangeModel[] = [];
    const reach = this.halfGap ? Math.floor(this.gap / 2) : this.gap;
    const near = this.sessions.filter((s) => s.start - reach <= ts && ts <= s.end + reach);
    if (!near.length && ts + this.gap + this.lateness < w) return { late: true, changes };
    let session: MSeriesWindow;
    if (near.length === 1 && near[0]!.start <= ts && ts <= near[0]!.end) {
      session = near[0]!;
      addTo(session.agg, value);
      session.rev++;
    } else {
      for (const s of near) changes.push({ ...copy(s), retracted: true });
      const agg = zeroAgg();
      for (const s of near) {
        agg.count += s.agg.count;
        agg.valued += s.agg.valued;
        agg.sum += s.agg.sum;
        if (s.agg.min !== null && (agg.min === null || s.agg.min < agg.min)) agg.min = s.agg.min;
        if (s.agg.max !== null && (agg.max === null || s.agg.max > agg.max)) agg.max = s.agg.max;
      }
      addTo(agg, value);
      session = {
        start: Math.min(ts, ...near.map((s) => s.start)),
        end: Math.max(ts, ...near.map((s) => s.end)),
        agg,
        rev: near.length ? Math.max(...near.map((s) => s.rev)) + 1 : 1,
      };
      this.sessions = [...this.sessions.filter((s) => !near.includes(s)), session];
    }
    changes.push(copy(session));
    return { late: false, changes };
  }

  close(w: number): MSeriesWindow[] {
    this.advance(w);
    const closed = this.closed;
    this.closed = [];
    return closed;
  }

  open(): MSeriesWindow[] {
    return this.sessions.map(copy);
  }

  private advance(w: number): void {
    const done = this.sessions.filter((s) => s.end + this.gap + this.lateness < w);
    this.closed.push(...done);
    this.sessions = this.sessions.filter((s) => !done.includes(s));
  }
}

function shapeModel(shape: WindowShape, lateness: number, brokenGap: boolean): ShapeModel {
  switch (shape.kind) {
    case "tumbling":
      return new AlignedModel(shape.sizeMs, shape.sizeMs, lateness);
    case "hopping":
      return new AlignedModel(shape.sizeMs, shape.hopMs, lateness);
    case "sliding":
      return new SlidingModel(shape.sizeMs, lateness);
    case "session":
      return new SessionModel(shape.gapMs, lateness, brokenGap);
  }
}

export interface MSeries {
  type: string;
  spec: string;
  shape: WindowShape["kind"];
  model: ShapeModel;
}

/** A key's per-type windows: series by type, made on the type's first event. */
export class TypedModel {
  private readonly series = new Map<string, MSeries[]>();
  constructor(
    private readonly analytics: AnalyticsConfig,
    private readonly keyWindows: ReadonlySet<string>,
    private readonly lateness: number,
    private readonly brokenGap = false,
  ) {}

  of(type: string): MSeries[] {
    let list = this.series.get(type);
    if (!list) {
      const config = this.analytics.types.get(type) ?? this.analytics.types.get("*");
      const shapes = (config?.windows ?? []).filter((s) => !this.keyWindows.has(windowShapeName(s)));
      list = shapes.map((shape) => ({ type, spec: windowShapeName(shape), shape: shape.kind, model: shapeModel(shape, this.lateness, this.brokenGap) }));
      this.series.set(type, list);
    }
    return list;
  }

  all(): MSeries[] {
    return [...this.series.values()].flat();
  }
}

/** The value of a rule's aggregate (the sim's rules use count, sum, min, max, avg). */
export function aggregateOf(agg: MAgg | undefined, name: string): number | undefined {
  if (!agg) return name === "count" ? 0 : undefined;
  if (name === "count") return agg.count;
  if (name === "sum") return agg.valued ? agg.sum : undefined;
  if (name === "min") return agg.min ?? undefined;
  if (name === "max") return agg.max ?? undefined;
  if (name === "avg") return agg.valued ? agg.sum / agg.valued : undefined;
  return undefined;
}

/** A closed window's value, as a rule remembers it. */
export interface ClosedValue {
  start: number;
  end: number;
  value: number;
}

/**
 * Whether a rule fires on `value` for a window starting at `start`, given the values of the windows
 * of its (type, shape) closed before, in closing order (docs/analytics-config.md):
 * - threshold: value op threshold;
 * - change: value / previous op ratio, previous being the closed window that ends at or before
 *   `start` with the greatest end (then start), when there is one and it is not 0;
 * - zscore: (value - mean) / sample stddev of the last `baseline` closed values > above, once
 *   max(warmup, 2) of them exist; with stddev 0, +/-Infinity off the mean and 0 at it.
 */
export function fires(rule: DetectionRule, value: number, start: number, closed: readonly ClosedValue[]): boolean {
  if (rule.kind === "threshold") return compareOp(value, rule.op, rule.threshold);
  if (rule.kind === "change") {
    let previous: ClosedValue | undefined;
    for (const c of closed) if (c.end <= start && (!previous || c.end > previous.end || (c.end === previous.end && c.start > previous.start))) previous = c;
    return previous !== undefined && previous.value !== 0 && compareOp(value / previous.value, rule.op, rule.ratio);
  }
  const values = closed.slice(-rule.baseline).map((c) => c.value);
  if (values.length < Math.max(rule.warmup, 2)) return false;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const stddev = Math.sqrt(values.reduce((a, v) => a + (v - mean) * (v - mean), 0) / (values.length - 1));
  const z = stddev > 0 ? (value - mean) / stddev : value > mean ? Infinity : value < mean ? -Infinity : 0;
  return z > rule.above;
}

function compareOp(value: number, op: string, t: number): boolean {
  switch (op) {
    case ">":
      return value > t;
    case ">=":
      return value >= t;
    case "<":
      return value < t;
    case "<=":
      return value <= t;
    case "==":
      return value === t;
    case "!=":
      return value !== t;
  }
  throw new Error(`unknown comparison ${op}`);
}

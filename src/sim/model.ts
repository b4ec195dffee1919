/**
 * The ground truth: a deliberately plain re-statement of keyflow's per-key semantics, written from
 * the spec (README / design notes), not from the core. It is fed only what became durable (an ingest
 * or an alarm tick whose commit succeeded), at the time it happened, and predicts: each event's
 * outcome (accepted / duplicate / late), totals, watermark, window aggregates and closings, the late
 * log, the dedupe memory, and every record the sinks must receive.
 *
 * Rules:
 * - dedupe: an ID is remembered from its acceptance; the oldest are forgotten first, beyond
 *   `dedupeMaxIds`, or when their commit is older than `dedupeHorizonMs`. A forgotten ID is new again.
 * - windows: epoch-aligned [start, start+size) every `hop`; an accepted event adds to every window
 *   containing its time that is not closed. Closed = end + allowedLatenessMs <= watermark.
 * - watermark: the newest event time accepted; on an alarm, a key idle for `idleTimeoutMs` has it
 *   advanced with the wall clock: lastEventTime + (now - lastArrival).
 * - a window closes (final record, kept in the closed list) when the watermark passes it: on ingest
 *   ("watermark") or on an alarm ("idle"). The closed list keeps the newest `maxClosedWindows`,
 *   and drops those closed more than `closedRetentionMs` ago.
 * - an event that misses a closed window is late: counted, logged, applied only to open windows.
 * - emit=updates: each ingest call that changed a window emits its next revision; the final is the last.
 * - keyflow.config.json (analytics-model.ts): a type's own windows (sliding, session, other sizes) and
 *   threshold rules on any window, alerts once per rule and window.
 */
import type { LateEntry } from "../actor/actor.ts";
import type { Config } from "../settings/config.ts";
import type { AnalyticsConfig } from "../actor/analytics.ts";
import { aggregateOf, fires, TypedModel, type ClosedValue, type MAgg, type MSeries, type MSeriesWindow, type SeriesChangeModel } from "./analytics-model.ts";

export type { MAgg };

/** The settings the model follows (the shapes are the core's; the rules below are restated, not borrowed). */
export type ModelConfig = Pick<
  Config,
  "windows" | "allowedLatenessMs" | "idleTimeoutMs" | "closedRetentionMs" | "maxClosedWindows" | "dedupeHorizonMs" | "dedupeMaxIds" | "lateLogSize" | "emit"
> & {
  /** Test hook: a deliberately wrong model (proves the checker can fail). */
  brokenCount?: boolean;
  /** keyflow.config.json: a type's own windows and threshold rules (no enrichment, measures or extras in the simulator). */
  analytics?: AnalyticsConfig;
  /** Test hooks (wrong models): sessions split at half the gap; rules that fire once per key, not per window. */
  brokenAnalytics?: "model-session-gap" | "model-rule-once";
};


export interface MEvent {
  id: string;
  type: string;
  ts: number;
  value?: number;
  requestId?: string;
}

export interface MOutcome {
  status: "accepted" | "duplicate";
  late?: boolean;
}

/** One acceptance of an event: what its sink record must say. */
export interface Acceptance {
  id: string;
  type: string;
  ts: number;
  value?: number;
  receivedAt: number;
  late: boolean;
  requestId?: string;
}

/** One window record the sinks must receive (`type` for a type's own window; `retracted` for a superseded session). */
export interface Emission {
  type?: string;
  retracted?: boolean;
  spec: string;
  start: number;
  end: number;
  revision: number;
  final: boolean;
  all: MAgg;
  types: Map<string, MAgg>;
  closedAt?: number;
}

interface MWindow {
  type?: string;
  spec: string;
  start: number;
  end: number;
  all: MAgg;
  types: Map<string, MAgg>;
  rev: number;
}

export interface MClosed extends MWindow {
  closedAt: number;
  closedBy: "watermark" | "idle";
}

export type MLate = LateEntry;

const zero = (): MAgg => ({ count: 0, valued: 0, sum: 0, min: null, max: null });

function addValue(agg: MAgg, value: number | undefined, broken: boolean): void {
  agg.count += broken ? 2 : 1;
  if (value === undefined) return;
  agg.valued += 1;
  agg.sum += value;
  if (agg.min === null || value < agg.min) agg.min = value;
  if (agg.max === null || value > agg.max) agg.max = value;
}

const copyAgg = (a: MAgg): MAgg => ({ ...a });
const copyTypes = (t: Map<string, MAgg>) => new Map([...t].map(([k, v]) => [k, copyAgg(v)]));

/** Every [start, start+size) of the spec, aligned to multiples of hop, that holds ts (and starts at or after 0). */
export function windowsOf(spec: { size: number; hop: number }, ts: number): number[] {
  const out: number[] = [];
  const newest = ts - (((ts % spec.hop) + spec.hop) % spec.hop);
  for (let k = 0; k * spec.hop < spec.size; k++) {
    const start = newest - k * spec.hop;
    if (start < 0) break;
    out.push(start);
  }
  return out;
}

export class KeyModel {
  totals = { events: 0, duplicates: 0, late: 0, byType: new Map<string, number>() };
  firstEventAt: number | null = null;
  lastEventAt: number | null = null;
  lastArrival: number | null = null;
  watermark: number | null = null;
  /** Open windows by "spec|start". */
  readonly open = new Map<string, MWindow>();
  /** Closed windows still kept (what the actor should list). */
  closed: MClosed[] = [];
  /** Every window ever closed. */
  readonly everClosed: MClosed[] = [];
  lateLog: MLate[] = [];
  /** Acceptances per event ID (more than one only when its ID had been forgotten). */
  readonly acceptances = new Map<string, Acceptance[]>();
  /** Window records by their effect id (sinks.ts effectId). */
  readonly emissions = new Map<string, Emission>();
  /** Alerts by their effect id: what the sinks must hold. */
  readonly alerts = new Map<string, ModelAlert>();
  /** Records appended to the outbox by the last ingest (events + window revisions + finals). */
  lastAppended = 0;
  private remembered: Array<{ id: string; at: number }> = [];
  private head = 0;
  private readonly present = new Set<string>();

  private readonly typed: TypedModel | undefined;
  /** A type's own windows changed by the current ingest (emit=updates): the last state per window, or its retraction. */
  private typedPending = new Map<string, { series: MSeries; change: SeriesChangeModel }>();
  private readonly fired = new Set<string>();
  /** Per rule, the values of the windows it watches, as they closed. */
  private readonly closedValues = new Map<string, ClosedValue[]>();

  constructor(
    readonly key: string,
    private readonly cfg: ModelConfig,
  ) {
    if (cfg.analytics) this.typed = new TypedModel(cfg.analytics, new Set(cfg.windows.map((w) => w.name)), cfg.allowedLatenessMs, cfg.brokenAnalytics === "model-session-gap");
  }

  /** Open windows: the key's and each type's own (as the actor lists them). */
  openWindows(): Array<Omit<MWindow, "types"> & { types: Map<string, MAgg> }> {
    const out: Array<Omit<MWindow, "types"> & { types: Map<string, MAgg> }> = [...this.open.values()];
    for (const s of this.typed?.all() ?? []) for (const w of s.model.open()) out.push(typedWindow(s, w, w.rev));
    return out;
  }

  get dedupeSize(): number {
    return this.present.size;
  }

  /** How many IDs would remain remembered once those expired as of `now` are forgotten (changes nothing). */
  dedupeSizeAt(now: number): number {
    const cutoff = now - this.cfg.dedupeHorizonMs;
    let size = this.remembered.length - this.head;
    for (let i = this.head; i < this.remembered.length; i++) {
      if (this.remembered[i]!.at >= cutoff && size <= this.cfg.dedupeMaxIds) break;
      size--;
    }
    return size;
  }

  private forget(now: number): void {
    const cutoff = now - this.cfg.dedupeHorizonMs;
    while (this.head < this.remembered.length) {
      const oldest = this.remembered[this.head]!;
      if (oldest.at >= cutoff && this.present.size <= this.cfg.dedupeMaxIds) break;
      this.present.delete(oldest.id);
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.remembered.length) {
      this.remembered = this.remembered.slice(this.head);
      this.head = 0;
    }
  }

  ingest(events: readonly MEvent[], now: number): MOutcome[] {
    this.forget(now);
    const out: MOutcome[] = [];
    const touched: MWindow[] = [];
    let accepted = 0;
    let trigger = "";
    this.lastAppended = 0;
    for (const e of events) {
      if (this.present.has(e.id)) {
        this.totals.duplicates++;
        out.push({ status: "duplicate" });
        continue;
      }
      this.present.add(e.id);
      this.remembered.push({ id: e.id, at: now });
      this.forget(now);
      accepted++;
      trigger = e.id;
      const missed = this.apply(e, touched, now);
      const late = missed.length > 0;
      if (late) {
        this.totals.late++;
        if (this.cfg.lateLogSize > 0) {
          const entry: MLate = { id: e.id, type: e.type, ts: e.ts, receivedAt: now, watermark: this.watermark!, missed };
          if (e.value !== undefined) entry.value = e.value;
          this.lateLog.push(entry);
          if (this.lateLog.length > this.cfg.lateLogSize) this.lateLog = this.lateLog.slice(this.lateLog.length - this.cfg.lateLogSize);
        }
      }
      const acceptance: Acceptance = { id: e.id, type: e.type, ts: e.ts, receivedAt: now, late };
      if (e.value !== undefined) acceptance.value = e.value;
      if (e.requestId !== undefined) acceptance.requestId = e.requestId;
      const list = this.acceptances.get(e.id);
      if (list) list.push(acceptance);
      else this.acceptances.set(e.id, [acceptance]);
      this.lastAppended++;
      out.push(late ? { status: "accepted", late: true } : { status: "accepted" });
    }
    if (accepted > 0) {
      this.lastArrival = now;
      if (this.cfg.emit === "updates") for (const w of touched) this.emit(w, false, now);
      for (const { series, change } of this.typedPending.values()) this.emitTyped(series, change, false, now);
      this.typedPending.clear();
      this.close(now, "watermark", trigger);
    }
    return out;
  }

  tick(now: number): void {
    if (this.lastArrival !== null && this.lastEventAt !== null && now - this.lastArrival >= this.cfg.idleTimeoutMs) {
      const advanced = this.lastEventAt + (now - this.lastArrival);
      if (this.watermark === null || advanced > this.watermark) this.watermark = advanced;
    }
    this.lastAppended = 0;
    this.close(now, "idle", "");
    this.purge(now);
    this.forget(now);
  }

  /** Applies an accepted event; returns the window specs it was late for. */
  private apply(e: MEvent, touched: MWindow[], now: number): string[] {
    const horizon = this.watermark === null ? -Infinity : this.watermark - this.cfg.allowedLatenessMs;
    const missed: string[] = [];
    for (const spec of this.cfg.windows) {
      let late = false;
      for (const start of windowsOf(spec, e.ts)) {
        const end = start + spec.size;
        if (end <= horizon) {
          late = true;
          continue;
        }
        const id = `${spec.name}|${start}`;
        let w = this.open.get(id);
        if (!w) this.open.set(id, (w = { spec: spec.name, start, end, all: zero(), types: new Map(), rev: 0 }));
        addValue(w.all, e.value, this.cfg.brokenCount === true);
        let typed = w.types.get(e.type);
        if (!typed) w.types.set(e.type, (typed = zero()));
        addValue(typed, e.value, false);
        if (!touched.includes(w)) touched.push(w);
        this.observe(e.type, spec.name, w.start, w.end, typed, e.id, now);
      }
      if (late) missed.push(spec.name);
    }
    const watermark = this.watermark === null ? e.ts : Math.max(this.watermark, e.ts);
    for (const series of this.typed?.of(e.type) ?? []) {
      const r = series.model.add(e.ts, e.value, watermark);
      if (r.late) missed.push(series.spec);
      for (const change of r.changes) {
        if (!change.retracted) this.observe(e.type, series.spec, change.start, change.end, change.agg, e.id, now);
        if (this.cfg.emit !== "updates") continue;
        const identity = JSON.stringify([series.spec, series.type, change.start, change.end]);
        if (change.retracted) this.typedPending.delete(identity);
        this.typedPending.set(change.retracted ? `${identity}-` : identity, { series, change });
      }
    }
    this.totals.events++;
    this.totals.byType.set(e.type, (this.totals.byType.get(e.type) ?? 0) + 1);
    this.firstEventAt = this.firstEventAt === null ? e.ts : Math.min(this.firstEventAt, e.ts);
    this.lastEventAt = this.lastEventAt === null ? e.ts : Math.max(this.lastEventAt, e.ts);
    this.watermark = this.watermark === null ? e.ts : Math.max(this.watermark, e.ts);
    return missed;
  }

  private emit(w: MWindow, final: boolean, now: number): void {
    w.rev++;
    const em: Emission = { spec: w.spec, start: w.start, end: w.end, revision: w.rev, final, all: copyAgg(w.all), types: copyTypes(w.types) };
    if (final) em.closedAt = now;
    this.emissions.set(windowEffect(this.key, em), em);
    this.lastAppended++;
  }

  /** A type's own window's record: a change under emit=updates, or its final (one revision past the last change). */
  private emitTyped(series: MSeries, change: SeriesChangeModel, final: boolean, now: number): void {
    const em: Emission = {
      type: series.type,
      spec: series.spec,
      start: change.start,
      end: change.end,
      revision: final ? change.rev + 1 : change.rev,
      final,
      all: copyAgg(change.agg),
      types: new Map([[series.type, copyAgg(change.agg)]]),
    };
    if (change.retracted) em.retracted = true;
    if (final) em.closedAt = now;
    this.emissions.set(windowEffect(this.key, em), em);
    this.lastAppended++;
  }

  /** An update or close (`final`) of a window of (type, spec): the rules watching it that now hold fire, once per window. */
  private observe(type: string, spec: string, start: number, end: number, agg: MAgg | undefined, eventId: string, now: number, final = false): void {
    for (const rule of this.cfg.analytics?.rules ?? []) {
      if (rule.type !== type || rule.window !== spec) continue;
      const once = this.cfg.brokenAnalytics === "model-rule-once" ? `${rule.name}|` : `${rule.name}|${start}`;
      const raw = aggregateOf(agg, rule.aggregate);
      const value = raw !== undefined && Number.isFinite(raw) ? raw : undefined;
      const closed = this.closedValues.get(rule.name) ?? [];
      // The window being closed joins the values after it is judged.
      if (final && value !== undefined) this.closedValues.set(rule.name, [...closed, { start, end, value }]);
      if (value === undefined || this.fired.has(once) || !fires(rule, value, start, closed)) continue;
      this.fired.add(once);
      const alert: ModelAlert = { rule: rule.name, shape: spec, start, end, aggregate: rule.aggregate, value, eventId, firedAt: now };
      this.alerts.set(`alert|${this.key}|${rule.name}|${spec}|${start}`, alert);
      this.lastAppended++;
    }
  }

  private close(now: number, by: "watermark" | "idle", trigger: string): void {
    if (this.watermark === null) return;
    const horizon = this.watermark - this.cfg.allowedLatenessMs;
    const closing = [...this.open.values()].filter((w) => w.end <= horizon);
    closing.sort((a, b) => a.end - b.end || a.start - b.start || (a.spec < b.spec ? -1 : a.spec > b.spec ? 1 : 0));
    for (const w of closing) {
      this.open.delete(`${w.spec}|${w.start}`);
      this.emit(w, true, now);
      for (const [type, agg] of w.types) this.observe(type, w.spec, w.start, w.end, agg, trigger, now, true);
      const c: MClosed = { spec: w.spec, start: w.start, end: w.end, all: copyAgg(w.all), types: copyTypes(w.types), rev: w.rev, closedAt: now, closedBy: by };
      this.closed.push(c);
      this.everClosed.push(c);
    }
    const typedClosing: Array<{ series: MSeries; w: MSeriesWindow }> = [];
    for (const series of this.typed?.all() ?? []) for (const w of series.model.close(this.watermark)) typedClosing.push({ series, w });
    const text = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    typedClosing.sort((a, b) => a.w.end - b.w.end || a.w.start - b.w.start || text(a.series.spec, b.series.spec) || text(a.series.type, b.series.type));
    for (const { series, w } of typedClosing) {
      this.emitTyped(series, w, true, now);
      this.observe(series.type, series.spec, w.start, w.end, w.agg, trigger, now, true);
      const c: MClosed = { ...typedWindow(series, w, w.rev + 1), closedAt: now, closedBy: by };
      this.closed.push(c);
      this.everClosed.push(c);
    }
    this.purge(now);
  }

  private purge(now: number): void {
    const cutoff = now - this.cfg.closedRetentionMs;
    let drop = 0;
    while (drop < this.closed.length && (this.closed.length - drop > this.cfg.maxClosedWindows || this.closed[drop]!.closedAt <= cutoff)) drop++;
    if (drop) this.closed = this.closed.slice(drop);
  }
}

/** An alert the model says fires: what every sink must hold for it. */
export interface ModelAlert {
  rule: string;
  shape: string;
  start: number;
  end: number;
  aggregate: string;
  value: number;
  eventId: string;
  firedAt: number;
}

function typedWindow(series: MSeries, w: MSeriesWindow, rev: number): MWindow {
  return { type: series.type, spec: series.spec, start: w.start, end: w.end, all: copyAgg(w.agg), types: new Map([[series.type, copyAgg(w.agg)]]), rev };
}

/** A window record's identity, as sinks.ts effectId makes it. */
export function windowEffect(key: string, em: Pick<Emission, "spec" | "start" | "revision" | "type" | "end" | "retracted">): string {
  const base = `window|${key}|${em.spec}|${em.start}|${em.revision}`;
  return em.type === undefined ? base : `${base}|${em.type}|${em.end}|${em.retracted ? "retracted" : "upserted"}`;
}

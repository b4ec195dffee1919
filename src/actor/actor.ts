import { assert } from "../ports/assert.ts";
import type { ActorConfig } from "./config.ts";
import { DedupeIndex, type DedupeLimits } from "./dedupe.ts";
import { BACKPRESSURE_RETRY_AFTER_SECONDS, BackpressureError } from "./errors.ts";
import { ACTOR_ROW, rowNumber } from "./layout.ts";
import { SegmentLog } from "./segment-log.ts";
import { Outbox, type EventRecord, type NewRecord, type OutboxMeta, type ResolveRef, type WindowRecord } from "./outbox.ts";
import type { Event } from "./event.ts";
import type { AggregateName, AlertRecord, AnalyticsConfig } from "./analytics.ts";
import { Detector, type DetectorState } from "./detect.ts";
import { enrich, type EnrichedFields } from "./enrich.ts";
import { readPath } from "./paths.ts";
import { TypedWindows, type SeriesChange, type TypedWindowsState } from "./typed-windows.ts";
import { aggregateValue } from "./series-aggregate.ts";
import { addToExtras, distinctKey, emptyExtras, extrasView, hasExtras, type Extras, type ExtrasView, type Measured } from "./window-extras.ts";
import type { TypeAnalytics } from "./analytics.ts";
import {
  addToAggregate,
  type Aggregate,
  emptyAggregate,
  selectWindows,
  windowFromRow,
  windowRow,
  type ClosedWindow,
  type WindowQuery,
  type WindowRow,
  type WindowState,
} from "./windows.ts";

export interface IngestOutcome {
  status: "accepted" | "duplicate";
  /** Accepted, but some window it belongs to had already closed; it was applied only to the open ones. */
  late?: boolean;
}

export interface LateEntry {
  id: string;
  type: string;
  ts: number;
  value?: number;
  receivedAt: number;
  watermark: number;
  /** Window specs whose window for this event had already closed; it was applied to the others. */
  missed: string[];
}

export interface Totals {
  events: number;
  duplicates: number;
  late: number;
  /** Accepted events per event type. A Map: event types are client data, never property names. */
  byType: Map<string, number>;
}

/** The scalar facts of an actor, as persisted and as read. */
interface ActorFacts {
  key: string;
  totals: Totals;
  firstEventAt: number | null;
  lastEventAt: number | null;
  lastArrival: number | null;
  watermark: number | null;
  open: WindowState[];
}

/**
 * The persisted scalar state of an actor: one small row, rewritten by each commit that changes it.
 * Version 2 keeps maps keyed by client data as [key, value] pairs; version 1 kept them as objects.
 */
interface StateRow extends Omit<ActorFacts, "totals" | "open"> {
  v: 1 | 2;
  totals: Omit<Totals, "byType"> & { byType: Array<[string, number]> | Record<string, number> };
  open: Array<WindowRow | Parameters<typeof windowFromRow>[0]>;
  nextClosedSeq: number;
  outbox?: OutboxMeta;
}

export interface Writes {
  puts: Array<[string, string]>;
  deletes: string[];
}

/** A record the actor made, as sinks get it (`n` only when the outbox numbered it), or an alert. */
export type LiveRecord = Omit<EventRecord, "n"> | Omit<WindowRecord, "n"> | AlertRecord;

/** Recent alerts an actor keeps for GET /v1/actors/:key/alerts. */
export const RECENT_ALERTS = 1_000;

/** Where an actor's records go while someone watches its key (src/live/feed.ts): the host publishes them once durable. */
export interface LiveOutput {
  push(record: LiveRecord): void;
  /** Where the next record goes: publish(position()) later publishes only what came before now. */
  position(): number;
  publish(before?: number): void;
  discard(): void;
}

// Outcomes are shared, never mutated: one allocation fewer per event on the hot path.
const ACCEPTED: IngestOutcome = Object.freeze({ status: "accepted" });
const ACCEPTED_LATE: IngestOutcome = Object.freeze({ status: "accepted", late: true });
const DUPLICATE: IngestOutcome = Object.freeze({ status: "duplicate" });

/**
 * One key's event actor: dedupe, windowed aggregates, watermark, closing and the late log.
 * Pure and synchronous: the host supplies time, runs calls one at a time and commits drainWrites().
 */
export class Actor {
  // Totals as fields, not an object of their own: one object fewer an actor (snapshot() assembles them).
  private events = 0;
  private duplicates = 0;
  private lateEvents = 0;
  private readonly byType = new Map<string, number>();
  private firstEventAt: number | null = null;
  private lastEventAt: number | null = null;
  private lastArrival: number | null = null;
  private watermark: number | null = null;
  /**
   * Open windows of every configured spec, sorted by start time and then spec name. One array, not a
   * Map per spec: an actor has few open windows, and an idle actor's memory is mostly these (issue 14).
   */
  private readonly open: WindowState[] = [];
  /** No open window ends before this: closing can skip its scan until the watermark gets here. */
  private minOpenEnd = Infinity;
  // Lists most actors never use stay undefined until their first entry: an empty array costs 64 bytes.
  private closed: Array<{ seq: number; window: ClosedWindow }> | undefined;
  private nextClosedSeq = 0;
  private late: SegmentLog<LateEntry> | undefined;
  private dedupe: DedupeIndex;
  /** Records for the sinks, committed with the state change that made them. */
  outbox: Outbox;
  private stateDirty = false;
  private newClosed: Array<{ seq: number; window: ClosedWindow }> | undefined;
  private purgedClosed: number[] | undefined;
  /** Where the records go for live views, while someone watches this key (the host attaches it). */
  live: LiveOutput | undefined;
  /** Detection rules on this key's windows (keyflow.config.json), if any. */
  private detector: Detector | undefined;
  private alerts: SegmentLog<AlertRecord> | undefined;
  /** The detector's state changed (a close moves its baselines even when nothing fires). */
  private detectorDirty = false;
  /** Alerts the event being applied fired: they go out after its own record, so a reader in order sees the cause first. */
  private firing: AlertRecord[] | undefined;
  /** Per-type windows of shapes the key's own windows do not have (sliding, session, other sizes). */
  private typed: TypedWindows | undefined;
  /** Changes of per-type windows in the current ingest, for emit=updates and live views: the last per window. */
  private seriesPending: Map<string, SeriesChange> | undefined;
  private typedDirty = false;

  constructor(
    readonly key: string,
    private readonly config: ActorConfig,
  ) {
    this.dedupe = new DedupeIndex(dedupeLimits(config));
    this.outbox = new Outbox(config.sinks, config.deadLetterMirror);
    const rules = config.analytics?.rules;
    if (rules?.length) this.detector = new Detector(key, rules);
    const keyWindows = new Set(config.windows.map((w) => w.name));
    if (TypedWindows.needed(config.analytics, keyWindows)) this.typed = new TypedWindows(config.analytics!, keyWindows, config.allowedLatenessMs);
  }

  /** True until the actor has seen its first event (it then exists durably). */
  get isNew(): boolean {
    return this.lastArrival === null;
  }

  /** `replay`: re-applying a journaled ingest that was accepted once; it is not refused again. */
  ingest(events: readonly Event[], now: number, replay = false): IngestOutcome[] {
    if (!replay && this.outbox.backlog() >= this.config.outboxMax) {
      throw new BackpressureError(this.key, BACKPRESSURE_RETRY_AFTER_SECONDS);
    }
    // Expire first, so an ID past the horizon is new whether or not this actor stayed in memory.
    this.dedupe.expire(now);
    const outcomes: IngestOutcome[] = new Array(events.length);
    const touched = this.config.emit === "updates" || this.live ? new Set<WindowState>() : undefined;
    let accepted = 0;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      assert(event.key === this.key, "events reach only the actor of their key");
      if (!this.dedupe.addIfNew(event.id, now)) {
        this.duplicates++;
        outcomes[i] = DUPLICATE;
        continue;
      }
      accepted++;
      // Enrichment reads the types accepted before this event: it runs before apply() counts it.
      const analytics = this.config.analytics;
      const enriched = analytics?.enrich.length ? enrich(analytics.enrich, event, this.byType) : undefined;
      const typeConfig = analytics && (analytics.types.get(event.type) ?? analytics.types.get("*"));
      const missed = this.apply(event, touched, typeConfig ? measuredOf(typeConfig, event, enriched) : { v: event.value }, typeConfig, now);
      if (missed) this.recordLate(event, missed, now);
      outcomes[i] = missed ? ACCEPTED_LATE : ACCEPTED;
      if (this.outbox.enabled || this.live) {
        const record = eventRecord(this.key, event, now, missed !== undefined, enriched);
        this.outbox.append(record);
        this.live?.push(record);
      }
      if (this.firing) this.emitAlerts();
    }
    if (events.length) this.stateDirty = true;
    // Duplicates are retries of what the actor already has: they do not count as activity.
    if (accepted) {
      this.lastArrival = now;
      if (touched) for (const w of touched) this.emitWindow(w, false, now);
      if (this.seriesPending) {
        for (const c of this.seriesPending.values()) this.emitSeries(c, now);
        this.seriesPending = undefined;
      }
      this.closeWindows(now, "watermark", lastAccepted(events, outcomes));
    }
    return outcomes;
  }

  /** A window's record: to the sinks when final or under emit=updates, to live views always. */
  private emitWindow(w: WindowState, final: boolean, now: number): void {
    const toSinks = this.outbox.enabled && (final || this.config.emit === "updates");
    if (!toSinks && !this.live) return;
    if (toSinks) w.rev = (w.rev ?? 0) + 1;
    const record: LiveRecord = {
      kind: "window",
      key: this.key,
      spec: w.spec,
      start: w.start,
      end: w.end,
      revision: w.rev ?? 0,
      final,
      all: { ...w.all },
      types: Object.fromEntries([...w.types].map(([type, agg]) => [type, { ...agg }])),
      shape: w.spec.includes("/") ? "hopping" : "tumbling",
      ...(w.extras ? { extras: Object.fromEntries([...w.extras].map(([type, e]) => [type, this.extrasViewOf(type, e)])) } : {}),
      ...(final ? { closedAt: now } : {}),
    };
    if (toSinks) this.outbox.append(record);
    this.live?.push(record);
  }

  /** A per-type window's record: as emitWindow's, for that type alone; a retraction only under emit=updates. */
  private emitSeries(c: SeriesChange, now: number): void {
    const toSinks = this.outbox.enabled && (c.final || this.config.emit === "updates");
    if (!toSinks && !this.live) return;
    const agg = c.aggregate.agg;
    const extras = this.extrasViewOf(c.type, c.aggregate.extras);
    const record: LiveRecord = {
      kind: "window",
      key: this.key,
      spec: c.spec,
      shape: c.shape,
      type: c.type,
      start: c.start,
      end: c.end,
      // The final record is past every update's revision, as for the key's windows.
      revision: c.final ? c.revision + 1 : c.revision,
      final: c.final,
      all: { ...agg },
      types: Object.fromEntries([[c.type, { ...agg }]]),
      ...(c.retracted ? { retracted: true } : {}),
      ...(extras.distinct !== undefined || extras.percentiles ? { extras: Object.fromEntries([[c.type, extras]]) } : {}),
      ...(c.final ? { closedAt: now } : {}),
    };
    if (toSinks) this.outbox.append(record);
    this.live?.push(record);
  }

  private extrasViewOf(type: string, extras: Extras): ExtrasView {
    return extrasView(extras, this.typeConfig(type)?.aggregates ?? {});
  }

  private typeConfig(type: string): TypeAnalytics | undefined {
    const types = this.config.analytics?.types;
    return types && (types.get(type) ?? types.get("*"));
  }

  /** Wall-clock housekeeping (run on the host's alarm): idle watermark advance, closing, retention. */
  tick(now: number): void {
    if (this.lastArrival !== null && this.lastEventAt !== null && now - this.lastArrival >= this.config.idleTimeoutMs) {
      const idleWatermark = this.lastEventAt + (now - this.lastArrival);
      if (this.watermark === null || idleWatermark > this.watermark) {
        this.watermark = idleWatermark;
        this.stateDirty = true;
      }
    }
    this.closeWindows(now, "idle");
    this.purgeClosed(now);
    this.dedupe.expire(now);
  }

  /** Earliest wall-clock time at which tick() has work to do, or null. */
  nextWake(): number | null {
    let wake = Infinity;
    if (this.lastArrival !== null && this.lastEventAt !== null) {
      // The watermark at which some window closes; the idle watermark reaches it that long after the last arrival.
      const closesAt = Math.min(this.minOpenEnd + this.config.allowedLatenessMs, this.typed?.nextCloseAt() ?? Infinity);
      if (closesAt !== Infinity) {
        const idleReach = closesAt - this.lastEventAt + this.lastArrival;
        wake = Math.max(this.lastArrival + this.config.idleTimeoutMs, idleReach);
      }
    }
    const oldest = this.closed?.[0];
    if (oldest) wake = Math.min(wake, oldest.window.closedAt + this.config.closedRetentionMs);
    return wake === Infinity ? null : wake;
  }

  /**
   * Adds the event to every window of every spec that is still open; returns the specs whose
   * window for it has already closed (end + allowed lateness <= watermark): there it is late.
   */
  private apply(event: Event, touched: Set<WindowState> | undefined, measured: Measured, typeConfig: TypeAnalytics | undefined, now: number): string[] | undefined {
    const closedBefore = this.watermark === null ? -Infinity : this.watermark - this.config.allowedLatenessMs;
    const { ts, type } = event;
    const value = measured.v;
    const extrasConfig = hasExtras(typeConfig?.aggregates) ? typeConfig.aggregates : undefined;
    const specs = this.config.windows;
    let missed: string[] | undefined;
    for (let s = 0; s < specs.length; s++) {
      const { size, hop, name } = specs[s]!;
      const windows = this.open;
      // Every window of this spec holding ts, newest first (one, when tumbling).
      for (let start = Math.floor(ts / hop) * hop; start > ts - size && start >= 0; start -= hop) {
        if (start + size <= closedBefore) {
          if (missed?.at(-1) !== name) (missed ??= []).push(name);
          continue;
        }
        const at = openIndex(windows, start, name);
        let w = windows[at];
        if (w?.start !== start || w.spec !== name) {
          windows.splice(at, 0, (w = { spec: name, start, end: start + size, all: emptyAggregate(), types: new Map() }));
          if (w.end < this.minOpenEnd) this.minOpenEnd = w.end;
        }
        addToAggregate(w.all, value);
        let typed = w.types.get(type);
        if (!typed) w.types.set(type, (typed = emptyAggregate()));
        addToAggregate(typed, value);
        if (extrasConfig) {
          const byType = (w.extras ??= new Map());
          let extras = byType.get(type);
          if (!extras) byType.set(type, (extras = emptyExtras(extrasConfig)));
          addToExtras(extras, measured);
        }
        touched?.add(w);
        if (this.detector?.watches(type, name)) this.detect(w, type, false, event.id, now);
      }
    }
    if (this.typed) {
      const { changes, missed: typedMissed, stored } = this.typed.add(type, ts, measured, this.watermark);
      // Even a late event moved its stores' watermark.
      if (stored) this.typedDirty = true;
      for (const spec of typedMissed) (missed ??= []).push(spec);
      for (const c of changes) this.seriesChanged(c, event.id, now);
    }
    this.events++;
    this.byType.set(type, (this.byType.get(type) ?? 0) + 1);
    if (this.firstEventAt === null || ts < this.firstEventAt) this.firstEventAt = ts;
    if (this.lastEventAt === null || ts > this.lastEventAt) this.lastEventAt = ts;
    if (this.watermark === null || ts > this.watermark) this.watermark = ts;
    return missed;
  }

  private recordLate(event: Event, missed: string[], now: number): void {
    this.lateEvents++;
    if (this.config.lateLogSize === 0) return;
    const entry: LateEntry = { id: event.id, type: event.type, ts: event.ts, receivedAt: now, watermark: this.watermark!, missed };
    if (event.value !== undefined) entry.value = event.value;
    (this.late ??= new SegmentLog(this.config.lateLogSize)).add(entry);
  }

  /** A per-type window changed: the detector hears of it now, sinks and live views at the end of the ingest. */
  private seriesChanged(c: SeriesChange, eventId: string, now: number): void {
    if (!c.retracted && this.detector?.watches(c.type, c.spec)) this.observe(c, c.type, c.aggregate.agg, c.aggregate.extras, false, eventId, now);
    if (!this.live && this.config.emit !== "updates") return;
    const identity = JSON.stringify([c.spec, c.type, c.start, c.end]);
    // A retraction replaces the pending upsert of the same session; sinks delete by (start, end) either way.
    const pending = (this.seriesPending ??= new Map());
    if (c.retracted) pending.delete(identity);
    pending.set(c.retracted ? `${identity}-` : identity, c);
  }

  /** Tells the detector of a window's update or close for `type`; keeps what fires. */
  private detect(w: WindowState, type: string, final: boolean, eventId: string, now: number): void {
    this.observe(w, type, w.types.get(type), w.extras?.get(type), final, eventId, now);
  }

  private observe(w: { spec: string; start: number; end: number }, type: string, agg: Aggregate | undefined, extras: Extras | undefined, final: boolean, eventId: string, now: number): void {
    const aggregates = (name: AggregateName) => aggregateValue(agg, extras, name);
    const fired = this.detector!.observe({ type, shape: w.spec, start: w.start, end: w.end, aggregates, final }, eventId, now);
    if (!fired.length && !final) return;
    // A close changes the detector's baselines even when nothing fires.
    this.detectorDirty = true;
    if (fired.length) (this.firing ??= []).push(...fired);
  }

  private emitAlerts(): void {
    const alerts = (this.alerts ??= new SegmentLog(RECENT_ALERTS));
    for (const alert of this.firing ?? []) {
      alerts.add(alert);
      if (this.outbox.enabled) this.outbox.append(alert);
      this.live?.push(alert);
    }
    this.firing = undefined;
  }

  /** `trigger`: the event whose arrival moved the watermark (none for the wall clock's idle close). */
  private closeWindows(now: number, by: ClosedWindow["closedBy"], trigger = ""): void {
    if (this.watermark === null) return;
    const closedBefore = this.watermark - this.config.allowedLatenessMs;
    // Most calls close nothing: no window of the key's ends that early, and no type has windows of its own.
    if (this.minOpenEnd > closedBefore && !this.typed) return this.purgeClosed(now);
    const closing: WindowState[] = [];
    if (this.minOpenEnd <= closedBefore) {
      let minOpenEnd = Infinity;
      const windows = this.open;
      let kept = 0;
      for (const w of windows) {
        if (w.end <= closedBefore) closing.push(w);
        else {
          windows[kept++] = w;
          if (w.end < minOpenEnd) minOpenEnd = w.end;
        }
      }
      windows.length = kept;
      this.minOpenEnd = minOpenEnd;
      closing.sort((a, b) => a.end - b.end || a.start - b.start || a.spec.localeCompare(b.spec));
    }
    for (const w of closing) {
      // Window becomes final: emitted once, as a revision past every update.
      this.emitWindow(w, true, now);
      if (this.detector) for (const type of w.types.keys()) if (this.detector.watches(type, w.spec)) this.detect(w, type, true, trigger, now);
      if (this.firing) this.emitAlerts();
      const { extras, ...closedWindow } = w;
      const figures = extras && new Map([...extras].map(([type, e]) => [type, this.extrasViewOf(type, e)]));
      this.keepClosed({ ...closedWindow, ...(figures ? { figures } : {}), closedAt: now, closedBy: by });
    }
    const typedClosing = this.typed?.close(this.watermark) ?? [];
    if (typedClosing.length) this.typedDirty = true;
    for (const c of typedClosing) {
      this.emitSeries(c, now);
      if (this.detector?.watches(c.type, c.spec)) this.observe(c, c.type, c.aggregate.agg, c.aggregate.extras, true, trigger, now);
      if (this.firing) this.emitAlerts();
      this.keepClosed({ ...seriesWindow(c, this.extrasViewOf(c.type, c.aggregate.extras)), rev: c.revision + 1, closedAt: now, closedBy: by });
    }
    if (closing.length || typedClosing.length) this.stateDirty = true;
    this.purgeClosed(now);
  }

  private keepClosed(window: ClosedWindow): void {
    const entry = { seq: this.nextClosedSeq++, window };
    (this.closed ??= []).push(entry);
    (this.newClosed ??= []).push(entry);
  }

  private purgeClosed(now: number): void {
    const closed = this.closed;
    if (!closed) return;
    const cutoff = now - this.config.closedRetentionMs;
    let drop = 0;
    while (drop < closed.length && (closed.length - drop > this.config.maxClosedWindows || closed[drop]!.window.closedAt <= cutoff)) drop++;
    if (drop === 0) return;
    const purged = (this.purgedClosed ??= []);
    for (const { seq } of closed.splice(0, drop)) purged.push(seq);
    if (!closed.length) this.closed = undefined;
  }

  /**
   * Storage rows changed since the last drain (relative to the actor's prefix, see ACTOR_ROW); the
   * host commits them atomically. `inlineRefs`: store outbox records in full, not as journal
   * references. `outboxMetaApart`: the host stores the outbox's cursors and counters itself (in a
   * small row of its own), so the state row leaves them out and is written only when it changed.
   */
  drainWrites(options: { inlineRefs?: boolean; outboxMetaApart?: boolean } = {}): Writes {
    const { inlineRefs = false, outboxMetaApart = false } = options;
    const puts: Array<[string, string]> = [];
    const deletes: string[] = [];
    const dd = this.dedupe.drain();
    for (const [seq, text] of dd.puts) puts.push([ACTOR_ROW.dedupe(seq), text]);
    for (const seq of dd.deletes) deletes.push(ACTOR_ROW.dedupe(seq));
    const purged = new Set(this.purgedClosed);
    for (const { seq, window } of this.newClosed ?? []) if (!purged.has(seq)) puts.push([ACTOR_ROW.closed(seq), JSON.stringify(windowRow(window))]);
    for (const seq of purged) deletes.push(ACTOR_ROW.closed(seq));
    this.newClosed = undefined;
    this.purgedClosed = undefined;
    const ob = this.outbox.drain(inlineRefs);
    puts.push(...ob.puts);
    deletes.push(...ob.deletes);
    if (this.late?.dirty) {
      const late = drainLog(this.late, ACTOR_ROW.lateSegment, puts, deletes);
      if (late.replacesLegacy) deletes.push(ACTOR_ROW.late);
    }
    // A legacy alerts row (with its recent alerts) is rewritten without them: restore marks the detector dirty.
    if (this.alerts?.dirty) drainLog(this.alerts, ACTOR_ROW.alertSegment, puts, deletes);
    if (this.detectorDirty) puts.push([ACTOR_ROW.alerts, JSON.stringify({ detector: this.detector?.toJSON() } satisfies AlertsRow)]);
    if (this.typedDirty && this.typed) puts.push([ACTOR_ROW.typed, JSON.stringify(this.typed.toJSON())]);
    const rewrite = outboxMetaApart ? this.stateDirty : this.stateDirty || ob.metaChanged || puts.length > 0 || deletes.length > 0;
    if (rewrite) puts.push([ACTOR_ROW.state, JSON.stringify(this.stateRow(!outboxMetaApart))]);
    this.stateDirty = this.detectorDirty = this.typedDirty = false;
    return { puts, deletes };
  }

  private stateRow(withOutboxMeta: boolean): StateRow {
    const open: WindowRow[] = [];
    for (const w of this.open) open.push(windowRow(w));
    return {
      v: 2,
      key: this.key,
      totals: { events: this.events, duplicates: this.duplicates, late: this.lateEvents, byType: [...this.byType] },
      firstEventAt: this.firstEventAt,
      lastEventAt: this.lastEventAt,
      lastArrival: this.lastArrival,
      watermark: this.watermark,
      nextClosedSeq: this.nextClosedSeq,
      open,
      ...(withOutboxMeta ? { outbox: this.outbox.getMeta() } : {}),
    };
  }

  /**
   * Rebuilds an actor from its rows (sorted by key), as drainWrites() left them. `resolve` turns
   * outbox records stored as journal references back into records (the process host's journal).
   */
  static restore(key: string, config: ActorConfig, rows: Iterable<[string, string]>, now: number, resolve?: ResolveRef, outboxMeta?: OutboxMeta): Actor {
    const actor = new Actor(key, config);
    const segments: Array<[number, string]> = [];
    const lateSegments: Array<[number, string]> = [];
    let lateRow: string | undefined;
    let alertsRow: AlertsRow | undefined;
    const alertSegments: Array<[number, string]> = [];
    const outboxRows: Array<[string, string]> = [];
    let stateOutboxMeta: OutboxMeta | undefined;
    for (const [rowKey, text] of rows) {
      if (rowKey === ACTOR_ROW.state) stateOutboxMeta = actor.loadState(JSON.parse(text) as StateRow);
      else if (rowKey === ACTOR_ROW.late) lateRow = text;
      else if (rowKey.startsWith(ACTOR_ROW.latePrefix)) lateSegments.push([rowNumber(rowKey, ACTOR_ROW.latePrefix), text]);
      else if (rowKey === ACTOR_ROW.alerts) alertsRow = JSON.parse(text) as AlertsRow;
      else if (rowKey.startsWith(ACTOR_ROW.alertPrefix)) alertSegments.push([rowNumber(rowKey, ACTOR_ROW.alertPrefix), text]);
      else if (rowKey === ACTOR_ROW.typed) actor.typed?.restore(JSON.parse(text) as TypedWindowsState);
      else if (rowKey.startsWith(ACTOR_ROW.dedupePrefix)) segments.push([rowNumber(rowKey, ACTOR_ROW.dedupePrefix), text]);
      else if (rowKey.startsWith(ACTOR_ROW.closedPrefix)) {
        (actor.closed ??= []).push({ seq: rowNumber(rowKey, ACTOR_ROW.closedPrefix), window: windowFromRow<ClosedWindow>(JSON.parse(text)) });
      } else outboxRows.push([rowKey, text]);
    }
    actor.dedupe = DedupeIndex.restore(dedupeLimits(config), segments, now);
    if (lateRow !== undefined || lateSegments.length) actor.late = SegmentLog.restore(config.lateLogSize, lateRow === undefined ? undefined : (JSON.parse(lateRow) as LateEntry[]), lateSegments);
    if (alertsRow) actor.loadDetector(alertsRow);
    if (alertsRow?.recent || alertSegments.length) actor.alerts = SegmentLog.restore(RECENT_ALERTS, alertsRow?.recent, alertSegments);
    actor.outbox = Outbox.restore(config.sinks, config.deadLetterMirror, outboxMeta ?? stateOutboxMeta, outboxRows, resolve);
    return actor;
  }

  private loadDetector(row: AlertsRow): void {
    const rules = this.config.analytics?.rules;
    // Rules dropped from the configuration since are forgotten; new ones start afresh (Detector's restore).
    this.detector = rules?.length ? new Detector(this.key, rules, row.detector) : undefined;
    // The recent alerts move to segment rows: the row is rewritten without them.
    if (row.recent) this.detectorDirty = true;
  }

  /** Restores the state row; returns the outbox cursors and counters that older state rows held. */
  private loadState(row: StateRow): OutboxMeta | undefined {
    assert(row.v === 1 || row.v === 2, `unknown actor state version ${row.v}`);
    const { events, duplicates, late, byType } = row.totals;
    this.events = events;
    this.duplicates = duplicates;
    this.lateEvents = late;
    for (const [type, count] of Array.isArray(byType) ? byType : Object.entries(byType)) this.byType.set(type, count);
    this.firstEventAt = row.firstEventAt;
    this.lastEventAt = row.lastEventAt;
    this.lastArrival = row.lastArrival;
    this.watermark = row.watermark;
    this.nextClosedSeq = row.nextClosedSeq;
    for (const stored of row.open) {
      const w = windowFromRow(stored);
      // A window size dropped from the configuration since the checkpoint is not resumed.
      if (!this.config.windows.some((spec) => spec.name === w.spec)) continue;
      const windows = this.open;
      const at = openIndex(windows, w.start, w.spec);
      if (windows[at]?.start === w.start && windows[at].spec === w.spec) windows[at] = w;
      else windows.splice(at, 0, w);
      if (w.end < this.minOpenEnd) this.minOpenEnd = w.end;
    }
    return row.outbox;
  }

  // ---- reads (internal shapes; src/http/views.ts renders them for the API) ----

  snapshot(): ActorSnapshot {
    return {
      key: this.key,
      totals: { events: this.events, duplicates: this.duplicates, late: this.lateEvents, byType: this.byType },
      firstEventAt: this.firstEventAt,
      lastEventAt: this.lastEventAt,
      lastArrival: this.lastArrival,
      watermark: this.watermark,
      open: this.openWindows(),
      closed: this.closedWindows(),
      dedupeIds: this.dedupe.size,
      lateLogSize: this.late?.length ?? 0,
    };
  }

  openWindows(): WindowState[] {
    const all: WindowState[] = [];
    for (const w of this.open) {
      // Reads get the numbers of the sketches, as of now.
      all.push(w.extras ? { ...w, figures: new Map([...w.extras].map(([type, e]) => [type, this.extrasViewOf(type, e)])) } : w);
    }
    if (this.typed) for (const c of this.typed.open()) all.push(seriesWindow(c, this.extrasViewOf(c.type, c.aggregate.extras)));
    return all.sort((a, b) => a.start - b.start || a.end - b.end);
  }

  /** Closed and open windows that match the query (see selectWindows). */
  selectWindows(query: WindowQuery): Array<WindowState | ClosedWindow> {
    return selectWindows<WindowState | ClosedWindow>([...this.closedWindows(), ...this.openWindows()], query);
  }

  closedWindows(): ClosedWindow[] {
    return this.closed?.map((c) => c.window) ?? [];
  }

  lateLog(): LateEntry[] {
    return this.late?.list() ?? [];
  }

  /** The rules that fired on this key, oldest first (the last RECENT_ALERTS). */
  recentAlerts(): readonly AlertRecord[] {
    return this.alerts?.list() ?? [];
  }
}

export interface ActorSnapshot extends ActorFacts {
  closed: ClosedWindow[];
  dedupeIds: number;
  lateLogSize: number;
}

const limitsByConfig = new WeakMap<ActorConfig, DedupeLimits>();

/** The alerts row: the detector's state; versions before alert segments also kept the recent alerts in it. */
interface AlertsRow {
  detector?: DetectorState;
  recent?: AlertRecord[];
}

/** A segment log's rows since the last drain, named by `row`. */
function drainLog<T>(log: SegmentLog<T>, row: (seq: number) => string, puts: Array<[string, string]>, deletes: string[]): { replacesLegacy: boolean } {
  const drained = log.drain();
  for (const [seq, text] of drained.puts) puts.push([row(seq), text]);
  for (const seq of drained.deletes) deletes.push(row(seq));
  return drained;
}

/** One limits object per configuration, shared by its actors' dedupe indexes (not one more object per actor). */
function dedupeLimits(config: ActorConfig): DedupeLimits {
  let limits = limitsByConfig.get(config);
  if (!limits) limitsByConfig.set(config, (limits = { horizon: config.dedupeHorizonMs, maxIds: config.dedupeMaxIds }));
  return limits;
}

/** Where the window of `spec` starting at `start` is, or goes, in windows sorted by start and then spec: a binary search. */
function openIndex(windows: readonly WindowState[], start: number, spec: string): number {
  let lo = 0;
  let hi = windows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const w = windows[mid]!;
    if (w.start < start || (w.start === start && w.spec < spec)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The id of the last event `outcomes` accepted. */
function lastAccepted(events: readonly Event[], outcomes: readonly IngestOutcome[]): string {
  for (let i = events.length - 1; i >= 0; i--) if (outcomes[i]!.status === "accepted") return events[i]!.id;
  return "";
}

/** What an event adds to its windows: its type's measure (keyflow.config.json), if numeric, and its distinct path's value. */
function measuredOf(config: TypeAnalytics, event: Event, enriched: EnrichedFields | undefined): Measured {
  const measure = config.measure;
  let v: number | undefined;
  if (measure === "value") v = event.value;
  else {
    const found = readPath(event, measure, enriched);
    if (typeof found === "number" && Number.isFinite(found)) v = found;
  }
  const distinct = config.aggregates.distinct;
  const d = distinct ? distinctKey(readPath(event, distinct.path, enriched)) : undefined;
  return d === undefined ? { v } : { v, d };
}

/** A per-type window as the reads show it: its type's aggregate, as `all` and its one entry of `types`. */
function seriesWindow(c: SeriesChange, figures: ExtrasView): WindowState {
  const w: WindowState = { spec: c.spec, shape: c.shape, type: c.type, start: c.start, end: c.end, all: { ...c.aggregate.agg }, types: new Map([[c.type, { ...c.aggregate.agg }]]), rev: c.revision };
  if (figures.distinct !== undefined || figures.percentiles) w.figures = new Map([[c.type, figures]]);
  return w;
}

function eventRecord(key: string, event: Event, now: number, late: boolean, enriched?: EnrichedFields): LiveRecord & { kind: "event" } {
  const record: LiveRecord & { kind: "event" } = { kind: "event", key, id: event.id, type: event.type, ts: event.ts, receivedAt: now, late };
  if (event.value !== undefined) record.value = event.value;
  if (event.properties !== undefined) record.properties = event.properties;
  if (event.requestId !== undefined) record.requestId = event.requestId;
  if (enriched !== undefined) record.enriched = enriched;
  return record;
}

import { assert } from "../ports/assert.ts";
import { AlignedWindows, type AlignedWindowsState } from "./aligned-windows.ts";
import type { AnalyticsConfig, TypeAnalytics, WindowShape } from "./analytics.ts";
import { SessionWindows, type SessionWindowsState } from "./session-windows.ts";
import { SlidingWindows, type SlidingWindowsState } from "./sliding-windows.ts";
import { seriesAggregateFromJSON, seriesOps, type SeriesAggregate, type SeriesAggregateJSON } from "./series-aggregate.ts";
import type { Measured } from "./window-extras.ts";
import { windowShapeName } from "./window-shapes.ts";

/**
 * An actor's per-type windows (issue 12): for each event type, the window shapes keyflow.config.json
 * gives it that are not among the key's own KEYFLOW_WINDOWS windows (those count every event, with a
 * breakdown per type): sliding and session windows, and tumbling or hopping sizes of its own. Each
 * (type, shape) is one store (sliding-windows.ts, session-windows.ts, aligned-windows.ts) over that
 * type's events alone, with its measure and extra aggregates, and the actor's watermark: before an
 * event is added, its stores are advanced to the watermark the actor had, so lateness does not depend
 * on how events of other types were batched.
 */

/**
 * One change of a per-type window, for the outbox, live views and the detector. Its aggregate is the
 * store's own while the window is open (no copy per event): it reads as the window's latest state,
 * which is what the actor sends at the end of the ingest for the window's last change.
 */
export interface SeriesChange {
  type: string;
  spec: string;
  shape: WindowShape["kind"];
  start: number;
  end: number;
  /** The store's revision: 1 when created, +1 per update (a merged session: past every merged one). */
  revision: number;
  aggregate: SeriesAggregate;
  /** Closed: the window's last change. */
  final: boolean;
  /** A session superseded by a merge or a backward extension: sinks delete it by (start, end). */
  retracted?: boolean;
}

type Store = AlignedWindows<SeriesAggregate, Measured> | SlidingWindows<SeriesAggregate, Measured> | SessionWindows<SeriesAggregate, Measured>;

interface Series {
  type: string;
  spec: string;
  shape: WindowShape;
  store: Store;
}

type StoreState =
  | { kind: "aligned"; state: AlignedWindowsState<SeriesAggregateJSON> }
  | { kind: "sliding"; state: SlidingWindowsState<SeriesAggregateJSON, Measured> }
  | { kind: "session"; state: SessionWindowsState<SeriesAggregateJSON> };

/** As checkpointed: [type, spec, store state] for every series that has state. */
export type TypedWindowsState = Array<[string, string, StoreState]>;

export class TypedWindows {
  /** Series by event type (created on a type's first event). A Map: types are client data. */
  private readonly series = new Map<string, Series[]>();
  /** Each type's shapes that need a series of their own (cached; [] for a type without any). */
  private readonly shapesByType = new Map<string, WindowShape[]>();

  constructor(
    private readonly analytics: AnalyticsConfig,
    private readonly keyWindows: ReadonlySet<string>,
    private readonly allowedLatenessMs: number,
  ) {}

  /** Whether any type may have windows of its own (else the actor skips this module). */
  static needed(analytics: AnalyticsConfig | undefined, keyWindows: ReadonlySet<string>): boolean {
    if (!analytics) return false;
    for (const t of analytics.types.values()) if (t.windows.some((s) => !keyWindows.has(windowShapeName(s)))) return true;
    return false;
  }

  /** The event type's configuration ("*" for a type not listed). */
  configOf(type: string): TypeAnalytics | undefined {
    return this.analytics.types.get(type) ?? this.analytics.types.get("*");
  }

  /**
   * Adds an accepted event of `type`; `watermark` is the actor's before it. Returns its windows'
   * changes (retractions before the upsert that supersedes them), the specs it was late for, and
   * whether the type has windows of its own at all (else nothing changed).
   */
  add(type: string, ts: number, measured: Measured, watermark: number | null): { changes: SeriesChange[]; missed: string[]; stored: boolean } {
    const changes: SeriesChange[] = [];
    const missed: string[] = [];
    const series = this.seriesOf(type);
    for (const s of series) {
      if (watermark !== null) s.store.advance(watermark);
      const change = (w: { start: number; end: number; revision: number; aggregate: SeriesAggregate }, retracted: boolean): SeriesChange => {
        const c: SeriesChange = { type, spec: s.spec, shape: s.shape.kind, start: w.start, end: w.end, revision: w.revision, aggregate: w.aggregate, final: false };
        if (retracted) c.retracted = true;
        return c;
      };
      if (s.store instanceof SessionWindows) {
        const r = s.store.add(ts, measured, false);
        // Retracted sessions are copies: a merge goes on changing the first one's aggregate.
        for (const old of r.retracted) changes.push(change(old, true));
        if (r.upserted) changes.push(change(r.upserted, false));
        if (r.late) missed.push(s.spec);
      } else {
        const r = s.store.add(ts, measured, false);
        for (const w of r.updated) changes.push(change(w, false));
        if (r.late) missed.push(s.spec);
      }
    }
    return { changes, missed, stored: series.length > 0 };
  }

  /** Advances every store to `watermark`; returns the windows now closed, by end, start, spec and type. */
  close(watermark: number): SeriesChange[] {
    const closed: SeriesChange[] = [];
    for (const list of this.series.values()) {
      for (const s of list) {
        for (const w of s.store.close(watermark)) {
          closed.push({ type: s.type, spec: s.spec, shape: s.shape.kind, start: w.start, end: w.end, revision: w.revision, aggregate: w.aggregate, final: true });
        }
      }
    }
    return closed.sort((a, b) => a.end - b.end || a.start - b.start || compareText(a.spec, b.spec) || compareText(a.type, b.type));
  }

  /** Open windows of every series (copies), by start. */
  open(): SeriesChange[] {
    const open: SeriesChange[] = [];
    for (const list of this.series.values()) {
      for (const s of list) for (const w of s.store.open()) open.push({ type: s.type, spec: s.spec, shape: s.shape.kind, ...w, final: false });
    }
    return open.sort((a, b) => a.start - b.start || a.end - b.end);
  }

  /** The smallest watermark at which close() returns a window, or null. */
  nextCloseAt(): number | null {
    let first = Infinity;
    for (const list of this.series.values()) for (const s of list) first = Math.min(first, s.store.nextCloseAt() ?? Infinity);
    return first === Infinity ? null : first;
  }

  toJSON(): TypedWindowsState {
    const out: TypedWindowsState = [];
    for (const [type, list] of this.series) {
      for (const s of list) {
        const state = s.store.toJSON() as unknown as StoreState["state"];
        const kind = s.store instanceof SessionWindows ? "session" : s.store instanceof SlidingWindows ? "sliding" : "aligned";
        out.push([type, s.spec, { kind, state } as StoreState]);
      }
    }
    return out;
  }

  /** Restores what toJSON() gave; series whose shape left the configuration (or changed lateness) start afresh. */
  restore(state: TypedWindowsState): void {
    for (const [type, spec, stored] of state) {
      const s = this.seriesOf(type).find((x) => x.spec === spec);
      if (!s || stored.state.allowedLatenessMs !== this.allowedLatenessMs) continue;
      const ops = seriesOps(this.configOf(type)?.aggregates ?? {});
      if (stored.kind === "session" && s.shape.kind === "session") {
        const st = stored.state;
        const revive = (x: (typeof st.sessions)[number]) => ({ ...x, aggregate: seriesAggregateFromJSON(x.aggregate) });
        s.store = SessionWindows.fromJSON({ ...st, sessions: st.sessions.map(revive), closed: st.closed.map(revive) }, ops);
      } else if (stored.kind === "sliding" && s.shape.kind === "sliding") {
        const st = stored.state;
        s.store = SlidingWindows.fromJSON({ ...st, windows: st.windows.map((w) => ({ ...w, aggregate: seriesAggregateFromJSON(w.aggregate) })) }, ops);
      } else if (stored.kind === "aligned" && (s.shape.kind === "tumbling" || s.shape.kind === "hopping")) {
        const st = stored.state;
        s.store = AlignedWindows.fromJSON({ ...st, windows: st.windows.map((w) => ({ ...w, aggregate: seriesAggregateFromJSON(w.aggregate) })) }, ops);
      }
    }
  }

  private seriesOf(type: string): Series[] {
    let list = this.series.get(type);
    if (list) return list;
    list = this.shapesOf(type).map((shape) => ({ type, spec: windowShapeName(shape), shape, store: this.newStore(type, shape) }));
    // Only types with series of their own are kept: others cost one cached empty list.
    if (list.length) this.series.set(type, list);
    return list;
  }

  /** A listed type's own shapes, or "*"'s for any other (cached: listed types are bounded by the file). */
  private shapesOf(type: string): WindowShape[] {
    const name = this.analytics.types.has(type) ? type : "*";
    let shapes = this.shapesByType.get(name);
    if (!shapes) this.shapesByType.set(name, (shapes = (this.analytics.types.get(name)?.windows ?? []).filter((s) => !this.keyWindows.has(windowShapeName(s)))));
    return shapes;
  }

  private newStore(type: string, shape: WindowShape): Store {
    const ops = seriesOps(this.configOf(type)?.aggregates ?? {});
    const lateness = this.allowedLatenessMs;
    switch (shape.kind) {
      case "sliding":
        return new SlidingWindows(shape.sizeMs, lateness, ops);
      case "session":
        return new SessionWindows(shape.gapMs, lateness, ops);
      case "tumbling":
        return new AlignedWindows(shape.sizeMs, shape.sizeMs, lateness, ops);
      case "hopping":
        assert(shape.hopMs > 0, "a hopping window has a hop");
        return new AlignedWindows(shape.sizeMs, shape.hopMs, lateness, ops);
    }
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

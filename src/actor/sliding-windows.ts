import { assert } from "../ports/assert.ts";
import type { AggregateOps } from "./aggregate-ops.ts";

/**
 * Sliding windows of one key and one shape, as Kafka Streams defines SlidingWindows
 * (ofTimeDifferenceWithNoGrace / ofTimeDifferenceAndGrace; KIP-450; KStreamSlidingWindowAggregate):
 * windows of fixed size aligned to the events' own timestamps, inclusive at both ends:
 * [start, end] with end - start = sizeMs (Kafka's timeDifference). A window starts each time an
 * event enters or leaves the sliding range, so each distinct non-empty set of events lying within
 * sizeMs of each other is aggregated exactly once, and no window is empty.
 *
 * The windows of an accepted event at t:
 * - its left window [t - size, t], ending at the event (the range the event enters);
 * - its right window [t + 1, t + 1 + size], starting just after it left, only when some event lies
 *   in (t, t + 1 + size]. Windows are identified by their start: the right window of t is the left
 *   window of an event at t + 1 + size;
 * - every window of an earlier event that it falls into (start <= t <= end) is updated.
 * When an event arrives, the windows it can make necessary are its left and right windows and the
 * right window of `prev`, the latest earlier event, when t <= prev + 1 + size (t is the first event
 * after prev in it). Right windows of events before prev exist already (or have closed): they
 * hold prev too.
 *
 * Time and lateness: the watermark is the largest timestamp seen, or passed to close() (idle
 * advance). A window is closed when end + allowedLateness < watermark (Kafka: "a window is closed
 * when stream-time > window-end + grace-period"; the half-open rule of windows.ts applied to
 * [start, end + 1)). Closed windows are never updated or created. An event is late, applied to no
 * window, when t + size + allowedLateness < watermark: every window that could hold it is closed
 * (Kafka drops it, "Skipping record for expired window"). An out-of-order event that is not late
 * updates its windows that are still open and creates the missing ones that are open; when its own
 * left window has closed, it may be in no window until a later event's window covers it.
 *
 * A new window is aggregated from the retained events, not copied from a neighbour's aggregate as
 * Kafka does: min/max (or any sketch) stay exact although a later window holds a subset of an
 * earlier one's events, and nothing is ever subtracted. Compared with Kafka Streams 4.1.1 through
 * TopologyTestDriver on random streams (scripts/window-diff.ts), every event's created and updated windows are the same
 * while nothing closes; with lateness, the only differences are where Kafka loses accepted events:
 * when the neighbour it would copy from was never created (already closed), its new window misses
 * earlier events or is not created at all, whereas here a window holds every accepted event in its
 * range that arrived before it closed. Windows may also start before 0 here (Kafka folds events
 * with t < size into one [0, size] window, its store holding no negative start; moot for epoch ms).
 *
 * Memory: events with ts < watermark - size - allowedLateness - 1 are dropped (an open window
 * starts at watermark - size - allowedLateness or later; the -1 keeps the `prev` whose right window
 * may still open), and windows are dropped when close() returns them. State is thus
 * O(events within size + allowedLateness of the watermark) when the caller calls close() as the
 * watermark moves (the actor does after every batch and on its alarm).
 *
 * Events must be deduplicated by the caller. Timestamps are integer milliseconds.
 */

export interface SlidingWindow<A> {
  start: number;
  /** start + sizeMs, inclusive. */
  end: number;
  aggregate: A;
  /** 1 when created, +1 on every update: (key, shape, start, revision) is an idempotent upsert. */
  revision: number;
}

export interface SlidingAddResult<A> {
  /** Windows created or updated by the event, by start (copies). */
  updated: SlidingWindow<A>[];
  /** Every window that could hold the event is closed: it was applied nowhere. */
  late: boolean;
}

interface StoredEvent<V> {
  ts: number;
  value: V;
}

interface OpenWindow<A> {
  start: number;
  aggregate: A;
  revision: number;
}

/** A checkpoint: plain JSON when A and V are (see AggregateOps). */
export interface SlidingWindowsState<A, V> {
  version: 1;
  sizeMs: number;
  allowedLatenessMs: number;
  watermark: number | null;
  /** By ts; `value` absent where undefined. */
  events: Array<{ ts: number; value?: V }>;
  windows: Array<{ start: number; aggregate: A; revision: number }>;
}

/** Index of the first event with ts >= t (or > t when `after`). */
function bound<V>(events: StoredEvent<V>[], t: number, after: boolean): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const ts = events[mid]!.ts;
    if (ts < t || (after && ts === t)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class SlidingWindows<A, V> {
  private watermarkMs: number | null = null;
  /** Accepted events a window that is still open may need, by ts (arrival order among equals). */
  private events: StoredEvent<V>[] = [];
  /** Windows not yet returned by close(), by start. */
  private windows = new Map<number, OpenWindow<A>>();

  constructor(
    readonly sizeMs: number,
    readonly allowedLatenessMs: number,
    private readonly ops: AggregateOps<A, V>,
  ) {
    assert(Number.isSafeInteger(sizeMs) && sizeMs > 0, "a sliding window's size is a positive whole number of ms");
    assert(Number.isSafeInteger(allowedLatenessMs) && allowedLatenessMs >= 0, "allowed lateness is a whole number of ms >= 0");
  }

  get watermark(): number | null {
    return this.watermarkMs;
  }

  /** `copy` false: the windows returned are the store's own (read them before the next call; never change them). */
  add(ts: number, value: V, copy = true): SlidingAddResult<A> {
    assert(Number.isSafeInteger(ts), "event timestamps are whole ms");
    this.advance(ts);
    if (ts + this.sizeMs + this.allowedLatenessMs < this.watermarkMs!) return { updated: [], late: true };
    this.events.splice(bound(this.events, ts, true), 0, { ts, value });
    const touched = this.addToExisting(ts, value);
    for (const start of this.missingStarts(ts)) touched.push(this.create(start));
    this.dropExpiredEvents();
    touched.sort((a, b) => a.start - b.start);
    return { updated: touched.map((w) => this.snapshot(w, copy)), late: false };
  }

  /** Advances the watermark to `watermark` if later; returns the windows now closed (final), by end. */
  close(watermark: number): SlidingWindow<A>[] {
    assert(Number.isSafeInteger(watermark), "a watermark is whole ms");
    this.advance(watermark);
    const closed: OpenWindow<A>[] = [];
    for (const w of this.windows.values()) if (this.isClosed(w.start)) closed.push(w);
    for (const w of closed) this.windows.delete(w.start);
    this.dropExpiredEvents();
    closed.sort((a, b) => a.start - b.start);
    return closed.map((w) => this.snapshot(w, false));
  }

  /** Windows still open (accepting events), by start (copies). */
  open(): SlidingWindow<A>[] {
    const open = [...this.windows.values()].filter((w) => !this.isClosed(w.start));
    open.sort((a, b) => a.start - b.start);
    return open.map((w) => this.snapshot(w, true));
  }

  /** The smallest watermark at which close() returns a window, or null when there is none. */
  nextCloseAt(): number | null {
    let first = Infinity;
    for (const start of this.windows.keys()) first = Math.min(first, start + this.sizeMs + this.allowedLatenessMs + 1);
    return first === Infinity ? null : first;
  }

  toJSON(): SlidingWindowsState<A, V> {
    return {
      version: 1,
      sizeMs: this.sizeMs,
      allowedLatenessMs: this.allowedLatenessMs,
      watermark: this.watermarkMs,
      events: this.events.map(({ ts, value }) => (value === undefined ? { ts } : { ts, value })),
      windows: [...this.windows.values()]
        .sort((a, b) => a.start - b.start)
        .map(({ start, aggregate, revision }) => ({ start, aggregate: this.ops.clone(aggregate), revision })),
    };
  }

  /** Takes ownership of the state's aggregates and values. */
  static fromJSON<A, V>(state: SlidingWindowsState<A, V>, ops: AggregateOps<A, V>): SlidingWindows<A, V> {
    assert(state.version === 1, "sliding window state version 1");
    const sw = new SlidingWindows(state.sizeMs, state.allowedLatenessMs, ops);
    sw.watermarkMs = state.watermark;
    sw.events = state.events.map(({ ts, value }) => ({ ts, value: value as V }));
    for (const w of state.windows) sw.windows.set(w.start, { start: w.start, aggregate: w.aggregate, revision: w.revision });
    assert(sw.windows.size === state.windows.length, "sliding window starts are unique");
    assert(sw.events.every((e, i) => i === 0 || sw.events[i - 1]!.ts <= e.ts), "retained events are sorted by ts");
    assert(sw.watermarkMs !== null || (sw.events.length === 0 && sw.windows.size === 0), "state without a watermark is empty");
    return sw;
  }

  /** Moves the watermark to `to` if later (windows it closes are returned by the next close()). */
  advance(to: number): void {
    if (this.watermarkMs === null || to > this.watermarkMs) this.watermarkMs = to;
  }

  private isClosed(start: number): boolean {
    return this.watermarkMs !== null && start + this.sizeMs + this.allowedLatenessMs < this.watermarkMs;
  }

  private addToExisting(ts: number, value: V): OpenWindow<A>[] {
    const touched: OpenWindow<A>[] = [];
    for (const w of this.windows.values()) {
      if (w.start > ts || w.start + this.sizeMs < ts || this.isClosed(w.start)) continue;
      w.aggregate = this.ops.add(w.aggregate, value);
      w.revision++;
      touched.push(w);
    }
    return touched;
  }

  /** Starts of the open windows the event at ts (already stored) makes necessary and that do not exist yet. */
  private missingStarts(ts: number): number[] {
    const starts = [ts - this.sizeMs];
    const next = this.events[bound(this.events, ts, true)];
    if (next && next.ts <= ts + 1 + this.sizeMs) starts.push(ts + 1);
    const prev = this.events[bound(this.events, ts, false) - 1];
    if (prev && ts <= prev.ts + 1 + this.sizeMs) starts.push(prev.ts + 1);
    return starts.filter((start, i) => starts.indexOf(start) === i && !this.windows.has(start) && !this.isClosed(start));
  }

  private create(start: number): OpenWindow<A> {
    const end = start + this.sizeMs;
    let aggregate = this.ops.empty();
    let count = 0;
    for (let i = bound(this.events, start, false); i < this.events.length && this.events[i]!.ts <= end; i++, count++) {
      aggregate = this.ops.add(aggregate, this.events[i]!.value);
    }
    assert(count > 0, "a sliding window is created only with an event in it");
    const w = { start, aggregate, revision: 1 };
    this.windows.set(start, w);
    return w;
  }

  private dropExpiredEvents(): void {
    if (this.watermarkMs === null) return;
    const drop = bound(this.events, this.watermarkMs - this.sizeMs - this.allowedLatenessMs - 1, false);
    if (drop) this.events.splice(0, drop);
  }

  private snapshot(w: OpenWindow<A>, copy: boolean): SlidingWindow<A> {
    return { start: w.start, end: w.start + this.sizeMs, aggregate: copy ? this.ops.clone(w.aggregate) : w.aggregate, revision: w.revision };
  }
}

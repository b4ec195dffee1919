import { assert } from "../ports/assert.ts";
import type { AggregateOps } from "./aggregate-ops.ts";

/**
 * Tumbling and hopping windows of one event type (keyflow.config.json sizes that KEYFLOW_WINDOWS does
 * not have), with the same interface as SlidingWindows and SessionWindows so the actor drives every
 * shape alike. The rules are those of the key's own windows (windows.ts, actor.ts): epoch-aligned,
 * half-open [start, start + size) every hop; a window is closed when end + allowedLateness <=
 * watermark; an event is late when some window holding it is closed, and is applied to the open ones.
 */

export interface AlignedWindow<A> {
  start: number;
  end: number;
  aggregate: A;
  /** 1 when created, +1 on every update. */
  revision: number;
}

export interface AlignedWindowsState<A> {
  version: 1;
  sizeMs: number;
  hopMs: number;
  allowedLatenessMs: number;
  watermark: number | null;
  windows: Array<AlignedWindow<A>>;
}

export class AlignedWindows<A, V> {
  private watermarkMs: number | null = null;
  private windows = new Map<number, AlignedWindow<A>>();

  constructor(
    readonly sizeMs: number,
    readonly hopMs: number,
    readonly allowedLatenessMs: number,
    private readonly ops: AggregateOps<A, V>,
  ) {
    assert(Number.isSafeInteger(sizeMs) && Number.isSafeInteger(hopMs) && hopMs > 0 && sizeMs % hopMs === 0, "size is a whole multiple of a positive hop");
    assert(Number.isSafeInteger(allowedLatenessMs) && allowedLatenessMs >= 0, "allowed lateness is a whole number of ms >= 0");
  }

  get watermark(): number | null {
    return this.watermarkMs;
  }

  advance(to: number): void {
    if (this.watermarkMs === null || to > this.watermarkMs) this.watermarkMs = to;
  }

  /** Windows created or updated by the event (copies, by start); late when some window holding it had closed. */
  /** `copy` false: the windows returned are the store's own (read them before the next call; never change them). */
  add(ts: number, value: V, copy = true): { updated: AlignedWindow<A>[]; late: boolean } {
    assert(Number.isSafeInteger(ts), "event timestamps are whole ms");
    this.advance(ts);
    const updated: AlignedWindow<A>[] = [];
    let late = false;
    for (let start = Math.floor(ts / this.hopMs) * this.hopMs; start > ts - this.sizeMs && start >= 0; start -= this.hopMs) {
      if (this.isClosed(start)) {
        late = true;
        continue;
      }
      let w = this.windows.get(start);
      if (!w) this.windows.set(start, (w = { start, end: start + this.sizeMs, aggregate: this.ops.empty(), revision: 0 }));
      w.aggregate = this.ops.add(w.aggregate, value);
      w.revision++;
      updated.push(copy ? this.copy(w) : w);
    }
    return { updated: updated.reverse(), late };
  }

  /** Advances the watermark if later; returns the windows now closed (final, by start). */
  close(watermark: number): AlignedWindow<A>[] {
    this.advance(watermark);
    const closed = [...this.windows.values()].filter((w) => this.isClosed(w.start)).sort((a, b) => a.start - b.start);
    for (const w of closed) this.windows.delete(w.start);
    return closed;
  }

  open(): AlignedWindow<A>[] {
    return [...this.windows.values()].filter((w) => !this.isClosed(w.start)).sort((a, b) => a.start - b.start).map((w) => this.copy(w));
  }

  nextCloseAt(): number | null {
    let first = Infinity;
    for (const w of this.windows.values()) first = Math.min(first, w.end + this.allowedLatenessMs);
    return first === Infinity ? null : first;
  }

  toJSON(): AlignedWindowsState<A> {
    return {
      version: 1,
      sizeMs: this.sizeMs,
      hopMs: this.hopMs,
      allowedLatenessMs: this.allowedLatenessMs,
      watermark: this.watermarkMs,
      windows: [...this.windows.values()].sort((a, b) => a.start - b.start).map((w) => this.copy(w)),
    };
  }

  /** Takes ownership of the state's aggregates. */
  static fromJSON<A, V>(state: AlignedWindowsState<A>, ops: AggregateOps<A, V>): AlignedWindows<A, V> {
    assert(state.version === 1, "aligned window state version 1");
    const aw = new AlignedWindows(state.sizeMs, state.hopMs, state.allowedLatenessMs, ops);
    aw.watermarkMs = state.watermark;
    for (const w of state.windows) aw.windows.set(w.start, { ...w });
    return aw;
  }

  private isClosed(start: number): boolean {
    return this.watermarkMs !== null && start + this.sizeMs + this.allowedLatenessMs <= this.watermarkMs;
  }

  private copy(w: AlignedWindow<A>): AlignedWindow<A> {
    return { start: w.start, end: w.end, aggregate: this.ops.clone(w.aggregate), revision: w.revision };
  }
}

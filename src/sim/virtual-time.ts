import type { Clock } from "../ports/clock.ts";
import type { Timers } from "../ports/timers.ts";

export interface Task {
  at: number;
  seq: number;
  /** Short label for the trace ("send", "alarm", "sink.respond", ...). */
  kind: string;
  /** The actor key it concerns, or "" */
  key: string;
  fn: () => void;
}

/**
 * Virtual time: a clock, the host Timers, and a discrete-event queue (a binary min-heap ordered by
 * time, then insertion order, so ties break the same way on every run). The simulator and the unit
 * tests both run on it; nothing here reads the host clock.
 */
export class VirtualTime implements Clock, Timers {
  time: number;
  private heap: Task[] = [];
  private seq = 0;
  private readonly cancelled = new Set<number>();

  constructor(start: number) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  /** Tasks queued (cancelled timers included until they surface). */
  get size(): number {
    return this.heap.length;
  }

  at(at: number, kind: string, key: string, fn: () => void): number {
    const seq = this.seq++;
    this.push({ at: Math.max(at, this.time), seq, kind, key, fn });
    return seq;
  }

  after(delayMs: number, kind: string, key: string, fn: () => void): number {
    return this.at(this.time + Math.max(0, delayMs), kind, key, fn);
  }

  // ---- Timers, for hosts ----

  setTimeout(fn: () => void, delayMs: number): unknown {
    return this.after(delayMs, "timer", "", fn);
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === "number") this.cancelled.add(handle);
  }

  /** setImmediate: after the tasks already due now. */
  defer(fn: () => void): void {
    this.at(this.time, "defer", "", fn);
  }

  // ---- driving ----

  /** The time of the next live task. */
  peekTime(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.at;
  }

  /** Removes the next live task and moves the clock to its time. */
  pop(): Task | undefined {
    this.dropCancelled();
    const top = this.take();
    if (top) this.time = Math.max(this.time, top.at);
    return top;
  }

  /** Runs due tasks in time order (including ones they queue), moving the clock to each, then to now + ms. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const next = this.peekTime();
      if (next === undefined || next > until) break;
      this.pop()!.fn();
    }
    this.time = until;
  }

  private dropCancelled(): void {
    while (this.heap.length && this.cancelled.delete(this.heap[0]!.seq)) this.take();
  }

  private take(): Task | undefined {
    const h = this.heap;
    const top = h[0];
    if (!top) return undefined;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let min = i;
        if (l < h.length && before(h[l]!, h[min]!)) min = l;
        if (r < h.length && before(h[r]!, h[min]!)) min = r;
        if (min === i) break;
        [h[min], h[i]] = [h[i]!, h[min]!];
        i = min;
      }
    }
    return top;
  }

  private push(task: Task): void {
    const h = this.heap;
    h.push(task);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }
}

function before(a: Task, b: Task): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

import type { Clock } from "../ports/clock.ts";

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
 * Virtual time and the discrete-event queue: a binary min-heap ordered by (time, insertion order),
 * so ties are broken the same way on every run. Nothing here reads the host clock.
 */
export class Scheduler implements Clock {
  time: number;
  private heap: Task[] = [];
  private seq = 0;

  constructor(start: number) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  get size(): number {
    return this.heap.length;
  }

  at(at: number, kind: string, key: string, fn: () => void): void {
    this.push({ at: Math.max(at, this.time), seq: this.seq++, kind, key, fn });
  }

  after(delay: number, kind: string, key: string, fn: () => void): void {
    this.at(this.time + Math.max(0, delay), kind, key, fn);
  }

  peekTime(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Removes the next task and moves the clock to its time. */
  pop(): Task | undefined {
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
    this.time = Math.max(this.time, top.at);
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

/** Wake-up times per key, earliest first: a binary min-heap with lazy deletion. */
export class WakeSchedule {
  private readonly due = new Map<string, number>();
  private heap: Array<[number, string]> = [];

  get(key: string): number | undefined {
    return this.due.get(key);
  }

  set(key: string, at: number): void {
    this.due.set(key, at);
    this.push([at, key]);
    // Replaced entries stay in the heap until they surface; when they are most of it (a key whose
    // wake keeps moving, as in a backfill where event time runs ahead), rebuild from the live ones.
    if (this.heap.length > 2 * this.due.size + 1024) {
      this.heap = [...this.due].map(([k, t]): [number, string] => [t, k]).sort((a, b) => a[0] - b[0]);
    }
  }

  /** Entries in the heap, replaced ones included (for tests of its bound). */
  get heapSize(): number {
    return this.heap.length;
  }

  /** The earliest pending time, or undefined. */
  peek(): number | undefined {
    this.dropStale();
    return this.heap[0]?.[0];
  }

  /** Removes and returns the keys due at or before `now`. */
  takeDue(now: number): string[] {
    const keys: string[] = [];
    for (;;) {
      this.dropStale();
      const top = this.heap[0];
      if (!top || top[0] > now) return keys;
      this.pop();
      this.due.delete(top[1]);
      keys.push(top[1]);
    }
  }

  private dropStale(): void {
    while (this.heap.length && this.due.get(this.heap[0]![1]) !== this.heap[0]![0]) this.pop();
  }

  private push(item: [number, string]): void {
    const h = this.heap;
    h.push(item);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (h[parent]![0] <= h[i]![0]) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (!h.length) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < h.length && h[l]![0] < h[min]![0]) min = l;
      if (r < h.length && h[r]![0] < h[min]![0]) min = r;
      if (min === i) break;
      [h[min], h[i]] = [h[i]!, h[min]!];
      i = min;
    }
  }
}

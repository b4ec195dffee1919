/**
 * Wake-up times per key, earliest first: a binary min-heap with lazy deletion. The heap is two
 * parallel arrays (times, keys), not an array of [time, key] pairs: a pair per key would cost ~48
 * bytes more for every key with a wake, in memory or not (issue 14: a million keys on one server).
 */
export class WakeSchedule {
  private readonly due = new Map<string, number>();
  private times: number[] = [];
  private keys: string[] = [];

  get(key: string): number | undefined {
    return this.due.get(key);
  }

  set(key: string, at: number): void {
    this.due.set(key, at);
    this.push(at, key);
    // Replaced entries stay in the heap until they surface; when they are most of it (a key whose
    // wake keeps moving, as in a backfill where event time runs ahead), rebuild from the live ones.
    if (this.times.length > 2 * this.due.size + 1024) {
      const live = [...this.due].sort((a, b) => a[1] - b[1]);
      this.times = live.map(([, t]) => t);
      this.keys = live.map(([k]) => k);
    }
  }

  /** Entries in the heap, replaced ones included (for tests of its bound). */
  get heapSize(): number {
    return this.times.length;
  }

  /** The earliest pending time, or undefined. */
  peek(): number | undefined {
    this.dropStale();
    return this.times[0];
  }

  /** Removes and returns the keys due at or before `now`. */
  takeDue(now: number): string[] {
    const keys: string[] = [];
    for (;;) {
      this.dropStale();
      if (!this.times.length || this.times[0]! > now) return keys;
      const key = this.keys[0]!;
      this.pop();
      this.due.delete(key);
      keys.push(key);
    }
  }

  private dropStale(): void {
    while (this.times.length && this.due.get(this.keys[0]!) !== this.times[0]) this.pop();
  }

  private push(at: number, key: string): void {
    const t = this.times;
    t.push(at);
    this.keys.push(key);
    for (let i = t.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (t[parent]! <= t[i]!) break;
      this.swap(parent, i);
      i = parent;
    }
  }

  private pop(): void {
    const t = this.times;
    const lastTime = t.pop()!;
    const lastKey = this.keys.pop()!;
    if (!t.length) return;
    t[0] = lastTime;
    this.keys[0] = lastKey;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < t.length && t[l]! < t[min]!) min = l;
      if (r < t.length && t[r]! < t[min]!) min = r;
      if (min === i) break;
      this.swap(min, i);
      i = min;
    }
  }

  private swap(a: number, b: number): void {
    const t = this.times;
    const k = this.keys;
    const time = t[a]!;
    const key = k[a]!;
    t[a] = t[b]!;
    k[a] = k[b]!;
    t[b] = time;
    k[b] = key;
  }
}

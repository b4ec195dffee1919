/**
 * Top keys by events: a Space-Saving sketch (Metwally, Agrawal, El Abbadi, "Efficient Computation of
 * Frequent and Top-k Elements in Data Streams", 2005) per tenant, in bounded memory.
 *
 * A sketch of capacity m watches at most m keys. A watched key's counter grows with its events; a
 * new key, once m are watched, takes over the counter with the smallest count c and starts from c+1
 * with error c. For a stream of N events this guarantees: every key seen more than N/m times is
 * watched; a watched key's true count lies in [count - error, count]; error ≤ N/m. With at most m
 * distinct keys the counts are exact.
 *
 * The counters sit in a min-heap (smallest count on top), so an event costs one Map lookup and a
 * short sift. Keys are client data: kept in a Map, never as object properties.
 */

interface Counter {
  key: string;
  count: number;
  error: number;
  /** Its index in the heap. */
  at: number;
}

export interface KeyCount {
  key: string;
  count: number;
  /** How much of `count` may belong to keys this counter watched before. */
  error: number;
}

export class SpaceSaving {
  private readonly counters = new Map<string, Counter>();
  private readonly heap: Counter[] = [];
  /** Events counted. */
  total = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("capacity must be a positive integer");
  }

  add(key: string, n = 1): void {
    this.total += n;
    const found = this.counters.get(key);
    if (found) {
      found.count += n;
      this.down(found.at);
    } else if (this.heap.length < this.capacity) {
      const counter = { key, count: n, error: 0, at: this.heap.length };
      this.heap.push(counter);
      this.counters.set(key, counter);
      this.up(counter.at);
    } else {
      const min = this.heap[0]!;
      this.counters.delete(min.key);
      min.key = key;
      min.error = min.count;
      min.count += n;
      this.counters.set(key, min);
      this.down(0);
    }
  }

  /** The `limit` largest counts, largest first (ties by key, so answers are stable). */
  top(limit: number): KeyCount[] {
    return this.heap
      .map(({ key, count, error }) => ({ key, count, error }))
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .slice(0, limit);
  }

  get size(): number {
    return this.heap.length;
  }

  private up(i: number): void {
    const heap = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.count <= heap[i]!.count) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const heap = this.heap;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && heap[left]!.count < heap[least]!.count) least = left;
      if (right < heap.length && heap[right]!.count < heap[least]!.count) least = right;
      if (least === i) return;
      this.swap(i, least);
      i = least;
    }
  }

  private swap(i: number, j: number): void {
    const heap = this.heap;
    const a = heap[i]!;
    const b = heap[j]!;
    heap[i] = b;
    heap[j] = a;
    a.at = j;
    b.at = i;
  }
}

/** Keys watched per tenant, and tenants watched: beyond that many, a new tenant's keys are not counted. */
export const TOP_KEYS_CAPACITY = 1_000;
export const TOP_KEYS_MAX_TENANTS = 1_000;

/**
 * One sketch per tenant, in this process (on Workers: in this isolate, so each isolate counts the
 * events it received since it started). `since` is when counting began (epoch ms).
 */
export class TopKeys {
  private readonly tenants = new Map<string, SpaceSaving>();

  constructor(
    readonly since: number,
    private readonly capacity = TOP_KEYS_CAPACITY,
    private readonly maxTenants = TOP_KEYS_MAX_TENANTS,
  ) {}

  /** The tenant's sketch to count its accepted events into; undefined once too many tenants are watched. */
  of(tenant: string): SpaceSaving | undefined {
    let sketch = this.tenants.get(tenant);
    if (!sketch && this.tenants.size < this.maxTenants) this.tenants.set(tenant, (sketch = new SpaceSaving(this.capacity)));
    return sketch;
  }

  top(tenant: string, limit: number): KeyCount[] {
    return this.tenants.get(tenant)?.top(limit) ?? [];
  }
}

/**
 * The storage a host gives the core: ordered string keys to string values, read by prefix,
 * written in atomic batches. Implementations: memory (tests, simulator), SQLite (Bun, Deno),
 * Durable Object storage (edge).
 */
export interface KvStore {
  /** Rows whose key starts with `prefix`, ordered by key. */
  list(prefix: string): Array<[string, string]>;
  /** The value of one row, if it exists. */
  get(key: string): string | undefined;
  /** Applies all puts and deletes atomically and durably, or throws and applies none. */
  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void;
  /**
   * As write, but off the caller's event loop (the fsync does not stall it); what it wrote is visible
   * to list and get once it resolves. A caller using it has at most one in flight and does not mix
   * it with write.
   */
  writeAsync?(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): Promise<void>;
  close(): void;
}

/**
 * Rows in memory, grouped by their first two path segments (`a/<key>/…` is one actor's group): listing
 * an actor's rows reads its group, not every row. One flat Map made each new key's first load a
 * scan of the whole store, so a memory store's ingest of new keys grew with the square of their
 * number (20,000 keys: 15 s; 40,000: 61 s).
 */
export class MemoryKvStore implements KvStore {
  private readonly groups = new Map<string, Map<string, string>>();
  private count = 0;

  /** How many rows there are. */
  get size(): number {
    return this.count;
  }

  list(prefix: string): Array<[string, string]> {
    const found: Array<[string, string]> = [];
    if (secondSlash(prefix) >= 0) {
      // Every row under such a prefix is in the prefix's own group.
      for (const entry of this.groups.get(groupOf(prefix)) ?? []) if (entry[0].startsWith(prefix)) found.push(entry);
    } else {
      for (const [group, rows] of this.groups) {
        if (!group.startsWith(prefix) && !prefix.startsWith(group)) continue;
        for (const entry of rows) if (entry[0].startsWith(prefix)) found.push(entry);
      }
    }
    return found.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  get(key: string): string | undefined {
    return this.groups.get(groupOf(key))?.get(key);
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    for (const key of deletes) {
      const group = groupOf(key);
      const rows = this.groups.get(group);
      if (!rows?.delete(key)) continue;
      this.count--;
      if (!rows.size) this.groups.delete(group);
    }
    for (const [key, value] of puts) {
      const group = groupOf(key);
      let rows = this.groups.get(group);
      if (!rows) this.groups.set(group, (rows = new Map()));
      const size = rows.size;
      rows.set(key, value);
      if (rows.size > size) this.count++;
    }
  }

  close(): void {}
}

/** Where the second "/" of a row name is, or -1. */
function secondSlash(name: string): number {
  const first = name.indexOf("/");
  return first < 0 ? -1 : name.indexOf("/", first + 1);
}

/** A row's group: its name up to the second "/" (`a/<key>/`), else up to the first (`p/`), else the name. */
function groupOf(name: string): string {
  const second = secondSlash(name);
  if (second >= 0) return name.slice(0, second + 1);
  const first = name.indexOf("/");
  return first >= 0 ? name.slice(0, first + 1) : name;
}

/** The rows under `prefix`, named relative to it (`a/k/state` under `a/k/` is `state`). */
export function listRelative(store: KvStore, prefix: string): Array<[string, string]> {
  return store.list(prefix).map(([k, v]): [string, string] => [k.slice(prefix.length), v]);
}

/** The smallest string greater than every string that starts with `prefix` (for range scans). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

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

export class MemoryKvStore implements KvStore {
  readonly rows = new Map<string, string>();

  list(prefix: string): Array<[string, string]> {
    const found: Array<[string, string]> = [];
    for (const entry of this.rows) if (entry[0].startsWith(prefix)) found.push(entry);
    return found.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  get(key: string): string | undefined {
    return this.rows.get(key);
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    for (const key of deletes) this.rows.delete(key);
    for (const [key, value] of puts) this.rows.set(key, value);
  }

  close(): void {}
}

/** The rows under `prefix`, named relative to it (`a/k/state` under `a/k/` is `state`). */
export function listRelative(store: KvStore, prefix: string): Array<[string, string]> {
  return store.list(prefix).map(([k, v]): [string, string] => [k.slice(prefix.length), v]);
}

/** The smallest string greater than every string that starts with `prefix` (for range scans). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

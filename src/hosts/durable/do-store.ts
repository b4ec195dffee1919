import { prefixEnd, type KvStore } from "../../ports/kv-store.ts";

/**
 * A KvStore on a SQLite-backed Durable Object's own database. Writes run in transactionSync, so
 * they commit atomically; the output gate holds the response until they are durable.
 */
export class DurableObjectKvStore implements KvStore {
  constructor(private readonly storage: DurableObjectStorage) {
    storage.sql.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID");
  }

  list(prefix: string): Array<[string, string]> {
    const cursor = this.storage.sql.exec<{ k: string; v: string }>(
      "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k",
      prefix,
      prefixEnd(prefix),
    );
    return cursor.toArray().map((r) => [r.k, r.v]);
  }

  get(key: string): string | undefined {
    return this.storage.sql.exec<{ v: string }>("SELECT v FROM kv WHERE k = ?", key).toArray()[0]?.v;
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    this.storage.transactionSync(() => {
      for (const key of deletes) this.storage.sql.exec("DELETE FROM kv WHERE k = ?", key);
      for (const [key, value] of puts) this.storage.sql.exec("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", key, value);
    });
  }

  close(): void {}
}

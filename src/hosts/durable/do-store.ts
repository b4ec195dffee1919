import { prefixEnd, type KvStore } from "../../ports/kv-store.ts";
import type { UsageMeter } from "./usage.ts";

/**
 * A KvStore on a SQLite-backed Durable Object's own database. Writes run in transactionSync, so
 * they commit atomically; the output gate holds the response until they are durable. `meter` counts
 * the rows each statement's cursor reports (what Cloudflare bills).
 */
export class DurableObjectKvStore implements KvStore {
  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly meter?: UsageMeter,
  ) {
    this.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID");
  }

  list(prefix: string): Array<[string, string]> {
    return this.exec<{ k: string; v: string }>("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k", prefix, prefixEnd(prefix)).map((r) => [r.k, r.v]);
  }

  get(key: string): string | undefined {
    return this.exec<{ v: string }>("SELECT v FROM kv WHERE k = ?", key)[0]?.v;
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    this.storage.transactionSync(() => {
      for (const key of deletes) this.exec("DELETE FROM kv WHERE k = ?", key);
      for (const [key, value] of puts) this.exec("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", key, value);
    });
  }

  close(): void {}

  /** Runs a statement to its end, counting the rows its cursor read and wrote. */
  private exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): T[] {
    const cursor = this.storage.sql.exec<T>(query, ...bindings);
    const rows = cursor.toArray();
    this.meter?.rows(cursor.rowsWritten, cursor.rowsRead);
    return rows;
  }
}

import { prefixEnd, type KvStore } from "../../ports/kv-store.ts";

/** The few calls keyflow needs from a synchronous SQLite driver; bun:sqlite and node:sqlite (Deno) both fit. */
export interface SqliteDatabase {
  exec(sql: string): unknown;
  prepare(sql: string): SqliteStatement;
  close(): unknown;
}

export interface SqliteStatement {
  run(...params: string[]): unknown;
  all(...params: string[]): unknown[];
}

export type SqliteSync = "full" | "normal" | "off";

/** A KvStore on one SQLite table; each write() is one transaction (one fsync with synchronous=full). */
export class SqliteKvStore implements KvStore {
  private readonly put: SqliteStatement;
  private readonly del: SqliteStatement;
  private readonly range: SqliteStatement;
  private readonly one: SqliteStatement;

  constructor(
    private readonly db: SqliteDatabase,
    sync: SqliteSync = "full",
  ) {
    db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${sync.toUpperCase()}; PRAGMA busy_timeout = 5000;`);
    db.exec("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)");
    this.put = db.prepare("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)");
    this.del = db.prepare("DELETE FROM kv WHERE k = ?");
    this.range = db.prepare("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k");
    this.one = db.prepare("SELECT v FROM kv WHERE k = ?");
  }

  list(prefix: string): Array<[string, string]> {
    const rows = this.range.all(prefix, prefixEnd(prefix)) as Array<{ k: string; v: string }>;
    return rows.map((r) => [r.k, r.v]);
  }

  get(key: string): string | undefined {
    return (this.one.all(key) as Array<{ v: string }>)[0]?.v;
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      for (const key of deletes) this.del.run(key);
      for (const [key, value] of puts) this.put.run(key, value);
      this.db.exec("COMMIT");
    } catch (error) {
      this.db.exec("ROLLBACK");
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }
}

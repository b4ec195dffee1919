import { DatabaseSync } from "node:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { SqliteKvStore, type SqliteDatabase, type SqliteSync } from "../hosts/process/sqlite-store.ts";

export function openNodeSqlite(path: string, sync?: SqliteSync): SqliteKvStore {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  return new SqliteKvStore(new DatabaseSync(path) as unknown as SqliteDatabase, sync);
}

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { SqliteKvStore, type SqliteSync } from "../hosts/process/sqlite-store.ts";

export function openBunSqlite(path: string, sync?: SqliteSync): SqliteKvStore {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  return new SqliteKvStore(new Database(path, { create: true, strict: true }), sync);
}

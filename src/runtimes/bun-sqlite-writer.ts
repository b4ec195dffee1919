// The writer thread of the Bun server's SQLite store (bun-sqlite.ts): it owns the connection that
// writes, so each commit's fsync and SQLite's WAL checkpoints block this thread, not the event loop.
import { Database } from "bun:sqlite";
import { SqliteKvStore, type SqliteSync } from "../hosts/process/sqlite-store.ts";
import { decodeRowFrames } from "../hosts/process/row-frames.ts";

export type WriterRequest =
  | { open: { path: string; sync: SqliteSync } }
  /** encodeRowFrames(puts, deletes) */
  | { id: number; rows: string };
export type WriterReply = { id: number; error?: string };

declare const self: Worker;

let store: SqliteKvStore | undefined;
let openError: string | undefined;

self.onmessage = (message: MessageEvent<WriterRequest>) => {
  const request = message.data;
  if ("open" in request) {
    try {
      store = new SqliteKvStore(new Database(request.open.path, { strict: true }), request.open.sync);
    } catch (error) {
      openError = `cannot open ${request.open.path}: ${(error as Error)?.message ?? error}`;
    }
    return;
  }
  const reply: WriterReply = { id: request.id };
  try {
    if (!store) throw new Error(openError ?? "the writer has no database");
    const { puts, deletes } = decodeRowFrames(request.rows);
    store.write(puts, deletes);
  } catch (error) {
    reply.error = String((error as Error)?.message ?? error);
  }
  postMessage(reply);
};

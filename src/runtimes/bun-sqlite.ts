import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { SqliteKvStore, type SqliteSync } from "../hosts/process/sqlite-store.ts";
import type { KvStore } from "../ports/kv-store.ts";
import { encodeRowFrames } from "../hosts/process/row-frames.ts";
import type { WriterReply, WriterRequest } from "./bun-sqlite-writer.ts";

/**
 * The Bun server's store: SQLite read on the event loop, written by a thread of its own
 * (`offLoopWrites`, the default for a file) so that no commit's fsync stalls request handling.
 */
export function openBunSqlite(path: string, sync?: SqliteSync, offLoopWrites = path !== ":memory:"): KvStore {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const store = new SqliteKvStore(new Database(path, { create: true, strict: true }), sync);
  return offLoopWrites ? new WriterThreadStore(store, path, sync ?? "full") : store;
}

/**
 * Reads (and write, for callers that want it synchronous) go to the loop's own connection;
 * writeAsync goes to the writer thread's connection to the same file. SQLite's WAL lets the
 * reader run while the writer commits, and a read after writeAsync resolved sees what it wrote.
 */
class WriterThreadStore implements KvStore {
  /** Bun's Worker, which can be let go of (unref) while no write is out. */
  private readonly worker: Worker & { ref(): void; unref(): void };
  private readonly waiting = new Map<number, { resolve(): void; reject(error: Error): void }>();
  private nextId = 0;
  /** The thread failed: writes go to the loop's connection, as on a store without a thread. */
  private onLoop = false;
  private closed = false;

  constructor(
    private readonly store: SqliteKvStore,
    path: string,
    sync: SqliteSync,
  ) {
    this.worker = new Worker(writerEntry()) as WriterThreadStore["worker"];
    this.worker.onmessage = (message: MessageEvent<WriterReply>) => this.settle(message.data);
    const died = (why: string) => {
      if (this.closed || this.onLoop) return;
      // Its writes in flight fail (their callers get 503 and retry); later ones are written on the loop.
      console.error(`keyflow: the SQLite writer thread ${why}; writing on the event loop from now on`);
      this.onLoop = true;
      this.fail(`the SQLite writer thread ${why}`);
    };
    this.worker.onerror = (event) => died(`failed: ${event.message}`);
    this.worker.addEventListener("close", () => died("stopped"));
    this.worker.unref();
    this.post({ open: { path, sync } });
  }

  list(prefix: string): Array<[string, string]> {
    return this.store.list(prefix);
  }

  get(key: string): string | undefined {
    return this.store.get(key);
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    this.store.write(puts, deletes);
  }

  writeAsync(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the store is closed"));
    if (this.onLoop) {
      try {
        this.store.write(puts, deletes);
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      // While a write is out, the thread keeps the process alive: a stopping server waits for it.
      if (!this.waiting.size) this.worker.ref();
      this.waiting.set(id, { resolve, reject });
      this.post({ id, rows: encodeRowFrames(puts, deletes) });
    });
  }

  close(): void {
    this.closed = true;
    this.fail("the store is closed");
    this.worker.terminate();
    this.store.close();
  }

  private post(request: WriterRequest): void {
    this.worker.postMessage(request);
  }

  private settle({ id, error }: WriterReply): void {
    const waiter = this.waiting.get(id);
    if (!waiter) return;
    this.waiting.delete(id);
    if (!this.waiting.size) this.worker.unref();
    if (error === undefined) waiter.resolve();
    else waiter.reject(new Error(error));
  }

  /** Fails the writes in flight. */
  private fail(reason: string): void {
    for (const waiter of this.waiting.values()) waiter.reject(new Error(reason));
    this.waiting.clear();
  }
}

/**
 * The writer thread's module. In a binary of `npm run build`, which lists it as a second entry point,
 * it is bundled as runtimes/bun-sqlite-writer.js next to the main bundle (src/ is the build's root).
 */
function writerEntry(): string {
  const compiled = /[$~]bunfs|~BUN/i.test(import.meta.url);
  return new URL(compiled ? "./runtimes/bun-sqlite-writer.js" : "./bun-sqlite-writer.ts", import.meta.url).href;
}

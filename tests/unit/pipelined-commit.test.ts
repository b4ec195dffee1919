/**
 * Group commit over a store that writes off the event loop (writeAsync, as the Bun server's SQLite
 * writer thread): the next group gathers while a write is in flight, and is acked only by its own.
 */
import { describe, expect, test } from "bun:test";
import type { Event } from "../../src/actor/event.ts";
import { StorageError } from "../../src/http/gateway.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { DEFAULT_CONFIG } from "../../src/settings/config.ts";
import { fakeEnv } from "../support/fake-env.ts";

type Rows = ReadonlyArray<readonly [string, string]>;

/** A store whose async writes wait until the test ends them, applied only when they succeed. */
class ManualAsyncStore extends MemoryKvStore {
  readonly inFlight: Array<{ puts: Rows; deletes: readonly string[]; end(ok: boolean): void }> = [];

  writeAsync(puts: Rows, deletes: readonly string[]): Promise<void> {
    expect(this.inFlight.length).toBe(0); // one at a time
    return new Promise((resolve, reject) => {
      this.inFlight.push({
        puts,
        deletes,
        end: (ok) => {
          this.inFlight.shift();
          if (!ok) return reject(new Error("disk I/O error"));
          this.write(puts, deletes);
          resolve();
        },
      });
    });
  }

  journalRowsOf(rows: Rows): number {
    return rows.filter(([k]) => k.startsWith("j/")).length;
  }
}

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const ev = (key: string, id: string, ts = T0): Event => ({ id, assigned: false, type: "purchase", key, ts, value: 1 });

function setup() {
  const fake = fakeEnv(T0 + 30_000);
  const store = new ManualAsyncStore();
  const runtime = new ProcessHost({ store, config: DEFAULT_CONFIG, clock: fake.clock, random: fake.random, timers: fake.timers });
  /** Runs the queued flush and lets promise callbacks run. */
  const turn = async () => {
    fake.timers.advance(0);
    await Bun.sleep(0);
  };
  return { store, runtime, turn };
}

function tracked<T>(promise: Promise<T>) {
  const t = { done: false, failed: undefined as unknown, value: undefined as T | undefined };
  promise.then((v) => ((t.done = true), (t.value = v)), (e) => ((t.done = true), (t.failed = e)));
  return t;
}

describe("pipelined group commit", () => {
  test("commands gather while a write is in flight and commit together after it, each acked by its own write", async () => {
    const { store, runtime, turn } = setup();
    const a = tracked(runtime.ingest([ev("k1", "a")]));
    await turn();
    expect(store.inFlight.length).toBe(1);

    const b = tracked(runtime.ingest([ev("k2", "b")]));
    const c = tracked(runtime.ingest([ev("k3", "c"), ev("k1", "d")]));
    await turn();
    // Applied at once (a read sees them) but not acked, and no second write while the first runs.
    expect(store.inFlight.length).toBe(1);
    expect([a.done, b.done, c.done]).toEqual([false, false, false]);

    store.inFlight[0]!.end(true);
    await turn();
    expect(a.done && !a.failed).toBe(true);
    expect([b.done, c.done]).toEqual([false, false]);
    expect(store.inFlight.length).toBe(1);
    expect(store.journalRowsOf(store.inFlight[0]!.puts)).toBe(1); // b and c as one journal row

    store.inFlight[0]!.end(true);
    await turn();
    expect(b.value).toEqual([{ status: "accepted" }]);
    expect(c.value).toEqual([{ status: "accepted" }, { status: "accepted" }]);
    expect(runtime.stats.commits).toBe(2);
    expect((await runtime.state("k1"))?.totals.events).toBe(2);
  });

  test("a read of a key whose write is in flight waits for it, and never shows what then failed", async () => {
    const { store, runtime, turn } = setup();
    const first = tracked(runtime.ingest([ev("k1", "a")]));
    await turn();
    store.inFlight[0]!.end(true);
    await turn();
    expect(first.done).toBe(true);

    const b = tracked(runtime.ingest([ev("k1", "b")]));
    await turn();
    const read = tracked(runtime.state("k1"));
    await turn();
    expect(read.done).toBe(false);
    store.inFlight[0]!.end(false);
    await turn();
    expect(b.failed).toBeInstanceOf(StorageError);
    await turn();
    expect(read.done).toBe(true);
    expect(read.value?.totals.events).toBe(1);
  });

  test("a failed write fails what gathered behind it too: nothing half-applied, retries are new", async () => {
    const { store, runtime, turn } = setup();
    const first = tracked(runtime.ingest([ev("k1", "a")]));
    await turn();
    store.inFlight[0]!.end(true);
    await turn();
    expect(first.value).toEqual([{ status: "accepted" }]);
    const before = await runtime.state("k1");

    const b = tracked(runtime.ingest([ev("k1", "b")]));
    await turn();
    const c = tracked(runtime.ingest([ev("k2", "c"), ev("k1", "d")]));
    await turn();
    store.inFlight[0]!.end(false);
    await turn();
    expect(b.failed).toBeInstanceOf(StorageError);
    expect(c.failed).toBeInstanceOf(StorageError);
    expect(store.inFlight.length).toBe(0);

    expect(await runtime.state("k1")).toEqual(before);
    expect(await runtime.state("k2")).toBeNull();
    const retry = tracked(runtime.ingest([ev("k1", "b"), ev("k1", "d"), ev("k2", "c")]));
    await turn();
    store.inFlight[0]!.end(true);
    await turn();
    expect(retry.value).toEqual([{ status: "accepted" }, { status: "accepted" }, { status: "accepted" }]);
    // k2 is counted once, by the commit that made it durable.
    expect(runtime.usage.get("default").keys).toBe(2);
  });

  test("close waits for the write in flight, then checkpoints everything: no journal left", async () => {
    const { store, runtime, turn } = setup();
    const a = tracked(runtime.ingest([ev("k1", "a")]));
    await turn();
    const closed = tracked(runtime.close());
    await turn();
    expect(closed.done).toBe(false);
    store.inFlight[0]!.end(true);
    await turn();
    expect(a.done && !a.failed).toBe(true);
    expect(closed.done).toBe(false); // the last checkpoint is being written
    store.inFlight[0]!.end(true);
    await turn();
    expect(closed.done && !closed.failed).toBe(true);
    expect(store.list("j/")).toEqual([]);
    expect(store.list("").length).toBeGreaterThan(0);
  });

  test("a sink and a live view see only what a durable write covered, not what gathered behind it", async () => {
    const fake = fakeEnv(T0 + 30_000);
    const store = new ManualAsyncStore();
    const sink = { name: "s", deliver: () => new Promise<void>(() => {}) }; // holds what it is given
    const runtime = new ProcessHost({ store, config: { ...DEFAULT_CONFIG, sinks: ["s"] }, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [sink] });
    const turn = async () => {
      fake.timers.advance(0);
      await Bun.sleep(0);
    };
    const ids = () => runtime.peek("k1")!.outbox.pending("s", 10).map((r) => (r.kind === "event" ? r.id : r.kind));

    const a = tracked(runtime.ingest([ev("k1", "a")]));
    await turn();
    const published: number[] = [];
    let next = 0;
    runtime.peek("k1")!.live = { position: () => next, publish: (before?: number) => void published.push(before ?? -1), push: () => void next++, discard: () => {} };
    const b = tracked(runtime.ingest([ev("k1", "b")])); // applied while a's write is in flight
    await turn();
    expect(ids()).toEqual([]);

    store.inFlight[0]!.end(true);
    await turn();
    expect(a.done && !b.done).toBe(true);
    expect(ids()).toEqual(["a"]); // not b: its write has not ended
    expect(published).toEqual([]); // the view came after a's write was planned

    store.inFlight[0]!.end(true);
    await turn();
    expect(ids()).toEqual(["a", "b"]);
    expect(published).toEqual([next]);
  });
});

import { MemoryKvStore, type KvStore } from "../ports/kv-store.ts";
import { assert } from "../ports/assert.ts";
import type { SimContext } from "./context.ts";

export class SimStorageError extends Error {
  override name = "SimStorageError";
}

/** A host's storage (a Durable Object's own, or the process's one store): it survives crashes; a write may fail (fault), atomically. */
export class SimStore implements KvStore {
  readonly inner = new MemoryKvStore();
  writes = 0;

  constructor(private readonly ctx: SimContext) {}

  list(prefix: string): Array<[string, string]> {
    return this.inner.list(prefix);
  }

  get(key: string): string | undefined {
    return this.inner.get(key);
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    const { ctx } = this;
    if (ctx.faultsOn && ctx.prng.chance(ctx.plan.storageFail)) {
      ctx.counters.fault("storage_fail");
      throw new SimStorageError("simulated storage failure: transaction aborted");
    }
    this.writes++;
    this.inner.write(puts, deletes);
  }

  close(): void {}
}

/**
 * The Bun server's store, whose writes run off the event loop (its SQLite writer thread): a write
 * ends a little later, in virtual time, while the host keeps applying commands. A crash with a write
 * in flight settles it either way (it reached the disk or it did not); no one hears of it.
 */
export class OffLoopSimStore extends SimStore {
  private inFlight: { puts: Array<[string, string]>; deletes: string[]; settled: boolean } | undefined;

  constructor(private readonly sim: SimContext) {
    super(sim);
  }

  writeAsync(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): Promise<void> {
    const { sim } = this;
    assert(this.inFlight === undefined, "one off-loop write at a time");
    const write = { puts: puts.map(([k, v]): [string, string] => [k, v]), deletes: [...deletes], settled: false };
    this.inFlight = write;
    sim.counters.path("commit_off_loop");
    return new Promise((resolve, reject) => {
      sim.sched.after(sim.prng.int(4), "fsync", "", () => {
        if (write.settled) return; // the process died first
        write.settled = true;
        this.inFlight = undefined;
        try {
          this.write(write.puts, write.deletes);
          resolve();
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /** The process died: its write in flight landed, or not (returns whether it did). */
  crashed(): boolean {
    const write = this.inFlight;
    if (!write) return false;
    write.settled = true;
    this.inFlight = undefined;
    if (!this.sim.prng.chance(0.5)) return false;
    this.writes++;
    this.inner.write(write.puts, write.deletes);
    return true;
  }
}

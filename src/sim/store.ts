import { MemoryKvStore, type KvStore } from "../ports/kv-store.ts";
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

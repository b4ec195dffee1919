import { decodeKey, PROCESS_ROW } from "../../actor/layout.ts";
import { splitActorName } from "../../actor/tenant.ts";
import { QuotaError } from "../../http/gateway.ts";
import type { KvStore } from "../../ports/kv-store.ts";
import { limitFor, type TenantLimit } from "../../settings/config.ts";

/** What a tenant has: keys (actors that took an event) and the bytes of their own rows as checkpointed. */
export interface Usage {
  keys: number;
  bytes: number;
}

/** One commit's changes to usage, applied to memory only once the store took it. */
export interface UsagePlan {
  rows: Array<[string, string]>;
  apply(): void;
}

const rowSize = (name: string, value: string) => name.length + value.length;

/** Row names and their sizes, alternating. */
type RowSizes = Array<string | number>;

/**
 * Keys and stored bytes per tenant for the process host's quotas. The counts live in rows
 * (`u/<tenant>`) written in the same transaction as what changed them: a new key with the journal row
 * of its first events, bytes with the checkpoint that wrote the rows. So they are exactly what is
 * durable, across crashes, without a scan at start. Bytes are counted from each loaded actor's
 * rows (name + value, in UTF-16 code units), so they follow checkpoints: at most a checkpoint
 * interval behind what is journaled.
 */
export class TenantUsage {
  private readonly committed = new Map<string, Usage>();
  /**
   * Loaded actors: the size of each of their rows as stored, as flat [name, size, ...] pairs (an actor
   * has a few rows; a Map of them would cost ~250 bytes more per actor in memory, issue 14).
   */
  private readonly rowBytes = new Map<string, RowSizes>();
  /** Keys created since the last commit, per tenant (refused requests never get here). */
  private created = new Map<string, number>();
  /** Counted at start from a store without usage rows: the next commit writes them all. */
  private unsaved = false;

  /** Whether any tenant has a quota (without one, admission only counts new keys). */
  private readonly limited: boolean;

  constructor(
    private readonly maxKeys: TenantLimit,
    private readonly maxBytes: TenantLimit,
  ) {
    this.limited = [maxKeys, maxBytes].some((l) => l.all !== undefined || l.byTenant.size > 0);
  }

  /** Reads the usage rows; a store from before them is counted once, from its progress and actor rows. */
  recover(store: KvStore, journaledKeys: Iterable<string>): void {
    if (store.get(PROCESS_ROW.usageVersion) !== undefined) {
      for (const [row, text] of store.list(PROCESS_ROW.usagePrefix)) {
        this.committed.set(row.slice(PROCESS_ROW.usagePrefix.length), JSON.parse(text) as Usage);
      }
      return;
    }
    const keys = new Set<string>(journaledKeys);
    for (const [row] of store.list(PROCESS_ROW.progressPrefix)) keys.add(decodeKey(row.slice(PROCESS_ROW.progressPrefix.length)));
    for (const key of keys) this.usage(splitActorName(key).tenant).keys++;
    for (const [row, value] of store.list(PROCESS_ROW.actorsPrefix)) {
      const segment = row.slice(PROCESS_ROW.actorsPrefix.length, row.indexOf("/", PROCESS_ROW.actorsPrefix.length));
      this.usage(splitActorName(decodeKey(segment)).tenant).bytes += rowSize(row, value);
    }
    this.unsaved = true;
  }

  get(tenant: string): Usage {
    const usage = this.committed.get(tenant) ?? { keys: 0, bytes: 0 };
    return { keys: usage.keys + (this.created.get(tenant) ?? 0), bytes: usage.bytes };
  }

  /**
   * Admits a request for these actors (`isNew`: its first events would create the key); throws
   * QuotaError, before anything is applied, when a tenant is at a quota. Then counts the new keys.
   */
  admit(actors: ReadonlyArray<{ key: string; isNew: boolean }>): void {
    if (this.limited) this.check(actors);
    for (const actor of actors) {
      if (!actor.isNew) continue;
      const { tenant } = splitActorName(actor.key);
      this.created.set(tenant, (this.created.get(tenant) ?? 0) + 1);
    }
  }

  private check(actors: ReadonlyArray<{ key: string; isNew: boolean }>): void {
    const newKeys = new Map<string, number>();
    for (const actor of actors) {
      const { tenant } = splitActorName(actor.key);
      newKeys.set(tenant, (newKeys.get(tenant) ?? 0) + (actor.isNew ? 1 : 0));
    }
    for (const [tenant, adding] of newKeys) {
      const used = this.get(tenant);
      const maxBytes = limitFor(this.maxBytes, tenant);
      if (used.bytes >= maxBytes) throw new QuotaError("bytes", maxBytes, used.bytes);
      const maxKeys = limitFor(this.maxKeys, tenant);
      if (adding && used.keys + adding > maxKeys) throw new QuotaError("keys", maxKeys, used.keys);
    }
  }

  /** The commands that created the keys counted since the last plan() failed: they never existed. */
  discardCreated(): void {
    this.created = new Map();
  }

  /** An actor was loaded from these rows (relative to `prefix`). */
  loaded(key: string, prefix: string, rows: Iterable<[string, string]>): void {
    const sizes: RowSizes = [];
    for (const [name, value] of rows) sizes.push(name, rowSize(prefix + name, value));
    this.rowBytes.set(key, sizes);
  }

  /** An actor left memory (evicted, or dropped after a failed commit). */
  forget(key: string): void {
    this.rowBytes.delete(key);
  }

  /**
   * The usage rows of a commit that checkpoints these actors' writes (relative names) and journals
   * this turn's new keys; `apply()` once the store took them.
   */
  plan(checkpoints: Array<{ key: string; prefix: string; puts: Array<[string, string]>; deletes: string[] }>): UsagePlan {
    const bytes = new Map<string, number>();
    const sizes: Array<[string, RowSizes]> = [];
    for (const { key, prefix, puts, deletes } of checkpoints) {
      const after = new Map<string, number>();
      const before = this.rowBytes.get(key) ?? [];
      for (let i = 0; i < before.length; i += 2) after.set(before[i] as string, before[i + 1] as number);
      let delta = 0;
      for (const [name, value] of puts) {
        const size = rowSize(prefix + name, value);
        delta += size - (after.get(name) ?? 0);
        after.set(name, size);
      }
      for (const name of deletes) {
        delta -= after.get(name) ?? 0;
        after.delete(name);
      }
      sizes.push([key, [...after].flat()]);
      if (delta) {
        const tenant = splitActorName(key).tenant;
        bytes.set(tenant, (bytes.get(tenant) ?? 0) + delta);
      }
    }
    const created = this.created;
    const unsaved = this.unsaved;
    const changed = new Set([...created.keys(), ...bytes.keys(), ...(unsaved ? this.committed.keys() : [])]);
    const next = new Map<string, Usage>();
    for (const tenant of changed) {
      const usage = this.committed.get(tenant) ?? { keys: 0, bytes: 0 };
      next.set(tenant, { keys: usage.keys + (created.get(tenant) ?? 0), bytes: usage.bytes + (bytes.get(tenant) ?? 0) });
    }
    this.created = new Map();
    const rows: Array<[string, string]> = [...next].map(([tenant, usage]) => [PROCESS_ROW.usage(tenant), JSON.stringify(usage)]);
    if (unsaved) rows.push([PROCESS_ROW.usageVersion, "1"]);
    return {
      rows,
      apply: () => {
        if (unsaved) this.unsaved = false;
        for (const [tenant, usage] of next) this.committed.set(tenant, usage);
        for (const [key, s] of sizes) if (this.rowBytes.has(key)) this.rowBytes.set(key, s);
      },
    };
  }

  private usage(tenant: string): Usage {
    let usage = this.committed.get(tenant);
    if (!usage) this.committed.set(tenant, (usage = { keys: 0, bytes: 0 }));
    return usage;
  }
}

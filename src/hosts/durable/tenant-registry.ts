import { encodeKey } from "../../actor/layout.ts";
import type { KvStore } from "../../ports/kv-store.ts";

/** What a key's actor asks its tenant's registry, with the tenant's limits (Infinity: none). */
export interface TenantLimits {
  maxKeys: number;
  maxBytes: number;
}

export type Admission = { ok: true } | { ok: false; quota: "keys" | "bytes"; limit: number; used: number };

const ROW = {
  /** The tenant's totals, rewritten with every change: { keys, bytes }. */
  totals: "totals",
  /** A key of the tenant, with the bytes its actor last reported. */
  key: (name: string) => `k/${encodeKey(name)}`,
} as const;

/**
 * A tenant's keys and stored bytes on Workers, where each key is its own Durable Object: one
 * registry object per tenant (actors/tenant-registry.ts) that a key's actor asks once, before its
 * first event, and tells its database size as it grows. Plain logic over the object's storage, so
 * it runs anywhere; every call is idempotent (a key admitted twice counts once; a report replaces
 * the key's last one).
 */
export class TenantRegistry {
  private totals: { keys: number; bytes: number };

  constructor(private readonly store: KvStore) {
    const row = store.get(ROW.totals);
    this.totals = row ? (JSON.parse(row) as { keys: number; bytes: number }) : { keys: 0, bytes: 0 };
  }

  /** Lets a new key in unless the tenant is at its quota of keys or bytes. */
  admit(name: string, limits: TenantLimits): Admission {
    if (this.totals.bytes >= limits.maxBytes) return { ok: false, quota: "bytes", limit: limits.maxBytes, used: this.totals.bytes };
    if (this.store.get(ROW.key(name)) !== undefined) return { ok: true };
    if (this.totals.keys >= limits.maxKeys) return { ok: false, quota: "keys", limit: limits.maxKeys, used: this.totals.keys };
    const totals = { keys: this.totals.keys + 1, bytes: this.totals.bytes };
    this.store.write([[ROW.key(name), "0"], [ROW.totals, JSON.stringify(totals)]], []);
    this.totals = totals;
    return { ok: true };
  }

  /** A key's actor now stores `bytes`; answers whether the tenant is at its quota of bytes. */
  report(name: string, bytes: number, limits: TenantLimits): Admission {
    const before = Number(this.store.get(ROW.key(name)) ?? 0);
    if (bytes !== before) {
      const totals = { keys: this.totals.keys, bytes: this.totals.bytes + bytes - before };
      this.store.write([[ROW.key(name), String(bytes)], [ROW.totals, JSON.stringify(totals)]], []);
      this.totals = totals;
    }
    if (this.totals.bytes >= limits.maxBytes) return { ok: false, quota: "bytes", limit: limits.maxBytes, used: this.totals.bytes };
    return { ok: true };
  }
}

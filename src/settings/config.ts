import { DEFAULT_ACTOR_CONFIG, type ActorConfig } from "../actor/config.ts";
import { DEFAULT_DELIVERY_POLICY, type DeliveryPolicy } from "../delivery/policy.ts";

/** Everything the KEYFLOW_* variables set for actors, their hosts and the HTTP layer. */
export interface Config extends ActorConfig {
  maxBatchEvents: number;
  maxBodyBytes: number;
  maxActorsInMemory: number;
  /**
   * Self-hosted: how long an actor's changes may live only in the commit journal before they are
   * checkpointed into its own rows. Longer means fewer writes under load and a longer replay on restart.
   */
  checkpointIntervalMs: number;
  /**
   * How long an idle sink lingers before sending a batch that is not full, so that a burst goes out
   * together. A busy sink sends the next batch as soon as the last one lands.
   */
  sinkMaxDelayMs: number;
  delivery: DeliveryPolicy;
  /** GET /ready answers 503 once a sink has been down (breaker open) for this long. */
  readySinkDownAfterMs: number;
  /** Quotas: how many keys (actors) a tenant may have, and how many bytes their stored rows may take. */
  tenantMaxKeys: TenantLimit;
  tenantMaxBytes: TenantLimit;
  /** Live views: items retained per watched key for clients that reconnect with Last-Event-ID. */
  liveRetain: number;
  /** Live views: messages a client may leave unread before its stream is ended. */
  liveMaxQueued: number;
  /** Live views: open streams per tenant (per isolate on Workers). */
  liveMaxStreams: number;
}

/** A per-tenant limit: one for every tenant (`all`), and some tenants' own; none set means no limit. */
export interface TenantLimit {
  all?: number;
  byTenant: ReadonlyMap<string, number>;
}

export const NO_LIMIT: TenantLimit = { byTenant: new Map() };

export function limitFor(limit: TenantLimit, tenant: string): number {
  return limit.byTenant.get(tenant) ?? limit.all ?? Infinity;
}

export const DEFAULT_CONFIG: Config = {
  ...DEFAULT_ACTOR_CONFIG,
  maxBatchEvents: 10_000,
  maxBodyBytes: 5 * 1024 * 1024,
  maxActorsInMemory: 10_000,
  checkpointIntervalMs: 1_000,
  sinkMaxDelayMs: 5,
  delivery: DEFAULT_DELIVERY_POLICY,
  readySinkDownAfterMs: 60_000,
  tenantMaxKeys: NO_LIMIT,
  tenantMaxBytes: NO_LIMIT,
  liveRetain: 1_000,
  liveMaxQueued: 1_000,
  liveMaxStreams: 100,
};

/** A bad setting; `problems` names each variable and what is wrong with it. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

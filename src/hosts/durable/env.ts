/** Bindings and vars of the keyflow Worker (see wrangler.toml). */
export interface WorkerEnv {
  /** The KeyActor Durable Objects (actors/key-actor.ts); the gateway calls them through ActorNamespace. */
  ACTORS: DurableObjectNamespace;
  /** One TenantRegistry per tenant (actors/tenant-registry.ts): keys and stored bytes, for quotas. */
  TENANTS?: DurableObjectNamespace;
  /** The one MetricsHub (actors/metrics-hub.ts) that isolates and keys report to: GET /metrics and /ready. */
  METRICS?: DurableObjectNamespace;
  /** Optional Workers Analytics Engine dataset: one data point per HTTP request (sampled there). */
  KEYFLOW_ANALYTICS?: AnalyticsEngineDataset;
  [variable: string]: unknown;
}

/** The string vars of the environment (KEYFLOW_* settings), without the bindings. */
export function stringVars(env: WorkerEnv): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") vars[name] = value;
  return vars;
}

/**
 * Bindings and vars of the keyflow Worker. `Env` is generated from wrangler.toml by `npm run types`
 * (`wrangler types`, into worker-configuration.d.ts; tests/e2e/wrangler-types.test.ts fails when it
 * is out of date). Added here: the bindings wrangler.toml documents as optional (commented out
 * there, so absent from `Env`), and the other KEYFLOW_* vars a deployment may set (`wrangler secret`,
 * the dashboard), which are read through stringVars. TENANTS and METRICS may be removed from
 * wrangler.toml too: the code checks for them.
 */
export type WorkerEnv = Env & {
  /** Optional Workers Analytics Engine dataset: one data point per HTTP request (sampled there). */
  KEYFLOW_ANALYTICS?: AnalyticsEngineDataset;
  /** Optional [[ratelimits]] binding: a coarse per-API-key pre-filter. */
  KEYFLOW_RATE_LIMITER?: RateLimit;
  [variable: string]: unknown;
};

/** The string vars of the environment (KEYFLOW_* settings), without the bindings. */
export function stringVars(env: WorkerEnv): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") vars[name] = value;
  return vars;
}

import { DurableGateway, type ActorNamespace } from "../hosts/durable/gateway.ts";
import { stringVars, type WorkerEnv } from "../hosts/durable/env.ts";
import { createApp } from "../http/app.ts";
import { errorBody } from "../http/errors.ts";
import { systemEnv, systemTimers } from "../ports/system.ts";
import { ConfigError } from "../settings/config.ts";
import { readSettings } from "../settings/env.ts";
import { nativeOnlyProblems } from "../sinks/index.ts";
import { accessFor, type PlatformLimit } from "../http/access.ts";
import { lazySentry } from "../reporting/reporter.ts";
import { VERSION } from "../version.ts";
import { HUB_NAME, IsolateMetrics, metricsSettings, type MetricsHubStub } from "../hosts/durable/metrics-reporter.ts";
import { uuidv7 } from "../ports/uuid.ts";
import { Logger } from "../logging/logger.ts";
import { CONFIG_FILE } from "../../actors/config-file.ts";

export { KeyActor } from "../../actors/key-actor.ts";
export { TenantRegistry } from "../../actors/tenant-registry.ts";
export { MetricsHub } from "../../actors/metrics-hub.ts";

let app: ReturnType<typeof createApp> | undefined;
let metrics: IsolateMetrics | undefined;

/** This isolate's metrics, reported to the METRICS hub, unless KEYFLOW_METRICS=off or wrangler.toml binds no hub. */
function isolateMetrics(env: WorkerEnv): IsolateMetrics | undefined {
  const settings = metricsSettings(stringVars(env));
  const hub = env.METRICS;
  if (!settings.on || !hub) return undefined;
  const epoch = uuidv7(systemEnv);
  return new IsolateMetrics({
    id: `isolate-${epoch}`,
    epoch,
    intervalMs: settings.intervalMs,
    clock: systemEnv.clock,
    timers: systemTimers,
    hub: () => hub.getByName(HUB_NAME) as unknown as MetricsHubStub,
    ...(env.KEYFLOW_ANALYTICS ? { analytics: env.KEYFLOW_ANALYTICS } : {}),
  });
}

/** The [[ratelimits]] binding KEYFLOW_RATE_LIMITER, if wrangler.toml declares one: a coarse per-key pre-filter. */
function platformLimit(env: WorkerEnv): PlatformLimit | undefined {
  const binding = env.KEYFLOW_RATE_LIMITER;
  if (!binding || typeof binding.limit !== "function") return undefined;
  return async (keyId) => (await binding.limit({ key: keyId })).success;
}

/** The Worker: the shared Hono app, with each key's actor in its own Durable Object. */
export default {
  fetch(request, env, ctx) {
    try {
      if (!app) {
        const settings = readSettings(stringVars(env), CONFIG_FILE);
        // redis://, KEYFLOW_KAFKA_BROKERS, KEYFLOW_POSTGRES_CLIENT=native: the self-hosted server's clients.
        const nativeOnly = nativeOnlyProblems(settings.sinks);
        if (nativeOnly.length) throw new ConfigError(nativeOnly);
        const m = (metrics = isolateMetrics(env));
        app = createApp({
          // RPC stubs type their results as RPC promises; the calls are the ActorStub methods.
          backend: new DurableGateway(env.ACTORS as unknown as ActorNamespace, m && (() => m.sinkStatus()), m && ((usage) => m.countUsage("key", usage))),
          ...(m ? { metrics: m.metrics, scrape: () => m.scrape() } : {}),
          config: settings.config,
          env: systemEnv,
          host: "workers",
          // Without keys a Worker is closed, except to requests made on this machine (wrangler dev).
          access: accessFor(settings.auth, false, undefined, platformLimit(env)),
          // Request lines go to Workers Logs ([observability]), which indexes JSON lines' fields.
          logger: new Logger(settings.logLevel, (line) => console.log(line), () => systemEnv.clock.now()),
          ...(settings.sentryDsn ? { reportError: lazySentry(settings.sentryDsn, "workers", VERSION) } : {}),
        });
      }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return Response.json({ error: errorBody("misconfigured", error.message, error.problems) }, { status: 500 });
    }
    const response = app.fetch(request, env, ctx);
    metrics?.afterRequest((promise) => ctx.waitUntil(promise));
    return response;
  },
} satisfies ExportedHandler<WorkerEnv>;

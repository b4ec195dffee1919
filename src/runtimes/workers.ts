import { DurableGateway, type ActorNamespace } from "../hosts/durable/gateway.ts";
import { stringVars, type WorkerEnv } from "../hosts/durable/env.ts";
import { createApp } from "../http/app.ts";
import { errorBody } from "../http/errors.ts";
import { systemEnv } from "../ports/system.ts";
import { ConfigError } from "../settings/config.ts";
import { readSettings } from "../settings/env.ts";
import { accessFor, type PlatformLimit } from "../http/access.ts";
import { lazySentry } from "../reporting/reporter.ts";
import { VERSION } from "../version.ts";

export { KeyActor } from "../../actors/key-actor.ts";
export { TenantRegistry } from "../../actors/tenant-registry.ts";

let app: ReturnType<typeof createApp> | undefined;

/** The [[ratelimits]] binding KEYFLOW_RATE_LIMITER, if wrangler.toml declares one: a coarse per-key pre-filter. */
function platformLimit(env: WorkerEnv): PlatformLimit | undefined {
  const binding = env.KEYFLOW_RATE_LIMITER as RateLimit | undefined;
  if (!binding || typeof binding.limit !== "function") return undefined;
  return async (keyId) => (await binding.limit({ key: keyId })).success;
}

/** The Worker: the shared Hono app, with each key's actor in its own Durable Object. */
export default {
  fetch(request, env, ctx) {
    try {
      if (!app) {
        const settings = readSettings(stringVars(env));
        app = createApp({
          // RPC stubs type their results as RPC promises; the calls are the ActorStub methods.
          backend: new DurableGateway(env.ACTORS as unknown as ActorNamespace),
          config: settings.config,
          env: systemEnv,
          host: "workers",
          // Without keys a Worker is closed, except to requests made on this machine (wrangler dev).
          access: accessFor(settings.auth, false, undefined, platformLimit(env)),
          ...(settings.sentryDsn ? { reportError: lazySentry(settings.sentryDsn, "workers", VERSION) } : {}),
        });
      }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return Response.json({ error: errorBody("misconfigured", error.message, error.problems) }, { status: 500 });
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<WorkerEnv>;

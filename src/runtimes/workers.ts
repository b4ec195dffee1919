import type { Hono } from "hono";
import { createApp } from "../http/app.ts";
import { configFromEnv, ConfigError } from "../actor/config.ts";
import { errorBody } from "../http/errors.ts";
import { systemEnv } from "../ports/system.ts";
import { DurableObjectBackend } from "../hosts/durable/gateway.ts";
import { stringVars, type WorkerEnv } from "../hosts/durable/env.ts";

export { KeyActor } from "../../actors/key-actor.ts";

let app: Hono | undefined;

/** The Worker: the shared Hono app, with each key's actor in its own Durable Object. */
export default {
  fetch(request, env, ctx) {
    try {
      app ??= createApp({
        backend: new DurableObjectBackend(env.ACTORS),
        config: configFromEnv(stringVars(env)),
        env: systemEnv,
        host: "workers",
      });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return Response.json({ error: errorBody("misconfigured", error.message, error.problems) }, { status: 500 });
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<WorkerEnv>;

import type { KeyActor } from "../../../actors/key-actor.ts";

/** Bindings and vars of the keyflow Worker (see wrangler.toml). */
export interface WorkerEnv {
  ACTORS: DurableObjectNamespace<KeyActor>;
  [variable: string]: unknown;
}

/** The string vars of the environment (KEYFLOW_* settings), without the bindings. */
export function stringVars(env: WorkerEnv): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") vars[name] = value;
  return vars;
}

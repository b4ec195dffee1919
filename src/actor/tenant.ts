import { assert } from "../ports/assert.ts";

/**
 * Tenants. Every actor belongs to one; the tenant comes from the API key that sent its events,
 * never from a request body. An actor's name joins its tenant and its key, and the name is what
 * every host keys on: storage rows, Durable Object names, dedupe, windows, outbox and dead letters
 * are per name, so the same key in two tenants is two actors that know nothing of each other.
 */

/** The tenant of an open server (KEYFLOW_AUTH=off or loopback without keys) and of keys configured without one. */
export const DEFAULT_TENANT = "default";

/** A tenant name: usable as it is in a Kafka topic, a Redis key, a Postgres value and a log line. */
export const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Separates tenant from key in an actor name. Keys never hold control characters (validation
 * refuses them), so the name splits one way only. The default tenant's actors are named by their
 * key alone: the actors of a keyflow from before tenants are the default tenant's, rows unchanged.
 */
const SEPARATOR = "\x1f";

export function actorName(tenant: string, key: string): string {
  return tenant === DEFAULT_TENANT ? key : `${tenant}${SEPARATOR}${key}`;
}

export interface TenantKey {
  tenant: string;
  key: string;
}

export function splitActorName(name: string): TenantKey {
  const at = name.indexOf(SEPARATOR);
  if (at < 0) return { tenant: DEFAULT_TENANT, key: name };
  const tenant = name.slice(0, at);
  assert(TENANT_NAME.test(tenant) && tenant !== DEFAULT_TENANT, "an actor name holds a valid tenant");
  return { tenant, key: name.slice(at + 1) };
}

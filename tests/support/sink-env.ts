import { PG_URL, WSPROXY } from "./postgres.ts";

/** The Upstash-REST front that scripts/services.sh runs in front of Redis. */
export const REDIS_FRONT = { url: "http://127.0.0.1:8079", token: "keyflow-local-token" };

/**
 * Environment that wires a host to every local sink service, with names of its own: Redis keys
 * under `${run}:`, Kafka topics `${run}.events` and `${run}.windows`.
 */
export function localSinkEnv(run: string): Record<string, string> {
  return {
    KEYFLOW_REDIS_URL: REDIS_FRONT.url,
    KEYFLOW_REDIS_TOKEN: REDIS_FRONT.token,
    KEYFLOW_REDIS_PREFIX: `${run}:`,
    KEYFLOW_POSTGRES_URL: PG_URL,
    KEYFLOW_NEON_WSPROXY: WSPROXY,
    KEYFLOW_KAFKA_REST_URL: "http://127.0.0.1:8082",
    KEYFLOW_KAFKA_TOPIC: `${run}.events`,
    KEYFLOW_KAFKA_WINDOWS_TOPIC: `${run}.windows`,
  };
}

import { KAFKA_BROKERS } from "./kafka.ts";
import { PG_URL, WSPROXY } from "./postgres.ts";

/** The Upstash-REST front that scripts/services.sh runs in front of Redis. */
export const REDIS_FRONT = { url: "http://127.0.0.1:8079", token: "keyflow-local-token" };
/** The Redis of scripts/services.sh, reached natively (ioredis). */
export const REDIS_URL = "redis://127.0.0.1:6379";

/**
 * How the sinks reach Redis and Postgres: "http" through today's HTTP clients and the local fronts
 * (the Upstash-REST front, the Neon WebSocket proxy, the Kafka REST front), "native" straight to the
 * servers (ioredis, postgres.js, kafkajs's transactional producer), as the self-hosted server does
 * with redis:// and postgres:// URLs and KEYFLOW_KAFKA_BROKERS.
 */
export type ClientKind = "http" | "native";
export const CLIENT_KINDS: readonly ClientKind[] = ["http", "native"];

/**
 * Environment that wires a host to every local sink service, with names of its own: Redis keys
 * under `${run}:`, Kafka topics `${run}.events` and `${run}.windows` (and `${run}.progress`, native).
 */
export function localSinkEnv(run: string, kind: ClientKind = "http"): Record<string, string> {
  const reach: Record<string, string> =
    kind === "native"
      ? {
          KEYFLOW_REDIS_URL: REDIS_URL,
          KEYFLOW_POSTGRES_URL: PG_URL,
          KEYFLOW_POSTGRES_CLIENT: "native",
          KEYFLOW_KAFKA_BROKERS: KAFKA_BROKERS.join(","),
          KEYFLOW_KAFKA_PROGRESS_TOPIC: `${run}.progress`,
        }
      : {
          KEYFLOW_REDIS_URL: REDIS_FRONT.url,
          KEYFLOW_REDIS_TOKEN: REDIS_FRONT.token,
          KEYFLOW_POSTGRES_URL: PG_URL,
          KEYFLOW_NEON_WSPROXY: WSPROXY,
          KEYFLOW_KAFKA_REST_URL: "http://127.0.0.1:8082",
        };
  return {
    ...reach,
    KEYFLOW_REDIS_PREFIX: `${run}:`,
    KEYFLOW_KAFKA_TOPIC: `${run}.events`,
    KEYFLOW_KAFKA_WINDOWS_TOPIC: `${run}.windows`,
  };
}

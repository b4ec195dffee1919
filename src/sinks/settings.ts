import { z } from "zod";
import { ConfigError } from "../actor/config.ts";
import type { Sink } from "../delivery/channel.ts";
import { parseDuration } from "../actor/duration.ts";
import { KafkaSink, type KafkaSinkOptions } from "./kafka/sink.ts";
import { PostgresSink, type PostgresSinkOptions } from "./postgres/sink.ts";
import { RedisSink, type RedisSinkOptions } from "./redis/sink.ts";
import { WebhookSink, type WebhookSinkOptions } from "./webhook/sink.ts";

export interface SinkSettings {
  redis?: RedisSinkOptions;
  postgres?: Omit<PostgresSinkOptions, "poolPerDelivery">;
  kafka?: KafkaSinkOptions;
  webhook?: WebhookSinkOptions;
}

type Env = Record<string, string | undefined>;

const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
const postgresUrl = z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// URL" });

/**
 * Reads the sink variables; a sink is on when its URL is set. Every problem (a bad URL, a missing
 * token) is reported at start, naming the variable, in one ConfigError.
 */
export function sinkSettings(env: Env): SinkSettings {
  const problems: string[] = [];
  const get = (...names: string[]) => {
    for (const name of names) if (env[name]) return { name, value: env[name]! };
    return undefined;
  };
  const check = <T>(schema: z.ZodType<T>, name: string, value: string): T | undefined => {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    problems.push(`${name}=${JSON.stringify(value)}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
    return undefined;
  };
  const required = (what: string, ...names: string[]) => {
    const found = get(...names);
    if (!found) problems.push(`${names.join(" or ")} is required when ${what} is set`);
    return found?.value;
  };
  const duration = (name: string, fallback: string) => {
    const text = env[name] || fallback;
    const ms = parseDuration(text);
    if (ms === undefined) problems.push(`${name}=${JSON.stringify(text)}: not a duration like 500ms, 10s, 1m`);
    return ms ?? 0;
  };
  const whole = (name: string, fallback: number) => {
    const text = env[name];
    if (!text) return fallback;
    if (!/^\d+$/.test(text)) problems.push(`${name}=${JSON.stringify(text)}: must be a whole number`);
    return Number(text);
  };
  const timeoutMs = duration("KEYFLOW_SINK_TIMEOUT", "10s");
  const settings: SinkSettings = {};

  const redisUrl = get("KEYFLOW_REDIS_URL", "UPSTASH_REDIS_REST_URL");
  if (redisUrl) {
    const url = check(httpUrl, redisUrl.name, redisUrl.value);
    const token = required(redisUrl.name, "KEYFLOW_REDIS_TOKEN", "UPSTASH_REDIS_REST_TOKEN");
    const ttl = duration("KEYFLOW_REDIS_TTL", "7d");
    if (url && token) {
      settings.redis = {
        url,
        token,
        prefix: env.KEYFLOW_REDIS_PREFIX ?? "kf:",
        ttlSeconds: Math.round(ttl / 1000),
        streamMaxLen: whole("KEYFLOW_REDIS_STREAM_MAXLEN", 10_000),
      };
    }
  }

  const pgUrl = get("KEYFLOW_POSTGRES_URL", "DATABASE_URL");
  if (pgUrl) {
    const url = check(postgresUrl, pgUrl.name, pgUrl.value);
    const wsProxy = env.KEYFLOW_NEON_WSPROXY;
    if (wsProxy && !/^[^\s/:]+(:\d+)?(\/\S*)?$/.test(wsProxy)) {
      problems.push(`KEYFLOW_NEON_WSPROXY=${JSON.stringify(wsProxy)}: must be host[:port][/path], e.g. 127.0.0.1:6543/v1`);
    }
    if (url) settings.postgres = { url, wsProxy: wsProxy || undefined, wsProxyTls: env.KEYFLOW_NEON_WSPROXY_TLS === "true" };
  }

  const kafkaUrl = get("KEYFLOW_KAFKA_REST_URL", "UPSTASH_KAFKA_REST_URL");
  if (kafkaUrl) {
    const url = check(httpUrl, kafkaUrl.name, kafkaUrl.value);
    const dialect = check(
      z.enum(["v2", "v3", "upstash"], { error: 'must be "v2", "v3" or "upstash"' }),
      "KEYFLOW_KAFKA_DIALECT",
      env.KEYFLOW_KAFKA_DIALECT || (kafkaUrl.name === "UPSTASH_KAFKA_REST_URL" ? "upstash" : "v2"),
    );
    const clusterId = dialect === "v3" ? required("KEYFLOW_KAFKA_DIALECT=v3", "KEYFLOW_KAFKA_CLUSTER_ID") : env.KEYFLOW_KAFKA_CLUSTER_ID;
    const username =
      dialect === "upstash"
        ? required("KEYFLOW_KAFKA_DIALECT=upstash", "KEYFLOW_KAFKA_USERNAME", "UPSTASH_KAFKA_REST_USERNAME")
        : get("KEYFLOW_KAFKA_USERNAME")?.value;
    const password =
      dialect === "upstash"
        ? required("KEYFLOW_KAFKA_DIALECT=upstash", "KEYFLOW_KAFKA_PASSWORD", "UPSTASH_KAFKA_REST_PASSWORD")
        : get("KEYFLOW_KAFKA_PASSWORD")?.value;
    const topic = env.KEYFLOW_KAFKA_TOPIC || "keyflow.events";
    const windowsTopic = env.KEYFLOW_KAFKA_WINDOWS_TOPIC || "keyflow.windows";
    for (const [name, value] of [["KEYFLOW_KAFKA_TOPIC", topic.replace("{type}", "t")], ["KEYFLOW_KAFKA_WINDOWS_TOPIC", windowsTopic]]) {
      if (!/^[a-zA-Z0-9._-]{1,249}$/.test(value!)) problems.push(`${name}: a Kafka topic name uses [a-zA-Z0-9._-] (and {type})`);
    }
    if (url && dialect) {
      settings.kafka = {
        dialect,
        url: url.replace(/\/+$/, ""),
        clusterId,
        username,
        password,
        topic,
        windowsTopic,
        headers: env.KEYFLOW_KAFKA_HEADERS !== "false",
        timeoutMs,
      };
    }
  }

  const hookUrl = get("KEYFLOW_WEBHOOK_URL");
  if (hookUrl) {
    const url = check(httpUrl, hookUrl.name, hookUrl.value);
    const secret = required("KEYFLOW_WEBHOOK_URL", "KEYFLOW_WEBHOOK_SECRET");
    if (url && secret) settings.webhook = { url, secret, timeoutMs };
  }

  if (problems.length) throw new ConfigError(problems);
  return settings;
}

/** The sinks the settings turn on, in a fixed order. */
export function createSinks(settings: SinkSettings, opts: { poolPerDelivery: boolean }): Sink[] {
  const sinks: Sink[] = [];
  if (settings.kafka) sinks.push(new KafkaSink(settings.kafka));
  if (settings.redis) sinks.push(new RedisSink(settings.redis));
  if (settings.postgres) sinks.push(new PostgresSink({ ...settings.postgres, poolPerDelivery: opts.poolPerDelivery }));
  if (settings.webhook) sinks.push(new WebhookSink(settings.webhook));
  return sinks;
}

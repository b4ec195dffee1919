import type { Sink } from "../delivery/sink.ts";
import { ConfigError } from "../settings/config.ts";
import type { NativeKafkaOptions } from "./kafka/settings.ts";
import { KafkaSink } from "./kafka/sink.ts";
import { PostgresSink, type PostgresSinkOptions } from "./postgres/sink.ts";
import { isNativeRedisUrl, RedisSink, type RedisSinkOptions } from "./redis/sink.ts";
import type { SinkSettings } from "./settings.ts";
import { WebhookSink } from "./webhook/sink.ts";

/**
 * Sinks with native clients (TCP: ioredis, postgres.js), which only the self-hosted server has:
 * src/sinks/native.ts makes them, and only the self-hosted entry points import it, so the Workers
 * bundle never holds those clients.
 */
export interface NativeSinks {
  redis(opts: RedisSinkOptions): Sink;
  postgres(opts: PostgresSinkOptions): PostgresSink;
  kafka(opts: NativeKafkaOptions): Sink;
}

/**
 * What the settings ask of a host without native clients (Workers), each naming its variable;
 * none when every sink on has an HTTP client there.
 */
export function nativeOnlyProblems(settings: SinkSettings): string[] {
  const problems: string[] = [];
  if (settings.kafka?.dialect === "native") {
    problems.push("KEYFLOW_KAFKA_BROKERS needs the self-hosted server (a native Kafka producer); on Workers use a REST proxy with KEYFLOW_KAFKA_REST_URL");
  }
  if (settings.redis && isNativeRedisUrl(settings.redis.url)) {
    problems.push(`KEYFLOW_REDIS_URL: ${settings.redis.url.split(":")[0]}:// needs the self-hosted server; on Workers use Upstash's https:// REST URL with KEYFLOW_REDIS_TOKEN`);
  }
  if (settings.postgres?.client === "native") {
    problems.push("KEYFLOW_POSTGRES_CLIENT=native needs the self-hosted server; on Workers use auto or neon (the Neon driver, with KEYFLOW_NEON_WSPROXY for a Postgres that is not on Neon)");
  }
  return problems;
}

/**
 * The sinks the settings turn on, in a fixed order (enabledSinks names them in the same order).
 * `native`: the native clients, where the host has them; without them, a setting that needs one is
 * a ConfigError naming its variable.
 */
export function createSinks(settings: SinkSettings, opts: { poolPerDelivery: boolean; native?: NativeSinks }): Sink[] {
  const { native } = opts;
  if (!native) {
    const problems = nativeOnlyProblems(settings);
    if (problems.length) throw new ConfigError(problems);
  }
  const sinks: Sink[] = [];
  if (settings.kafka) sinks.push(settings.kafka.dialect === "native" ? native!.kafka(settings.kafka) : new KafkaSink(settings.kafka));
  if (settings.redis) sinks.push(native && isNativeRedisUrl(settings.redis.url) ? native.redis(settings.redis) : new RedisSink(settings.redis));
  if (settings.postgres) sinks.push(postgresSink(settings, opts.poolPerDelivery, native)!);
  if (settings.webhook) sinks.push(new WebhookSink(settings.webhook));
  return sinks;
}

/** The Postgres sink the settings ask for (npm run migrate uses it for its migrate()); undefined when it is off. */
export function postgresSink(settings: SinkSettings, poolPerDelivery: boolean, native?: NativeSinks): PostgresSink | undefined {
  if (!settings.postgres) return undefined;
  const { client, ...options } = settings.postgres;
  const sinkOptions = { ...options, poolPerDelivery };
  return native && client ? native.postgres(sinkOptions) : new PostgresSink(sinkOptions);
}

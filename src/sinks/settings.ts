import type { EnvReader } from "../settings/reader.ts";
import { kafkaNativeSettings, kafkaSettings, type KafkaSettings } from "./kafka/settings.ts";
import { postgresSettings, type PostgresSettings } from "./postgres/settings.ts";
import { redisSettings } from "./redis/settings.ts";
import type { RedisSinkOptions } from "./redis/sink.ts";
import { webhookSettings } from "./webhook/settings.ts";
import type { WebhookSinkOptions } from "./webhook/sink.ts";

/** The sinks that are on (a sink is on when its URL is set), with their settings. */
export interface SinkSettings {
  kafka?: KafkaSettings;
  redis?: RedisSinkOptions;
  postgres?: PostgresSettings;
  webhook?: WebhookSinkOptions;
}

/** Reads every sink's variables; problems (a bad URL, a missing token) go to the reader, naming the variable. */
export function readSinkSettings(r: EnvReader): SinkSettings {
  const timeoutMs = r.durationMs("KEYFLOW_SINK_TIMEOUT", "10s");
  const settings: SinkSettings = {};
  const kafka = kafkaSettings(r, timeoutMs) ?? kafkaNativeSettings(r, timeoutMs);
  const redis = redisSettings(r, timeoutMs);
  const postgres = postgresSettings(r, timeoutMs);
  const webhook = webhookSettings(r, timeoutMs);
  if (kafka) settings.kafka = kafka;
  if (redis) settings.redis = redis;
  if (postgres) settings.postgres = postgres;
  if (webhook) settings.webhook = webhook;
  return settings;
}

/** The names of the sinks that are on, in delivery order (the same order createSinks builds them in). */
export function enabledSinks(settings: SinkSettings): string[] {
  return (["kafka", "redis", "postgres", "webhook"] as const).filter((name) => settings[name] !== undefined);
}

/** The sink that mirrors dead letters into its failed_events table. */
export function deadLetterMirror(settings: SinkSettings): string | undefined {
  return settings.postgres ? "postgres" : undefined;
}

import type { Sink } from "../delivery/sink.ts";
import { KafkaSink } from "./kafka/sink.ts";
import { PostgresSink } from "./postgres/sink.ts";
import { RedisSink } from "./redis/sink.ts";
import type { SinkSettings } from "./settings.ts";
import { WebhookSink } from "./webhook/sink.ts";

/** The sinks the settings turn on, in a fixed order (enabledSinks names them in the same order). */
export function createSinks(settings: SinkSettings, opts: { poolPerDelivery: boolean }): Sink[] {
  const sinks: Sink[] = [];
  if (settings.kafka) sinks.push(new KafkaSink(settings.kafka));
  if (settings.redis) sinks.push(new RedisSink(settings.redis));
  if (settings.postgres) sinks.push(new PostgresSink({ ...settings.postgres, poolPerDelivery: opts.poolPerDelivery }));
  if (settings.webhook) sinks.push(new WebhookSink(settings.webhook));
  return sinks;
}

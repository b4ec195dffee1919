import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SinkSettings } from "../sinks/settings.ts";

/**
 * `keyflow-` and a random id kept in the data directory: stable across restarts on that directory,
 * different for any other server (a copied data directory copies it: set KEYFLOW_KAFKA_TRANSACTIONAL_ID then).
 */
export function defaultTransactionalId(dataDir: string): string {
  const file = join(dataDir, "kafka-transactional-id");
  try {
    const id = readFileSync(file, "utf8").trim();
    if (/^[a-zA-Z0-9._-]{1,200}$/.test(id)) return id;
  } catch {
    // Not there yet.
  }
  const id = `keyflow-${randomUUID()}`;
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${id}\n`);
  return id;
}

/** The sink settings with the native Kafka producer's default transactional id filled in, where it needs one. */
export function withTransactionalId(sinks: SinkSettings): SinkSettings {
  const kafka = sinks.kafka;
  if (kafka?.dialect !== "native" || !kafka.durable || kafka.transactionalId) return sinks;
  return { ...sinks, kafka: { ...kafka, transactionalId: defaultTransactionalId(kafka.dataDir) } };
}

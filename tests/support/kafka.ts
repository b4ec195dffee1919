/**
 * Helpers for tests against the local Kafka broker and HTTP bridge that `scripts/services.sh start`
 * runs (Kafka 127.0.0.1:9092, Strimzi-style bridge http://127.0.0.1:8082).
 */
import { join } from "node:path";
import { Kafka, logLevel, type Admin } from "kafkajs";
import { ROOT } from "./process.ts";

export const KAFKA_BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
export const BRIDGE_URL = process.env.KAFKA_BRIDGE_URL ?? "http://127.0.0.1:8082";


/**
 * Runs `bash scripts/services.sh start` (idempotent: a no-op for services already up) and throws with
 * its output if it fails. A cold first run downloads Kafka from Maven Central, so call it from a
 * beforeAll with a timeout of several minutes.
 */
export function ensureServices(): void {
  const run = Bun.spawnSync(["bash", join(ROOT, "scripts/services.sh"), "start"], { cwd: ROOT, stderr: "pipe", stdout: "pipe" });
  if (run.exitCode !== 0) {
    throw new Error(`scripts/services.sh start failed (exit ${run.exitCode}):\n${run.stdout.toString()}\n${run.stderr.toString()}`);
  }
}

/** A topic name unique to this process and call, safe to auto-create. */
export function uniqueTopic(prefix = "kf-test"): string {
  return `${prefix}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
}

export function kafkaClient(clientId = "keyflow-test"): Kafka {
  return new Kafka({ clientId, brokers: KAFKA_BROKERS, logLevel: logLevel.WARN });
}

/** Creates `topic` with `partitions` partitions (replication 1) and waits until its leaders are known. */
export async function createTopic(topic: string, partitions = 3): Promise<void> {
  const admin: Admin = kafkaClient("keyflow-test-admin").admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** One record as a consumer sees it; key, value and header values are the raw bytes. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  /** Kafka offset (fits a JS number for any test topic). */
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
  /** Record timestamp, epoch ms. */
  timestamp: number;
}

export interface ConsumeOptions {
  /** After `expectedCount` records arrived, keep listening this long so extra records (duplicates) show up. Default 0. */
  settleMs?: number;
  brokers?: string[];
}

/**
 * Reads `topic` from the beginning with a fresh consumer group until `expectedCount` records have
 * arrived, then returns every record seen, ordered by partition then offset.
 * Rejects if fewer than `expectedCount` arrived within `timeoutMs` (the message says how many did).
 * The consumer is always disconnected before it settles.
 */
export async function consumeAll(
  topic: string,
  expectedCount: number,
  timeoutMs = 30_000,
  options: ConsumeOptions = {},
): Promise<ConsumedRecord[]> {
  const kafka = new Kafka({ clientId: "keyflow-test-consumer", brokers: options.brokers ?? KAFKA_BROKERS, logLevel: logLevel.NOTHING });
  // A short fetch wait keeps disconnect() quick: it waits for the fetch in flight.
  const consumer = kafka.consumer({
    groupId: uniqueTopic("kf-test-group"),
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 100,
  });
  const records: ConsumedRecord[] = [];
  let reached: () => void = () => {};
  const enough = new Promise<void>((resolve) => (reached = resolve));
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        const headers: Record<string, Buffer> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) {
          if (v !== undefined) headers[k] = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
        }
        records.push({
          topic: t,
          partition,
          offset: Number(message.offset),
          key: message.key,
          value: message.value,
          headers,
          timestamp: Number(message.timestamp),
        });
        if (records.length >= expectedCount) reached();
      },
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`consumeAll(${topic}): ${records.length} of ${expectedCount} records within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    await Promise.race([enough, timeout]);
    if (options.settleMs) await Bun.sleep(options.settleMs);
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** POSTs `records` to the bridge's `POST /topics/{topic}` in the given embedded format. */
export async function bridgeProduce(
  topic: string,
  records: unknown[],
  format: "json" | "binary" | "text" = "json",
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${BRIDGE_URL}/topics/${encodeURIComponent(topic)}`, {
    method: "POST",
    headers: { "content-type": `application/vnd.kafka.${format}.v2+json` },
    body: JSON.stringify({ records }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

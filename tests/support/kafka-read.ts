/**
 * Reading a topic to its end, as a read_committed (or read_uncommitted) consumer sees it, and the
 * exactly-once check of the native Kafka sink's tests.
 */
import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { KAFKA_BROKERS, uniqueTopic, type ConsumedRecord } from "./kafka.ts";

const END_KEY = "__keyflow_test_end__";

/**
 * Every record of `topic`, read from the beginning. The end is found without waiting on a clock: an
 * end marker goes (non-transactionally) into each partition first, and the read stops once every
 * partition's marker came through — a read_committed consumer sees it only after every transaction
 * before it ended. Call it once nothing writes to the topic any more. Markers are left out.
 */
export async function readToEnd(topic: string, opts: { readUncommitted?: boolean; timeoutMs?: number } = {}): Promise<ConsumedRecord[]> {
  const kafka = new Kafka({ clientId: "keyflow-test-reader", brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const partitions = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions.map((p) => p.partitionId);
  await admin.disconnect();
  const nonce = randomUUID();
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: partitions.map((partition) => ({ partition, key: END_KEY, value: nonce })) });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: uniqueTopic("kf-test-reader"), readUncommitted: opts.readUncommitted ?? false, maxWaitTimeInMs: 100 });
  const records: ConsumedRecord[] = [];
  const waiting = new Set(partitions);
  let reached: () => void = () => {};
  const done = new Promise<void>((resolve) => (reached = resolve));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        if (message.key?.toString() === END_KEY) {
          if (message.value?.toString() === nonce) waiting.delete(partition);
          if (!waiting.size) reached();
          return;
        }
        const headers: Record<string, Buffer> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
        records.push({ topic: t, partition, offset: Number(message.offset), key: message.key, value: message.value, headers, timestamp: Number(message.timestamp) });
      },
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`readToEnd(${topic}): partitions ${[...waiting]} did not reach their end within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([done, timeout]);
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/**
 * What breaks exactly-once: an accepted ID seen other than once, or an ID seen that was never
 * accepted. Empty when every accepted ID is in `seen` exactly once.
 */
export function exactlyOnceProblems(accepted: Iterable<string>, seen: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const id of seen) counts.set(id, (counts.get(id) ?? 0) + 1);
  const problems: string[] = [];
  const want = new Set(accepted);
  for (const id of want) {
    const count = counts.get(id) ?? 0;
    if (count !== 1) problems.push(`${id}: seen ${count} times`);
  }
  for (const [id, count] of counts) if (!want.has(id)) problems.push(`${id}: seen ${count} times, never accepted`);
  return problems;
}

import type { Kafka } from "kafkajs";

/**
 * The progress topic: for each actor, the highest outbox position (`n`) whose records are in Kafka,
 * written in the same transaction as the records. Keys are `{transactionalId}/{actor}` (so servers
 * may share the topic: each reads back only its own); the value is `n` in decimal. A sentinel key
 * `{transactionalId}#sentinel-{partition}` marks where a read-back ends.
 */
export function progressKey(transactionalId: string, actor: string): string {
  return `${transactionalId}/${actor}`;
}

export function sentinelKey(transactionalId: string, partition: number): string {
  return `${transactionalId}#sentinel-${partition}`;
}

export interface ReadProgressOptions {
  topic: string;
  transactionalId: string;
  /** The partitions of the topic; each holds a sentinel with `nonce`, committed after every progress record of ours. */
  partitions: number[];
  nonce: string;
  deadline: number;
}

/**
 * Reads the progress topic from its start with read_committed until each partition's sentinel
 * shows up (a committed transaction's markers take offsets no consumer sees, so an offset count
 * cannot tell the end was reached; the sentinel can). Rejects at the deadline.
 */
export async function readProgress(kafka: Kafka, opts: ReadProgressOptions): Promise<Map<string, number>> {
  const progress = new Map<string, number>();
  const prefix = `${opts.transactionalId}/`;
  const waiting = new Set(opts.partitions);
  const sentinels = new Map(opts.partitions.map((p) => [sentinelKey(opts.transactionalId, p), p]));
  // A group of its own, never committed: every read starts at the beginning and leaves nothing behind.
  const consumer = kafka.consumer({
    groupId: `${opts.transactionalId}.progress.${opts.nonce}`,
    readUncommitted: false,
    sessionTimeout: 10_000,
    maxWaitTimeInMs: 100,
    retry: { retries: 2 },
  });
  let crashed: Error | undefined;
  consumer.on(consumer.events.CRASH, (e) => {
    crashed = e.payload.error;
  });
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: opts.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const { partition } = batch;
        for (const message of batch.messages) {
          const key = message.key?.toString("utf8");
          const value = message.value?.toString("utf8");
          if (key === undefined || value === undefined) continue;
          if (key.startsWith(prefix)) {
            const n = Number(value);
            const actor = key.slice(prefix.length);
            if (Number.isSafeInteger(n) && n > (progress.get(actor) ?? -1)) progress.set(actor, n);
          } else if (sentinels.get(key) === partition && value === opts.nonce) {
            waiting.delete(partition);
            if (!waiting.size) done();
          }
        }
      },
    });
    while (waiting.size) {
      if (crashed) throw crashed;
      const left = opts.deadline - Date.now();
      if (left <= 0) throw new Error(`reading ${opts.topic} back did not reach its end in time`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([finished, new Promise((resolve) => (timer = setTimeout(resolve, Math.min(left, 250))))]);
      clearTimeout(timer);
    }
    return progress;
  } finally {
    await consumer.disconnect().catch(() => {});
  }
}

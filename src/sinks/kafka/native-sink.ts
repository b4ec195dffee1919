import { Kafka, logLevel, Partitioners, type Message, type Producer, type SASLOptions, type Transaction } from "kafkajs";
import { SinkError, TOO_LARGE, type Sink } from "../../delivery/sink.ts";
import type { OutboxRecord } from "../../actor/outbox.ts";
import "./kafkajs-idle-fix.ts";
import { kafkaMessage } from "./records.ts";
import { progressKey, readProgress, sentinelKey } from "./native-progress.ts";
import type { NativeKafkaOptions } from "./settings.ts";

/** Record-batch framing Kafka adds to each message, and to each batch (an estimate on the large side). */
const PER_MESSAGE_BYTES = 80;
const PER_BATCH_BYTES = 1024;
const TRANSACTION_TIMEOUT_MS = 30_000;

interface Outgoing {
  topic: string;
  message: Message;
  bytes: number;
}

/** One deliver() call waiting for the next transaction. */
interface Queued {
  messages: Outgoing[];
  /** Per actor, the highest outbox position the transaction takes it to. */
  reached: Map<string, number>;
  resolve(): void;
  reject(error: SinkError): void;
}

export interface NativeKafkaTestHooks {
  /** Sends records again even when the progress topic says they are in Kafka (shows the crash test can fail). */
  ignoreProgress?: boolean;
}

/**
 * Kafka through a transactional producer (kafkajs): exactly once for read_committed consumers. Each
 * transaction holds the records of every deliver() call waiting for it and, on the progress topic,
 * how far each of their actors' outboxes got. Before the first delivery, and after any transaction
 * whose outcome is unknown, a fresh producer fences the old one (initTransactions aborts what it left
 * open) and the progress is read back; deliver() then skips records at or below an actor's progress:
 * they are in Kafka already, though the host may not have recorded the ack before a crash.
 */
export class NativeKafkaSink implements Sink {
  readonly name = "kafka";
  private readonly kafka: Kafka;
  private readonly transactionalId: string;
  private producer: Producer | undefined;
  private ready: Promise<void> | undefined;
  /** Bumped whenever the producer is replaced: a late result of the old one changes nothing. */
  private generation = 0;
  private committed = new Map<string, number>();
  private queue: Queued[] = [];
  private running = false;
  private closed = false;

  constructor(
    private readonly opts: NativeKafkaOptions,
    private readonly hooks: NativeKafkaTestHooks = {},
  ) {
    this.kafka = new Kafka({
      clientId: "keyflow",
      brokers: opts.brokers,
      ssl: opts.ssl,
      ...(opts.sasl ? { sasl: opts.sasl as SASLOptions } : {}),
      connectionTimeout: Math.min(opts.timeoutMs, 3_000),
      requestTimeout: opts.timeoutMs,
      retry: { retries: 5, initialRetryTime: 25, maxRetryTime: 1_000 },
      logLevel: logLevel.NOTHING,
    });
    if (!opts.durable) this.transactionalId = `${opts.transactionalId ?? "keyflow"}-${crypto.randomUUID()}`;
    else if (opts.transactionalId) this.transactionalId = opts.transactionalId;
    // The runtime resolves the default one (src/runtimes/kafka-transactional-id.ts): it lives in the data directory.
    else throw new Error("a native Kafka sink over a durable outbox needs its transactionalId");
  }

  /** How far each actor's records are in Kafka, as last read back or committed. */
  progress(): ReadonlyMap<string, number> {
    return this.committed;
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    if (this.closed) throw new SinkError("kafka: the producer is closed", false);
    await this.start();
    const messages: Outgoing[] = [];
    const reached = new Map<string, number>();
    let tooLarge: SinkError | undefined;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (!this.hooks.ignoreProgress && r.n <= (this.committed.get(r.key) ?? -1)) continue;
      if (r.kind !== "dead_letter") {
        const m = kafkaMessage(this.opts, r);
        const message: Message = { key: m.key, value: m.value, headers: Object.fromEntries(m.headers) };
        const bytes = Buffer.byteLength(m.key) + Buffer.byteLength(m.value) + m.headers.reduce((sum, [k, v]) => sum + k.length + Buffer.byteLength(v), 0);
        if (bytes + PER_MESSAGE_BYTES + PER_BATCH_BYTES > this.opts.maxRequestBytes) {
          tooLarge = new SinkError(`kafka ${m.topic}: record of ${bytes} bytes is larger than ${this.opts.maxRequestBytes} bytes (KEYFLOW_KAFKA_MAX_REQUEST_BYTES)`, true, i, true);
          break;
        }
        messages.push({ topic: m.topic, message, bytes: bytes + PER_MESSAGE_BYTES });
      }
      reached.set(r.key, Math.max(r.n, reached.get(r.key) ?? -1));
    }
    if (reached.size) await this.enqueue(messages, reached);
    if (tooLarge) throw tooLarge;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.ready?.catch(() => {});
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect().catch(() => {});
  }

  /** Connects, creates the progress topic if missing, fences the previous producer and reads the progress back. */
  private start(): Promise<void> {
    if (!this.ready) {
      const generation = this.generation;
      this.ready = this.withDeadline(Math.max(30_000, 3 * this.opts.timeoutMs), "starting", (deadline) => this.open(generation, deadline)).catch((error) => {
        if (this.generation === generation) this.reset();
        throw transient("kafka: starting the transactional producer", error);
      });
    }
    return this.ready;
  }

  private async open(generation: number, deadline: number): Promise<void> {
    const partitions = await this.progressPartitions();
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      transactionalId: this.transactionalId,
      transactionTimeout: TRANSACTION_TIMEOUT_MS,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 8, initialRetryTime: 25, maxRetryTime: 1_000 },
    });
    try {
      await producer.connect();
      // The first transaction runs initTransactions: the producer id's epoch is bumped, so a producer
      // left over from before (a zombie) is fenced and what it left open is aborted.
      const nonce = crypto.randomUUID();
      const tx = await producer.transaction();
      try {
        const messages = partitions.map((partition) => ({ partition, key: sentinelKey(this.transactionalId, partition), value: nonce }));
        await tx.send({ topic: this.opts.progressTopic, messages });
      } catch (error) {
        await tx.abort().catch(() => {});
        throw error;
      }
      await tx.commit();
      const progress = await readProgress(this.kafka, { topic: this.opts.progressTopic, transactionalId: this.transactionalId, partitions, nonce, deadline });
      if (this.generation !== generation || this.closed) throw new Error("replaced while starting");
      this.producer = producer;
      this.committed = progress;
    } catch (error) {
      await producer.disconnect().catch(() => {});
      throw error;
    }
  }

  /** The progress topic's partitions; created (compacted, one partition) when missing. */
  private async progressPartitions(): Promise<number[]> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      if (!topics.includes(this.opts.progressTopic)) {
        await admin
          .createTopics({
            waitForLeaders: true,
            topics: [
              {
                topic: this.opts.progressTopic,
                numPartitions: 1,
                // Compaction only cleans closed segments: rolled every minute and cleaned early, the
                // topic stays near one record per actor, which keeps the read-back on start short.
                configEntries: [
                  { name: "cleanup.policy", value: "compact" },
                  { name: "segment.ms", value: "60000" },
                  { name: "min.cleanable.dirty.ratio", value: "0.1" },
                ],
              },
            ],
          })
          .catch((error) => {
            // Another server created it first.
            if (!/already exists/i.test((error as Error)?.message ?? "")) throw error;
          });
      }
      const meta = await admin.fetchTopicMetadata({ topics: [this.opts.progressTopic] });
      return meta.topics[0]!.partitions.map((p) => p.partitionId).sort((a, b) => a - b);
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  private enqueue(messages: Outgoing[], reached: Map<string, number>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ messages, reached, resolve, reject });
      void this.drain();
    });
  }

  /** One transaction at a time (a producer has at most one): each takes every call queued meanwhile. */
  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) {
        const group = this.queue.splice(0);
        const failure = await this.transact(group);
        if (failure?.tooLarge && group.length > 1) {
          // The broker refused a message as too large: alone, each call learns whether it was its own.
          for (const one of group) settle([one], await this.transact([one]));
        } else {
          settle(group, failure);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Sends the group's records and progress in one transaction; the failure, if it did not commit. */
  private async transact(group: Queued[]): Promise<SinkError | undefined> {
    const generation = this.generation;
    try {
      await this.start();
      const producer = this.producer;
      if (!producer) throw new SinkError("kafka: the producer is closed", false);
      const reached = new Map<string, number>();
      const outgoing: Outgoing[] = [];
      for (const q of group) {
        for (const m of q.messages) outgoing.push(m);
        for (const [actor, n] of q.reached) reached.set(actor, Math.max(n, reached.get(actor) ?? -1));
      }
      for (const [actor, n] of reached) {
        const key = progressKey(this.transactionalId, actor);
        const value = String(n);
        outgoing.push({ topic: this.opts.progressTopic, message: { key, value }, bytes: Buffer.byteLength(key) + value.length + PER_MESSAGE_BYTES });
      }
      await this.withDeadline(this.opts.timeoutMs, "a transaction", () => this.commit(producer, outgoing));
      if (this.generation === generation) {
        for (const [actor, n] of reached) this.committed.set(actor, Math.max(n, this.committed.get(actor) ?? -1));
      }
      return undefined;
    } catch (error) {
      return error instanceof SinkError ? error : transient("kafka", error);
    }
  }

  private async commit(producer: Producer, outgoing: Outgoing[]): Promise<void> {
    const generation = this.generation;
    let tx: Transaction;
    try {
      tx = await producer.transaction();
    } catch (error) {
      this.resetIf(generation);
      throw error;
    }
    try {
      for (const chunk of chunks(outgoing, this.opts.maxRequestBytes - PER_BATCH_BYTES)) {
        const byTopic = new Map<string, Message[]>();
        for (const { topic, message } of chunk) {
          let list = byTopic.get(topic);
          if (!list) byTopic.set(topic, (list = []));
          list.push(message);
        }
        await tx.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), acks: -1, timeout: this.opts.timeoutMs });
      }
    } catch (error) {
      // Not committed: aborted (or, if the abort fails too, left for the next producer's fencing to
      // abort). The producer is replaced either way: kafkajs keeps counting the sequence numbers of
      // the failed batches, which the broker would refuse as out of order.
      await tx.abort().catch(() => {});
      this.resetIf(generation);
      const message = (error as Error)?.message ?? String(error);
      if (TOO_LARGE.test(message)) throw new SinkError(`kafka: ${message}`, true, undefined, true);
      throw error;
    }
    try {
      await tx.commit();
    } catch (error) {
      // The commit may or may not have happened: the next producer fences this one and reads back what did.
      this.resetIf(generation);
      throw error;
    }
  }

  /** Runs `work`; past `ms`, rejects and drops the producer (its outcome unknown: the next one reads back what happened). */
  private async withDeadline<T>(ms: number, what: string, work: (deadline: number) => Promise<T>): Promise<T> {
    const generation = this.generation;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.resetIf(generation);
        reject(new SinkError(`kafka: ${what} took longer than ${ms} ms`, false));
      }, ms);
    });
    try {
      return await Promise.race([work(Date.now() + ms), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private resetIf(generation: number): void {
    if (this.generation === generation) this.reset();
  }

  private reset(): void {
    this.generation++;
    const old = this.producer;
    this.producer = undefined;
    this.ready = undefined;
    old?.disconnect().catch(() => {});
  }
}

function settle(group: Queued[], failure: SinkError | undefined): void {
  for (const q of group) if (failure) q.reject(failure);
  else q.resolve();
}

/** Every Kafka failure is transient here (a refused record is found before sending, as too large). */
function transient(what: string, error: unknown): SinkError {
  if (error instanceof SinkError) return error;
  return new SinkError(`${what}: ${(error as Error)?.message ?? String(error)}`, false);
}

/** Consecutive runs of messages of at most `maxBytes` each (a larger message goes alone). */
function chunks(outgoing: Outgoing[], maxBytes: number): Outgoing[][] {
  const out: Outgoing[][] = [];
  let current: Outgoing[] = [];
  let bytes = 0;
  for (const o of outgoing) {
    if (current.length && bytes + o.bytes > maxBytes) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(o);
    bytes += o.bytes;
  }
  if (current.length) out.push(current);
  return out;
}

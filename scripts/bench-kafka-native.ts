// The native Kafka drain for the `sinks` section of `bun run bench` (issue 13): the same ingest
// into a fresh durable Bun host with only the Kafka sink on, once through the REST bridge
// (KEYFLOW_KAFKA_REST_URL) and once through the native transactional producer
// (KEYFLOW_KAFKA_BROKERS); each drain is events accepted / seconds from the ingest start until a
// read_committed consumer has seen them all. Run alone: bun scripts/bench-kafka-native.ts [seconds].
import type { Consumer } from "kafkajs";
import { createTopic, kafkaClient, uniqueTopic } from "../tests/support/kafka.ts";
import { BUN_SERVER, spawnServer, tempDir } from "../tests/support/targets.ts";
import { runLoad } from "./bench-load.ts";

export type KafkaPath = "rest" | "native";

export interface KafkaDrain {
  path: KafkaPath;
  accepted: number;
  landed: number;
  seconds: number;
  eventsPerS: number;
  timedOut: boolean;
}

export interface KafkaNativeBenchOptions {
  /** Seconds of ingest (1,000-event NDJSON requests over 1,000 keys, 4 clients). */
  ingestSeconds: number;
  drainTimeoutMs: number;
  log?: (line: string) => void;
}

const EVENTS_PER_REQUEST = 1_000;
const KEYS = 1_000;

/** The drain through one path: a fresh server, its own topics, the same load. */
export async function kafkaDrain(path: KafkaPath, opts: KafkaNativeBenchOptions): Promise<KafkaDrain> {
  const run = uniqueTopic(`kf-bench-${path}`);
  await createTopic(`${run}.events`);
  await createTopic(`${run}.windows`, 1);
  const dir = tempDir(`bench-kafka-${path}`);
  const reach: Record<string, string> = path === "native" ? { KEYFLOW_KAFKA_BROKERS: "127.0.0.1:9092", KEYFLOW_KAFKA_PROGRESS_TOPIC: `${run}.progress` } : { KEYFLOW_KAFKA_REST_URL: "http://127.0.0.1:8082" };
  const server = await spawnServer(BUN_SERVER, {
    PORT: "0",
    HOST: "127.0.0.1",
    KEYFLOW_DATA_DIR: dir.path,
    KEYFLOW_LOG_LEVEL: "warn",
    KEYFLOW_MAX_BATCH_EVENTS: String(EVENTS_PER_REQUEST),
    KEYFLOW_KAFKA_TOPIC: `${run}.events`,
    KEYFLOW_KAFKA_WINDOWS_TOPIC: `${run}.windows`,
    ...reach,
  });
  let landed = 0;
  let consumer: Consumer | undefined;
  try {
    consumer = kafkaClient("keyflow-bench-kafka-native").consumer({ groupId: `${run}-count`, readUncommitted: false, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: `${run}.events`, fromBeginning: true });
    await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => void (landed += batch.messages.length) });
    let next = 0;
    const body = () => {
      const lines: string[] = [];
      for (let i = 0; i < EVENTS_PER_REQUEST; i++, next++) {
        lines.push(JSON.stringify({ event_id: `${run}-${next}`, event_type: "page_view", user_id: `u${next % KEYS}`, value: 1 }));
      }
      return lines.join("\n");
    };
    const started = performance.now();
    const load = await runLoad({ url: `${server.url}/v1/events`, body, contentType: "application/x-ndjson", concurrency: 4, seconds: opts.ingestSeconds });
    const accepted = (load.statuses[200] ?? 0) * EVENTS_PER_REQUEST;
    const deadline = started + opts.drainTimeoutMs;
    while (landed < accepted && performance.now() < deadline) await Bun.sleep(20);
    const seconds = (performance.now() - started) / 1000;
    const drain = { path, accepted, landed, seconds, eventsPerS: landed / seconds, timedOut: landed < accepted };
    opts.log?.(`kafka ${path}: ${landed}/${accepted} events in ${seconds.toFixed(2)} s = ${Math.round(drain.eventsPerS)} events/s${drain.timedOut ? " (timed out)" : ""}`);
    if (path === "native" && opts.log) {
      const admin = kafkaClient("keyflow-bench-kafka-native-admin").admin();
      await admin.connect();
      const offsets = await admin.fetchTopicOffsets(`${run}.progress`);
      await admin.disconnect();
      opts.log(`kafka native: ${offsets.reduce((sum, p) => sum + Number(p.high), 0)} offsets on the progress topic (records and transaction markers)`);
    }
    return drain;
  } finally {
    await consumer?.disconnect().catch(() => {});
    await server.stop();
    dir.remove();
    const admin = kafkaClient("keyflow-bench-kafka-native-admin").admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [`${run}.events`, `${run}.windows`, ...(path === "native" ? [`${run}.progress`] : [])] }).catch(() => {});
    await admin.disconnect();
  }
}

/** REST then native, same load; `ratio` is native events/s over REST events/s (same run). */
export async function benchKafkaNative(opts: KafkaNativeBenchOptions): Promise<{ rest: KafkaDrain; native: KafkaDrain; ratio: number }> {
  const rest = await kafkaDrain("rest", opts);
  const native = await kafkaDrain("native", opts);
  return { rest, native, ratio: native.eventsPerS / rest.eventsPerS };
}

if (import.meta.main) {
  const seconds = Number(process.argv[2] ?? 3);
  const result = await benchKafkaNative({ ingestSeconds: seconds, drainTimeoutMs: 120_000, log: console.log });
  console.log(JSON.stringify(result, null, 2));
}

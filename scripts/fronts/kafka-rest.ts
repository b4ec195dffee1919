/**
 * Local stand-in for the Strimzi Kafka Bridge's HTTP producer API (bridge 0.33.x, REST "v2" formats),
 * in front of a real Kafka broker. Started by `scripts/services.sh start` on 127.0.0.1:8082.
 *
 * Why it exists: io.strimzi:kafka-bridge is not published on Maven Central, the only Java registry
 * this project's machines reach, so the real bridge cannot be installed here. services.sh runs the
 * real one instead when KAFKA_BRIDGE_HOME points at an unpacked official release.
 *
 * What it serves, as the bridge does:
 *   POST /topics/{topic}                          body {"records":[{value, key?, partition?, timestamp?, headers?}]}
 *   POST /topics/{topic}/partitions/{partition}   same, without "partition" in records
 *     Content-Type application/vnd.kafka.{json,binary,text}.v2+json
 *       json: key and value are any JSON, written to Kafka as their compact JSON text
 *       binary: key and value are base64 strings, written as the decoded bytes
 *       text: key and value are strings, written as UTF-8
 *     headers: [{"key": string, "value": base64}]
 *     200 application/vnd.kafka.v2+json {"offsets":[{"partition","offset"} | {"error_code","message"}]}
 *       (always 200; per-record errors inline), 204 with ?async=true,
 *     422 {"error_code":422,"message","validation_errors"?} for a body that breaks the schema,
 *     400 for malformed JSON or an unsupported Content-Type.
 *   GET /healthy, GET /ready -> 204 (ready once the producer is connected), GET / -> {"bridge_version"}.
 * Producer settings mirror the ones services.sh gives the real bridge: acks=all, idempotence on.
 *
 * Known differences from the real bridge: a record for a partition the topic lacks fails at once
 * with 404 (the Java producer first blocks for max.block.ms); a failed send fails every record of
 * that request (the bridge reports each record separately); records without a key are spread
 * round-robin (the Java client uses sticky partitioning). Keyed records land on the same partition
 * as with the Java client: both hash the serialized key bytes with murmur2.
 *
 * Env: BRIDGE_HOST (127.0.0.1), BRIDGE_PORT (8082), KAFKA_BROKERS (127.0.0.1:9092, comma-separated).
 */
import { Kafka, logLevel, Partitioners, type Message, type Producer } from "kafkajs";

const HOST = process.env.BRIDGE_HOST ?? "127.0.0.1";
const PORT = Number(process.env.BRIDGE_PORT ?? 8082);
const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const VERSION = "0.33.1-keyflow-standin";

const FORMATS = {
  "application/vnd.kafka.json.v2+json": "json",
  "application/vnd.kafka.binary.v2+json": "binary",
  "application/vnd.kafka.text.v2+json": "text",
} as const;
type Format = (typeof FORMATS)[keyof typeof FORMATS];
const RESPONSE_TYPE = "application/vnd.kafka.v2+json";

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly validationErrors?: string[],
  ) {
    super(message);
  }
}

/** Thrown from the partitioner so kafkajs does not retry it. */
class MissingPartition extends Error {
  readonly retriable = false;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": RESPONSE_TYPE } });
}

function errorResponse(e: HttpError): Response {
  const body: Record<string, unknown> = { error_code: e.status, message: e.message };
  if (e.validationErrors) body.validation_errors = e.validationErrors;
  return json(e.status, body);
}

// ---------------------------------------------------------------- request body -> Kafka messages

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function encode(format: Format, v: unknown, where: string, errors: string[]): Buffer | null {
  switch (format) {
    case "json":
      return Buffer.from(JSON.stringify(v));
    case "binary":
      if (v === null) return null;
      if (typeof v !== "string" || !BASE64.test(v)) {
        errors.push(`${where}: must be a base64 string`);
        return null;
      }
      return Buffer.from(v, "base64");
    case "text":
      if (v === null) return null;
      if (typeof v !== "string") {
        errors.push(`${where}: must be a string`);
        return null;
      }
      return Buffer.from(v, "utf8");
  }
}

function toMessages(body: unknown, format: Format, pathPartition: number | undefined): Message[] {
  const errors: string[] = [];
  if (!isObject(body)) throw new HttpError(422, "Validation error on: body - must be an object", ["body: must be an object"]);
  for (const k of Object.keys(body)) if (k !== "records") errors.push(`/${k}: unknown property`);
  const records = body.records;
  if (!Array.isArray(records)) {
    errors.push("/records: required array");
  }
  const allowed = new Set(["key", "value", "timestamp", "headers", ...(pathPartition === undefined ? ["partition"] : [])]);
  const messages: Message[] = [];
  (Array.isArray(records) ? records : []).forEach((r, i) => {
    const at = `/records/${i}`;
    if (!isObject(r)) {
      errors.push(`${at}: must be an object`);
      return;
    }
    for (const k of Object.keys(r)) if (!allowed.has(k)) errors.push(`${at}/${k}: unknown property`);
    if (!("value" in r)) errors.push(`${at}/value: required`);
    const m: Message = { value: "value" in r ? encode(format, r.value, `${at}/value`, errors) : null };
    if ("key" in r) m.key = encode(format, r.key, `${at}/key`, errors);
    if ("partition" in r) {
      if (!Number.isInteger(r.partition) || (r.partition as number) < 0) errors.push(`${at}/partition: must be an integer >= 0`);
      else m.partition = r.partition as number;
    }
    if (pathPartition !== undefined) m.partition = pathPartition;
    if ("timestamp" in r) {
      if (!Number.isInteger(r.timestamp) || (r.timestamp as number) < 0) errors.push(`${at}/timestamp: must be an integer (ms)`);
      else m.timestamp = String(r.timestamp);
    }
    if ("headers" in r) {
      if (!Array.isArray(r.headers)) errors.push(`${at}/headers: must be an array`);
      else {
        const headers: Record<string, Buffer> = {};
        r.headers.forEach((h, j) => {
          const hat = `${at}/headers/${j}`;
          if (!isObject(h) || typeof h.key !== "string" || typeof h.value !== "string") {
            errors.push(`${hat}: must be {"key": string, "value": base64 string}`);
          } else if (Object.keys(h).some((k) => k !== "key" && k !== "value")) {
            errors.push(`${hat}: unknown property`);
          } else if (!BASE64.test(h.value)) {
            errors.push(`${hat}/value: must be base64`);
          } else {
            headers[h.key] = Buffer.from(h.value, "base64");
          }
        });
        m.headers = headers;
      }
    }
    messages.push(m);
  });
  if (errors.length > 0) throw new HttpError(422, `Validation error on: ${errors[0]}`, errors);
  return messages;
}

// ---------------------------------------------------------------- producing

/** Partition chosen for each message of the send in flight, read back to build per-record offsets. */
const chosen = new WeakMap<Message, number>();
const defaultPartitioner = Partitioners.DefaultPartitioner();
const recordingPartitioner = () => (args: Parameters<typeof defaultPartitioner>[0]) => {
  const { message, partitionMetadata, topic } = args;
  if (message.partition != null && !partitionMetadata.some((p) => p.partitionId === message.partition)) {
    throw new MissingPartition(
      `Partition ${message.partition} of topic ${topic} with partition count ${partitionMetadata.length} is not present in metadata`,
    );
  }
  const partition = defaultPartitioner(args);
  chosen.set(message, partition);
  return partition;
};

const kafka = new Kafka({
  clientId: "keyflow-strimzi-standin",
  brokers: BROKERS,
  logLevel: logLevel.WARN,
  connectionTimeout: 3000,
  requestTimeout: 10000,
  retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 8 },
});
const newProducer = (): Producer =>
  kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true, createPartitioner: recordingPartitioner });
let producer = newProducer();
let ready = false;

/**
 * The Java producer the real bridge runs splits what it sends into requests of at most
 * max.request.size (1 MiB) and refuses a single record over it; kafkajs sends one request per
 * broker whatever its size, which the broker refuses over message.max.bytes. So: chunks of at most
 * this many bytes, one send each.
 */
const MAX_REQUEST_BYTES = 1_048_576;
const CHUNK_BYTES = 512 * 1024;

const messageBytes = (m: Message) =>
  (m.value?.length ?? 0) + (m.key?.length ?? 0) + Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + ((v as Buffer)?.length ?? 0), 0) + 70;

/**
 * Errors after which kafkajs's idempotent producer never sends again (its sequence numbers no longer
 * match the broker's). The Java producer bumps its epoch; the stand-in starts a new producer.
 */
const FATAL_FOR_PRODUCER = new Set(["OUT_OF_ORDER_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH", "UNKNOWN_PRODUCER_ID", "INVALID_PRODUCER_ID_MAPPING"]);
let replacing: Promise<void> | undefined;

function replaceProducer(failed: Producer): Promise<void> {
  if (failed !== producer) return replacing ?? Promise.resolve();
  const next = newProducer();
  producer = next;
  replacing = (async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        await next.connect();
        console.error("kafka-rest front: started a new producer after a fatal sequence error");
        return;
      } catch (e) {
        console.error(`kafka-rest front: the new producer could not connect (attempt ${attempt}), retrying: ${(e as Error).message}`);
        await Bun.sleep(500);
      }
    }
  })().finally(() => (replacing = undefined));
  // Sends still in flight on the old producer finish (or fail) before it goes.
  setTimeout(() => void failed.disconnect().catch(() => {}), 30_000);
  return replacing;
}

type Offset = { partition: number; offset: number } | { error_code: number; message: string };

/**
 * The Java producer waits until a new topic's partitions have leaders before it sends; kafkajs sends
 * at once, gets NOT_LEADER for some partitions while others land, and its retry then fails with
 * OUT_OF_ORDER_SEQUENCE_NUMBER: the request answers 500 although part of it is in Kafka, and the
 * client's retry writes that part twice. So a topic is created (broker defaults) and its leaders
 * awaited before the first send to it.
 */
const admin = kafka.admin();
const topicsReady = new Map<string, Promise<void>>();

function topicReady(topic: string): Promise<void> {
  let ready = topicsReady.get(topic);
  if (!ready) {
    ready = admin
      .createTopics({ topics: [{ topic }], waitForLeaders: true })
      .then(() => undefined)
      .catch((e) => {
        // Not fatal: the send reports what is wrong (an invalid name, the broker away), and the next request tries again.
        topicsReady.delete(topic);
        console.error(`creating topic ${topic} failed: ${(e as Error).message}`);
      });
    topicsReady.set(topic, ready);
  }
  return ready;
}

async function produce(topic: string, messages: Message[]): Promise<Offset[]> {
  await topicReady(topic);
  const offsets: Offset[] = [];
  let chunk: Message[] = [];
  let chunkBytes = 0;
  const flush = async (): Promise<boolean> => {
    const sent = chunk;
    chunk = [];
    chunkBytes = 0;
    if (!sent.length) return true;
    const result = await produceChunk(topic, sent);
    offsets.push(...result);
    return !result.some((o) => "error_code" in o);
  };
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    const bytes = messageBytes(m);
    if (bytes > MAX_REQUEST_BYTES) {
      if (!(await flush())) return notSent(offsets, messages.length);
      const message = `The message is ${bytes} bytes when serialized which is larger than ${MAX_REQUEST_BYTES}, which is the value of the max.request.size configuration.`;
      offsets.push({ error_code: 413, message });
      return notSent(offsets, messages.length);
    }
    if (chunkBytes + bytes > CHUNK_BYTES && !(await flush())) return notSent(offsets, messages.length);
    chunk.push(m);
    chunkBytes += bytes;
  }
  if (!(await flush())) return notSent(offsets, messages.length);
  return offsets;
}

/** Pads `offsets` to `count` entries with an error: records after a failed one were not sent. */
function notSent(offsets: Offset[], count: number): Offset[] {
  while (offsets.length < count) offsets.push({ error_code: 500, message: "not sent: an earlier record of this request failed" });
  return offsets;
}

async function produceChunk(topic: string, messages: Message[]): Promise<Offset[]> {
  if (replacing) await replacing;
  const sender = producer;
  try {
    const metadata = await sender.send({ topic, messages, acks: -1 });
    const base = new Map(metadata.map((m) => [m.partition, Number(m.baseOffset)]));
    const seen = new Map<number, number>();
    return messages.map((m) => {
      const partition = chosen.get(m) ?? (m.partition as number);
      const n = seen.get(partition) ?? 0;
      seen.set(partition, n + 1);
      return { partition, offset: (base.get(partition) ?? 0) + n };
    });
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause ?? e;
    const message = cause instanceof Error ? cause.message : String(cause);
    const type = (cause as { type?: string }).type ?? (e as { type?: string }).type;
    const notFound = cause instanceof MissingPartition || type === "UNKNOWN_TOPIC_OR_PARTITION";
    console.error(`produce to ${topic} failed: ${message}`);
    if (type && FATAL_FOR_PRODUCER.has(type)) await replaceProducer(sender);
    return messages.map(() => ({ error_code: notFound ? 404 : 500, message }));
  }
}

// ---------------------------------------------------------------- HTTP

async function handleProduce(req: Request, url: URL, topic: string, partitionParam?: string): Promise<Response> {
  let pathPartition: number | undefined;
  if (partitionParam !== undefined) {
    pathPartition = Number(partitionParam);
    if (!/^\d+$/.test(partitionParam)) throw new HttpError(422, "Specified partition is not a valid number");
  }
  const mediaType = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const format = FORMATS[mediaType as keyof typeof FORMATS];
  if (!format) throw new HttpError(400, `Unsupported Content-Type "${mediaType}"; use one of ${Object.keys(FORMATS).join(", ")}`);
  let body: unknown;
  try {
    body = JSON.parse(await req.text());
  } catch {
    throw new HttpError(400, "Failed to decode request body as JSON");
  }
  const messages = toMessages(body, format, pathPartition);
  if (url.searchParams.get("async") === "true") {
    void produce(topic, messages);
    return new Response(null, { status: 204 });
  }
  return json(200, { offsets: await produce(topic, messages) });
}

async function route(req: Request): Promise<Response> {
  const url = new URL(req.url);
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (req.method === "GET" && parts.length === 1 && parts[0] === "healthy") return new Response(null, { status: 204 });
  if (req.method === "GET" && parts.length === 1 && parts[0] === "ready") {
    return ready ? new Response(null, { status: 204 }) : json(503, { error_code: 503, message: "producer not connected" });
  }
  if (req.method === "GET" && parts.length === 0) return json(200, { bridge_version: VERSION });
  if (parts[0] === "topics" && (parts.length === 2 || (parts.length === 4 && parts[2] === "partitions"))) {
    if (req.method !== "POST") throw new HttpError(405, `${req.method} is not supported by this stand-in; only POST (produce)`);
    return handleProduce(req, url, parts[1]!, parts[3]);
  }
  throw new HttpError(404, "Not Found");
}

const server = Bun.serve({
  hostname: HOST,
  port: PORT,
  async fetch(req) {
    try {
      return await route(req);
    } catch (e) {
      if (e instanceof HttpError) return errorResponse(e);
      console.error(e);
      return errorResponse(new HttpError(500, e instanceof Error ? e.message : String(e)));
    }
  },
});

async function connect(): Promise<void> {
  for (;;) {
    try {
      await producer.connect();
      await admin.connect();
      ready = true;
      console.log(`kafka-rest front (Strimzi bridge API) ${VERSION}: http://${HOST}:${server.port}, Kafka ${BROKERS.join(",")}`);
      return;
    } catch (e) {
      console.error(`connecting to Kafka failed, retrying: ${(e as Error).message}`);
      await Bun.sleep(1000);
    }
  }
}

async function shutdown(): Promise<void> {
  server.stop();
  await producer.disconnect().catch(() => {});
  await admin.disconnect().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

await connect();

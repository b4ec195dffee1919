import { SinkError, TOO_LARGE, type Sink } from "../../delivery/sink.ts";
import type { OutboxRecord, SinkRecord } from "../../actor/outbox.ts";
import { recordJson } from "../../delivery/records.ts";
import { splitActorName } from "../../actor/tenant.ts";
import { base64, isTransientStatus, post, statusError } from "../http.ts";
import { headerPairs, topicFor, type KafkaTopics } from "./records.ts";

export { DEFAULT_ALERTS_TOPIC, TENANT_PLACEHOLDER, TYPE_PLACEHOLDER } from "./records.ts";

export type KafkaDialect = "v2" | "v3";

export interface KafkaSinkOptions extends KafkaTopics {
  dialect: KafkaDialect;
  url: string;
  /** v3 only: the cluster id in /v3/clusters/{id}/…; Confluent Cloud's lkc-… */
  clusterId?: string;
  username?: string;
  password?: string;
  /** v2 only: send headers (the Strimzi bridge takes them; Confluent's v2 has none). */
  headers: boolean;
  timeoutMs: number;
  /**
   * Largest produce request body: a batch's records for one topic go out in as many requests as
   * needed, one after another (REST proxies and brokers refuse large requests; Kafka's
   * message.max.bytes is 1 MiB by default). Default 1 MiB.
   */
  maxRequestBytes?: number;
}

export const DEFAULT_MAX_REQUEST_BYTES = 1_048_576;

/** The records of one batch bound for one topic, with their places in the batch. */
interface TopicBatch {
  topic: string;
  records: SinkRecord[];
  indices: number[];
}

/**
 * The [start, end) ranges that split items of these encoded lengths into requests of at most
 * `maxBytes` (`perItem` bytes of framing each); an item larger than that goes alone.
 */
export function requestRanges(lengths: readonly number[], maxBytes: number, perItem = 1): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < lengths.length; i++) {
    const size = lengths[i]! + perItem;
    if (i > start && bytes + size > maxBytes) {
      ranges.push([start, i]);
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (lengths.length) ranges.push([start, lengths.length]);
  return ranges;
}

/**
 * One request of several failed: rethrown with its index in the whole list. A failure of a later
 * request as a whole says nothing about its records, but the earlier requests landed: reported as
 * transient at its first record, so that the records before count as delivered and the rest is
 * sent again (as the first request then, where a permanent failure is halved to find its record).
 */
function shifted(error: unknown, start: number, what: string): SinkError {
  const e = error instanceof SinkError ? error : new SinkError(`${what}: ${(error as Error)?.message ?? error}`, false);
  if (e.index !== undefined) return new SinkError(e.message, e.permanent, e.index + start, e.tooLarge);
  if (start === 0 || e.tooLarge) return new SinkError(e.message, e.permanent, e.tooLarge ? start : undefined, e.tooLarge);
  return new SinkError(e.message, false, start);
}

/** A per-record error code and message of a REST proxy: permanent unless 5xx/429/408 or 404 (metadata not there yet). */
function recordError(what: string, code: number, message: string, index: number): SinkError {
  const status = code >= 1000 ? Math.floor(code / 100) : code;
  const tooLarge = status === 413 || TOO_LARGE.test(message);
  const permanent = status !== 404 && !isTransientStatus(status);
  return new SinkError(`${what}: record ${index}: ${code} ${message}`.trim(), permanent, index, tooLarge);
}

/** A v3 records:batch entry with the record's JSON as its value (spliced in: built once per record). */
function v3Entry(r: SinkRecord, id: number): string {
  const { tenant, key } = splitActorName(r.key);
  const rest = JSON.stringify({ id: String(id), key: { type: "STRING", data: key }, headers: headerPairs(r, tenant).map(([name, value]) => ({ name, value: base64(value) })) });
  return `${rest.slice(0, -1)},"value":{"type":"JSON","data":${recordJson(r)}}}`;
}

/**
 * Kafka over HTTP: the REST Proxy v2 records API (Strimzi Kafka Bridge, Confluent REST Proxy,
 * Redpanda, Karapace) or v3 (Confluent Cloud). The message key
 * is the client's key (never the actor name), so one key's records stay in one partition, in order;
 * event_id, tenant and request-id are in headers and in the value. A batch is one produce request per topic
 * (the topics' requests concurrently), each with its records in outbox order, split into several in
 * turn when over `maxRequestBytes`.
 */
export class KafkaSink implements Sink {
  readonly name = "kafka";
  private readonly authorization: Record<string, string>;

  constructor(private readonly opts: KafkaSinkOptions) {
    this.authorization =
      opts.username === undefined ? {} : { authorization: `Basic ${base64(`${opts.username}:${opts.password ?? ""}`)}` };
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const topics = new Map<string, TopicBatch>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.kind === "dead_letter") continue;
      const topic = topicFor(this.opts, r, splitActorName(r.key).tenant);
      let batch = topics.get(topic);
      if (!batch) topics.set(topic, (batch = { topic, records: [], indices: [] }));
      batch.records.push(r);
      batch.indices.push(i);
    }
    const failures = await Promise.all(
      [...topics.values()].map(async (batch) => {
        try {
          await this.produceTopic(batch);
          return undefined;
        } catch (error) {
          const failure = error instanceof SinkError ? error : new SinkError(`kafka: ${(error as Error)?.message}`, false);
          // Where in the batch this topic's failure begins (a whole-request failure: at its first record).
          const at = batch.indices[failure.index ?? 0]!;
          // A permanent whole-request failure names no record: the channel halves the batch to find it.
          return { failure, at, index: failure.index === undefined && failure.permanent && !failure.tooLarge ? undefined : at };
        }
      }),
    );
    // Every record before the earliest failure is in Kafka (each topic's request writes its records in order).
    let earliest: { failure: SinkError; at: number; index: number | undefined } | undefined;
    for (const f of failures) if (f && (!earliest || f.at < earliest.at)) earliest = f;
    if (earliest) throw new SinkError(earliest.failure.message, earliest.failure.permanent, earliest.index, earliest.failure.tooLarge);
  }

  private get maxRequestBytes(): number {
    return this.opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  }

  /** One topic's records (v2 or v3) in produce requests of at most maxRequestBytes, one after another. */
  private async produceTopic({ topic, records }: TopicBatch): Promise<void> {
    const v2 = this.opts.dialect === "v2";
    const encoded = records.map((r, i) => (v2 ? this.v2Record(r) : v3Entry(r, i)));
    const open = v2 ? '{"records":[' : '{"entries":[';
    const what = `kafka ${topic}`;
    for (const [start, end] of requestRanges(encoded.map((e) => e.length), this.maxRequestBytes - open.length - 2)) {
      const body = `${open}${encoded.slice(start, end).join(",")}]}`;
      try {
        await (v2 ? this.postV2(topic, body) : this.postV3(topic, body));
      } catch (error) {
        // v3 entry ids are positions among the topic's records: a record's failure already carries its index.
        throw !v2 && error instanceof SinkError && error.index !== undefined ? error : shifted(error, start, what);
      }
    }
  }

  /**
   * A v2 record in the binary embedded format, which puts the key and value bytes in Kafka as they
   * are (the json format would write the key as a JSON string, quotes included).
   */
  private v2Record(r: SinkRecord): string {
    const { tenant, key } = splitActorName(r.key);
    const record: { key: string; value: string; headers?: Array<{ key: string; value: string }> } = { key: base64(key), value: base64(recordJson(r)) };
    if (this.opts.headers) record.headers = headerPairs(r, tenant).map(([key, value]) => ({ key, value: base64(value) }));
    return JSON.stringify(record);
  }

  private async postV2(topic: string, body: string): Promise<void> {
    const what = `kafka ${topic}`;
    const res = await post(
      `${this.opts.url}/topics/${encodeURIComponent(topic)}`,
      {
        headers: { "content-type": "application/vnd.kafka.binary.v2+json", accept: "application/vnd.kafka.v2+json", ...this.authorization },
        body,
      },
      this.opts.timeoutMs,
      what,
    );
    if (!res.ok) throw await statusError(res, what);
    // 200 even when records fail: each offset entry carries its own error.
    const { offsets } = (await res.json()) as { offsets: Array<{ error_code?: number; message?: string; error?: string }> };
    const failed = offsets.findIndex((o) => o.error_code);
    if (failed >= 0) {
      const o = offsets[failed]!;
      throw recordError(what, o.error_code!, o.message ?? o.error ?? "", failed);
    }
  }

  private async postV3(topic: string, body: string): Promise<void> {
    const what = `kafka ${topic}`;
    const url = `${this.opts.url}/v3/clusters/${encodeURIComponent(this.opts.clusterId ?? "")}/topics/${encodeURIComponent(topic)}/records:batch`;
    const res = await post(url, { headers: { "content-type": "application/json", ...this.authorization }, body }, this.opts.timeoutMs, what);
    if (!res.ok && res.status !== 207) throw await statusError(res, what);
    const { failures = [] } = (await res.json()) as { failures?: Array<{ id: string; error_code: number; message?: string }> };
    if (!failures.length) return;
    const first = failures.reduce((a, b) => (Number(a.id) <= Number(b.id) ? a : b));
    throw recordError(what, first.error_code, first.message ?? "", Number(first.id));
  }
}

import { Kafka } from "@upstash/kafka";
import { SinkError, type Sink } from "../../delivery/sink.ts";
import type { EventRecord, OutboxRecord, WindowRecord } from "../../actor/outbox.ts";
import { recordJson, recordView } from "../../delivery/records.ts";
import { base64, isTransientStatus, post, statusError } from "../http.ts";

export type KafkaDialect = "v2" | "v3" | "upstash";

export interface KafkaSinkOptions {
  dialect: KafkaDialect;
  url: string;
  /** v3 only: the cluster id in /v3/clusters/{id}/…; Confluent Cloud's lkc-… */
  clusterId?: string;
  username?: string;
  password?: string;
  /** Topic of events; "{type}" is replaced by the event type (one topic per type). */
  topic: string;
  windowsTopic: string;
  /** v2 only: send headers (the Strimzi bridge takes them; Confluent's v2 has none). */
  headers: boolean;
  timeoutMs: number;
}

/** The records of one batch bound for one topic, with their places in the batch. */
interface TopicBatch {
  topic: string;
  records: Array<EventRecord | WindowRecord>;
  indices: number[];
}

/** Kafka topic names allow [a-zA-Z0-9._-]; event types may also hold ':'. */
function topicFor(opts: KafkaSinkOptions, record: EventRecord | WindowRecord): string {
  if (record.kind === "window") return opts.windowsTopic;
  if (!opts.topic.includes("{type}")) return opts.topic;
  return opts.topic.replace("{type}", record.type.replace(/[^a-zA-Z0-9._-]/g, "_"));
}

/** Header name/value pairs: event_id and event_type for an event, the window's identity for a window. */
function headerPairs(record: EventRecord | WindowRecord): Array<[string, string]> {
  return record.kind === "event"
    ? [["event_id", record.id], ["event_type", record.type]]
    : [["window", `${record.spec}:${record.start}:${record.revision}`]];
}

/**
 * Kafka over HTTP: the REST Proxy v2 records API (Strimzi Kafka Bridge, Confluent REST Proxy,
 * Redpanda, Karapace), v3 (Confluent Cloud) or Upstash's dialect (@upstash/kafka). The message key
 * is the actor key, so one key's records stay in one partition, in order; event_id is in a header
 * and in the value. A batch is one produce request per topic (the topics' requests concurrently),
 * each with its records in outbox order; Upstash's API takes every topic in one request.
 */
export class KafkaSink implements Sink {
  readonly name = "kafka";
  private readonly upstash: ReturnType<Kafka["producer"]> | undefined;
  private readonly authorization: Record<string, string>;

  constructor(private readonly opts: KafkaSinkOptions) {
    if (opts.dialect === "upstash") {
      this.upstash = new Kafka({ url: opts.url, username: opts.username ?? "", password: opts.password ?? "" }).producer();
    }
    this.authorization =
      opts.username === undefined ? {} : { authorization: `Basic ${base64(`${opts.username}:${opts.password ?? ""}`)}` };
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const topics = new Map<string, TopicBatch>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.kind === "dead_letter") continue;
      const topic = topicFor(this.opts, r);
      let batch = topics.get(topic);
      if (!batch) topics.set(topic, (batch = { topic, records: [], indices: [] }));
      batch.records.push(r);
      batch.indices.push(i);
    }
    if (!topics.size) return;
    if (this.opts.dialect === "upstash") return this.produceUpstash([...topics.values()]);
    const failures = await Promise.all(
      [...topics.values()].map(async (batch) => {
        try {
          await (this.opts.dialect === "v2" ? this.produceV2(batch) : this.produceV3(batch));
          return undefined;
        } catch (error) {
          const failure = error instanceof SinkError ? error : new SinkError(`kafka: ${(error as Error)?.message}`, false);
          // Where in the batch this topic's failure begins (a whole-request failure: at its first record).
          const at = batch.indices[failure.index ?? 0]!;
          // A permanent whole-request failure names no record: the channel halves the batch to find it.
          return { failure, at, index: failure.index === undefined && failure.permanent ? undefined : at };
        }
      }),
    );
    // Every record before the earliest failure is in Kafka (each topic's request writes its records in order).
    let earliest: { failure: SinkError; at: number; index: number | undefined } | undefined;
    for (const f of failures) if (f && (!earliest || f.at < earliest.at)) earliest = f;
    if (earliest) throw new SinkError(earliest.failure.message, earliest.failure.permanent, earliest.index);
  }

  private async produceUpstash(batches: TopicBatch[]): Promise<void> {
    const messages = batches.flatMap(({ topic, records }) =>
      records.map((r) => ({
        topic,
        key: r.key,
        value: recordView(r),
        headers: headerPairs(r).map(([key, value]) => ({ key, value })),
      })),
    );
    try {
      await this.upstash!.produceMany(messages);
    } catch (error) {
      const text = (error as Error)?.message ?? String(error);
      const status = Number(/\b([45]\d\d)\b/.exec(text)?.[1] ?? 0);
      throw new SinkError(`kafka (upstash): ${text}`, status > 0 && !isTransientStatus(status));
    }
  }

  private async produceV2({ topic, records }: TopicBatch): Promise<void> {
    // The binary embedded format puts the key and value bytes in Kafka as they are (the json format
    // would write the key as a JSON string, quotes included).
    const withHeaders = this.opts.headers;
    const body = JSON.stringify({
      records: records.map((r) => {
        const record: { key: string; value: string; headers?: Array<{ key: string; value: string }> } = {
          key: base64(r.key),
          value: base64(recordJson(r)),
        };
        if (withHeaders) record.headers = headerPairs(r).map(([key, value]) => ({ key, value: base64(value) }));
        return record;
      }),
    });
    const res = await post(
      `${this.opts.url}/topics/${encodeURIComponent(topic)}`,
      {
        headers: { "content-type": "application/vnd.kafka.binary.v2+json", accept: "application/vnd.kafka.v2+json", ...this.authorization },
        body,
      },
      this.opts.timeoutMs,
      `kafka ${topic}`,
    );
    if (!res.ok) throw await statusError(res, `kafka ${topic}`);
    // 200 even when records fail: each offset entry carries its own error.
    const { offsets } = (await res.json()) as { offsets: Array<{ error_code?: number; message?: string; error?: string }> };
    const failed = offsets.findIndex((o) => o.error_code);
    if (failed >= 0) {
      const o = offsets[failed]!;
      const code = o.error_code!;
      // 404 is an unknown topic or partition (metadata not there yet): worth retrying.
      const permanent = code !== 404 && !isTransientStatus(Math.floor(code >= 1000 ? code / 100 : code));
      throw new SinkError(`kafka ${topic}: record ${failed}: ${code} ${o.message ?? o.error ?? ""}`.trim(), permanent, failed);
    }
  }

  private async produceV3({ topic, records }: TopicBatch): Promise<void> {
    const entries = records.map((r, i) => ({
      id: String(i),
      key: { type: "STRING", data: r.key },
      value: { type: "JSON", data: recordView(r) },
      headers: headerPairs(r).map(([name, value]) => ({ name, value: base64(value) })),
    }));
    const url = `${this.opts.url}/v3/clusters/${encodeURIComponent(this.opts.clusterId ?? "")}/topics/${encodeURIComponent(topic)}/records:batch`;
    const res = await post(
      url,
      { headers: { "content-type": "application/json", ...this.authorization }, body: JSON.stringify({ entries }) },
      this.opts.timeoutMs,
      `kafka ${topic}`,
    );
    if (!res.ok && res.status !== 207) throw await statusError(res, `kafka ${topic}`);
    const { failures = [] } = (await res.json()) as { failures?: Array<{ id: string; error_code: number; message?: string }> };
    if (!failures.length) return;
    const first = failures.reduce((a, b) => (Number(a.id) <= Number(b.id) ? a : b));
    const status = first.error_code >= 1000 ? Math.floor(first.error_code / 100) : first.error_code;
    throw new SinkError(`kafka ${topic}: record ${first.id}: ${first.error_code} ${first.message ?? ""}`.trim(), !isTransientStatus(status), Number(first.id));
  }
}

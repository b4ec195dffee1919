import { Kafka } from "@upstash/kafka";
import { SinkError, type Sink } from "../../delivery/sink.ts";
import type { EventRecord, OutboxRecord, WindowRecord } from "../../actor/outbox.ts";
import { recordView } from "../../delivery/records.ts";
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

interface Message {
  topic: string;
  key: string;
  value: unknown;
  headers: Array<{ name: string; value: string }>;
}

/** Kafka topic names allow [a-zA-Z0-9._-]; event types may also hold ':'. */
function topicFor(opts: KafkaSinkOptions, record: EventRecord | WindowRecord): string {
  if (record.kind === "window") return opts.windowsTopic;
  return opts.topic.replace("{type}", record.type.replace(/[^a-zA-Z0-9._-]/g, "_"));
}

function message(opts: KafkaSinkOptions, record: EventRecord | WindowRecord): Message {
  const headers =
    record.kind === "event"
      ? [{ name: "event_id", value: record.id }, { name: "event_type", value: record.type }]
      : [{ name: "window", value: `${record.spec}:${record.start}:${record.revision}` }];
  return { topic: topicFor(opts, record), key: record.key, value: recordView(record), headers };
}

/**
 * Kafka over HTTP: the REST Proxy v2 records API (Strimzi Kafka Bridge, Confluent REST Proxy,
 * Redpanda, Karapace), v3 (Confluent Cloud) or Upstash's dialect (@upstash/kafka). The message key
 * is the actor key, so one key's records stay in one partition, in order; event_id is in a header
 * and in the value. Records go out in outbox order, one request per run of records with the same topic.
 */
export class KafkaSink implements Sink {
  readonly name = "kafka";
  private readonly upstash: ReturnType<Kafka["producer"]> | undefined;

  constructor(private readonly opts: KafkaSinkOptions) {
    if (opts.dialect === "upstash") {
      this.upstash = new Kafka({ url: opts.url, username: opts.username ?? "", password: opts.password ?? "" }).producer();
    }
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const messages: Array<{ index: number; message: Message }> = [];
    records.forEach((r, index) => {
      if (r.kind !== "dead_letter") messages.push({ index, message: message(this.opts, r) });
    });
    for (let i = 0; i < messages.length; ) {
      let j = i + 1;
      while (j < messages.length && messages[j]!.message.topic === messages[i]!.message.topic) j++;
      const run = messages.slice(i, j);
      try {
        await this.produce(run.map((m) => m.message));
      } catch (error) {
        const failure = error instanceof SinkError ? error : new SinkError(`kafka: ${(error as Error)?.message}`, false);
        // The run's records before the failing one are in Kafka; report where the failure begins.
        throw new SinkError(failure.message, failure.permanent, run[failure.index ?? 0]!.index);
      }
      i = j;
    }
  }

  private auth(): Record<string, string> {
    if (this.opts.username === undefined) return {};
    return { authorization: `Basic ${base64(`${this.opts.username}:${this.opts.password ?? ""}`)}` };
  }

  private async produce(batch: Message[]): Promise<void> {
    const topic = batch[0]!.topic;
    if (this.opts.dialect === "v2") return this.produceV2(topic, batch);
    if (this.opts.dialect === "v3") return this.produceV3(topic, batch);
    try {
      await this.upstash!.produceMany(
        batch.map((m) => ({ topic, key: m.key, value: m.value, headers: m.headers.map((h) => ({ key: h.name, value: h.value })) })),
      );
    } catch (error) {
      const text = (error as Error)?.message ?? String(error);
      const status = Number(/\b([45]\d\d)\b/.exec(text)?.[1] ?? 0);
      throw new SinkError(`kafka (upstash): ${text}`, status > 0 && !isTransientStatus(status));
    }
  }

  private async produceV2(topic: string, batch: Message[]): Promise<void> {
    // The binary embedded format puts the key and value bytes in Kafka as they are (the json format
    // would write the key as a JSON string, quotes included).
    const body = {
      records: batch.map((m) => ({
        key: base64(m.key),
        value: base64(JSON.stringify(m.value)),
        ...(this.opts.headers ? { headers: m.headers.map((h) => ({ key: h.name, value: base64(h.value) })) } : {}),
      })),
    };
    const res = await post(
      `${this.opts.url}/topics/${encodeURIComponent(topic)}`,
      {
        headers: { "content-type": "application/vnd.kafka.binary.v2+json", accept: "application/vnd.kafka.v2+json", ...this.auth() },
        body: JSON.stringify(body),
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

  private async produceV3(topic: string, batch: Message[]): Promise<void> {
    const entries = batch.map((m, i) => ({
      id: String(i),
      key: { type: "STRING", data: m.key },
      value: { type: "JSON", data: m.value },
      headers: m.headers.map((h) => ({ name: h.name, value: base64(h.value) })),
    }));
    const url = `${this.opts.url}/v3/clusters/${encodeURIComponent(this.opts.clusterId ?? "")}/topics/${encodeURIComponent(topic)}/records:batch`;
    const res = await post(
      url,
      { headers: { "content-type": "application/json", ...this.auth() }, body: JSON.stringify({ entries }) },
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

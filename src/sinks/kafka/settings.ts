import { z } from "zod";
import type { EnvReader } from "../../settings/reader.ts";
import { httpUrl } from "../urls.ts";
import { DEFAULT_ALERTS_TOPIC, TENANT_PLACEHOLDER, TYPE_PLACEHOLDER, type KafkaTopics } from "./records.ts";
import { DEFAULT_MAX_REQUEST_BYTES, type KafkaSinkOptions } from "./sink.ts";

const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
/** The longest an event type (EVENT_TYPE, src/actor/event.ts) and a tenant name (TENANT_NAME) can be. */
const LONGEST_TYPE = "t".repeat(64);
const LONGEST_TENANT = "t".repeat(63);

/**
 * A topic name, or a template of one with `placeholders`: valid when every name it can make is a
 * Kafka topic name ([a-zA-Z0-9._-], at most 249 characters with the longest type and tenant).
 */
export function topicTemplateProblem(topic: string, placeholders: readonly string[]): string | undefined {
  let longest = topic;
  if (placeholders.includes(TYPE_PLACEHOLDER)) longest = longest.replaceAll(TYPE_PLACEHOLDER, LONGEST_TYPE);
  if (placeholders.includes(TENANT_PLACEHOLDER)) longest = longest.replaceAll(TENANT_PLACEHOLDER, LONGEST_TENANT);
  if (TOPIC.test(longest)) return undefined;
  const allowed = placeholders.length ? ` (and ${placeholders.join(", ")})` : "";
  if (!/^[a-zA-Z0-9._-]+$/.test(longest)) return `a Kafka topic name uses [a-zA-Z0-9._-]${allowed}`;
  const counted = placeholders.map((p) => `${p} as ${p === TYPE_PLACEHOLDER ? LONGEST_TYPE.length : LONGEST_TENANT.length}`);
  return `a Kafka topic name is at most 249 characters${counted.length ? ` (counting ${counted.join(" and ")}, the longest there is)` : ""}`;
}

/** Upstash's Kafka product was discontinued; its dialect (and @upstash/kafka) went with it. */
export const UPSTASH_KAFKA_GONE =
  "Upstash Kafka was discontinued and keyflow no longer speaks its API: set KEYFLOW_KAFKA_BROKERS (a native, exactly-once producer) or KEYFLOW_KAFKA_REST_URL with a REST proxy (KEYFLOW_KAFKA_DIALECT v2 or v3)";

/** KEYFLOW_KAFKA_REST_URL turns the Kafka sink on over HTTP. */
export function kafkaSettings(r: EnvReader, timeoutMs: number): KafkaSinkOptions | undefined {
  const upstashUrl = r.get("UPSTASH_KAFKA_REST_URL");
  if (upstashUrl) r.problem("UPSTASH_KAFKA_REST_URL", upstashUrl.value, UPSTASH_KAFKA_GONE);
  const found = r.get("KEYFLOW_KAFKA_REST_URL");
  if (!found) return undefined;
  if (r.get("KEYFLOW_KAFKA_BROKERS")) {
    r.problems.push(`KEYFLOW_KAFKA_BROKERS and ${found.name} are both set: set one (brokers for the native producer, the URL for a REST proxy)`);
  }
  const url = r.check(httpUrl, found.name, found.value);
  const dialectText = r.text("KEYFLOW_KAFKA_DIALECT", "v2");
  if (dialectText === "upstash") r.problem("KEYFLOW_KAFKA_DIALECT", dialectText, UPSTASH_KAFKA_GONE);
  const dialect = dialectText === "upstash" ? undefined : r.check(z.enum(["v2", "v3"], { error: 'must be "v2" or "v3"' }), "KEYFLOW_KAFKA_DIALECT", dialectText);
  const clusterId = dialect === "v3" ? r.required("KEYFLOW_KAFKA_DIALECT=v3", "KEYFLOW_KAFKA_CLUSTER_ID") : r.env.KEYFLOW_KAFKA_CLUSTER_ID;
  const username = r.get("KEYFLOW_KAFKA_USERNAME")?.value;
  const password = r.get("KEYFLOW_KAFKA_PASSWORD")?.value;
  const topics = topicSettings(r);
  const maxRequestBytes = maxRequestBytesSetting(r);
  if (!url || !dialect) return undefined;
  return {
    dialect,
    url: url.replace(/\/+$/, ""),
    clusterId,
    username,
    password,
    ...topics,
    headers: r.env.KEYFLOW_KAFKA_HEADERS !== "false",
    timeoutMs,
    maxRequestBytes,
  };
}

/** The topics of events, windows and alerts (KEYFLOW_KAFKA_TOPIC, …_WINDOWS_TOPIC, …_ALERTS_TOPIC): the same for both sinks. */
function topicSettings(r: EnvReader): Required<KafkaTopics> {
  const topic = r.text("KEYFLOW_KAFKA_TOPIC", "keyflow.events");
  const windowsTopic = r.text("KEYFLOW_KAFKA_WINDOWS_TOPIC", "keyflow.windows");
  const alertsTopic = r.text("KEYFLOW_KAFKA_ALERTS_TOPIC", DEFAULT_ALERTS_TOPIC);
  const topicProblem = topicTemplateProblem(topic, [TYPE_PLACEHOLDER, TENANT_PLACEHOLDER]);
  if (topicProblem) r.problem("KEYFLOW_KAFKA_TOPIC", topic, topicProblem);
  const windowsProblem = topicTemplateProblem(windowsTopic, [TENANT_PLACEHOLDER]);
  if (windowsProblem) r.problem("KEYFLOW_KAFKA_WINDOWS_TOPIC", windowsTopic, windowsProblem);
  const alertsProblem = topicTemplateProblem(alertsTopic, [TENANT_PLACEHOLDER]);
  if (alertsProblem) r.problem("KEYFLOW_KAFKA_ALERTS_TOPIC", alertsTopic, alertsProblem);
  return { topic, windowsTopic, alertsTopic };
}

function maxRequestBytesSetting(r: EnvReader): number {
  const maxRequestBytes = r.whole("KEYFLOW_KAFKA_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES);
  if (maxRequestBytes < 1024) r.problem("KEYFLOW_KAFKA_MAX_REQUEST_BYTES", String(maxRequestBytes), "must be at least 1024");
  return maxRequestBytes;
}

export const DEFAULT_PROGRESS_TOPIC = "keyflow.progress";
export type SaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512";

/** The native (transactional) producer's settings. */
export interface NativeKafkaOptions extends KafkaTopics {
  dialect: "native";
  /** host:port of the bootstrap brokers. */
  brokers: string[];
  /**
   * The producer's transactional.id: unique per server, stable across its restarts. Unset: an id
   * kept in the data directory (created on first start).
   */
  transactionalId?: string;
  /** KEYFLOW_DATA_DIR: where the default transactional id is kept. */
  dataDir: string;
  /**
   * The outbox survives a restart (KEYFLOW_STORAGE=sqlite). When it does not, outbox positions start
   * again at 0, so the progress of an earlier process must not count: each process then has an id
   * of its own.
   */
  durable: boolean;
  /** The compacted topic of per-actor progress, written in each transaction. */
  progressTopic: string;
  timeoutMs: number;
  /** The largest message (record batch) sent; a record larger than this alone is dead-lettered as too large. */
  maxRequestBytes: number;
  ssl: boolean;
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
}

/** A Kafka sink's settings: over a REST proxy, or the native producer. */
export type KafkaSettings = KafkaSinkOptions | NativeKafkaOptions;

const HOST_PORT = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]{0,252})|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/;
const TRANSACTIONAL_ID = /^[a-zA-Z0-9._-]{1,200}$/;

/** KEYFLOW_KAFKA_BROKERS (host:port[,host:port…]) turns on the native producer, with exactly-once delivery. */
export function kafkaNativeSettings(r: EnvReader, timeoutMs: number): NativeKafkaOptions | undefined {
  const list = r.get("KEYFLOW_KAFKA_BROKERS")?.value;
  if (list === undefined) return undefined;
  const brokers = list.split(",").map((b) => b.trim());
  const bad = brokers.find((b) => {
    const port = HOST_PORT.exec(b)?.[1];
    return port === undefined || Number(port) < 1 || Number(port) > 65535;
  });
  if (bad !== undefined) r.problem("KEYFLOW_KAFKA_BROKERS", list, `${JSON.stringify(bad)} is not host:port (a comma-separated list of host:port)`);
  const transactionalId = r.get("KEYFLOW_KAFKA_TRANSACTIONAL_ID")?.value;
  if (transactionalId !== undefined && !TRANSACTIONAL_ID.test(transactionalId)) {
    r.problem("KEYFLOW_KAFKA_TRANSACTIONAL_ID", transactionalId, "must be 1 to 200 characters of [a-zA-Z0-9._-]");
  }
  const progressTopic = r.text("KEYFLOW_KAFKA_PROGRESS_TOPIC", DEFAULT_PROGRESS_TOPIC);
  const progressProblem = topicTemplateProblem(progressTopic, []);
  if (progressProblem) r.problem("KEYFLOW_KAFKA_PROGRESS_TOPIC", progressTopic, progressProblem);
  const topics = topicSettings(r);
  const maxRequestBytes = maxRequestBytesSetting(r);
  const ssl = r.text("KEYFLOW_KAFKA_SSL", "false");
  if (ssl !== "true" && ssl !== "false") r.problem("KEYFLOW_KAFKA_SSL", ssl, 'must be "true" or "false"');
  const mechanism = r.get("KEYFLOW_KAFKA_SASL_MECHANISM");
  let sasl: NativeKafkaOptions["sasl"];
  if (mechanism) {
    const checked = r.check(
      z.enum(["plain", "scram-sha-256", "scram-sha-512"], { error: 'must be "plain", "scram-sha-256" or "scram-sha-512"' }),
      mechanism.name,
      mechanism.value,
    );
    const username = r.required("KEYFLOW_KAFKA_SASL_MECHANISM", "KEYFLOW_KAFKA_USERNAME");
    const password = r.required("KEYFLOW_KAFKA_SASL_MECHANISM", "KEYFLOW_KAFKA_PASSWORD");
    if (checked && username !== undefined && password !== undefined) sasl = { mechanism: checked, username, password };
  }
  return {
    dialect: "native",
    brokers,
    ...(transactionalId === undefined ? {} : { transactionalId }),
    dataDir: r.text("KEYFLOW_DATA_DIR", ".keyflow"),
    durable: r.text("KEYFLOW_STORAGE", "sqlite") !== "memory",
    progressTopic,
    ...topics,
    timeoutMs,
    maxRequestBytes,
    ssl: ssl === "true",
    ...(sasl ? { sasl } : {}),
  };
}

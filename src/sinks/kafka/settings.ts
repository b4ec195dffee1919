import { z } from "zod";
import type { EnvReader } from "../../settings/reader.ts";
import { httpUrl } from "../urls.ts";
import { DEFAULT_ALERTS_TOPIC, DEFAULT_MAX_REQUEST_BYTES, TENANT_PLACEHOLDER, TYPE_PLACEHOLDER, type KafkaSinkOptions } from "./sink.ts";

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

/** KEYFLOW_KAFKA_REST_URL (or UPSTASH_KAFKA_REST_URL) turns the Kafka sink on. */
export function kafkaSettings(r: EnvReader, timeoutMs: number): KafkaSinkOptions | undefined {
  const found = r.get("KEYFLOW_KAFKA_REST_URL", "UPSTASH_KAFKA_REST_URL");
  if (!found) return undefined;
  const url = r.check(httpUrl, found.name, found.value);
  const dialect = r.check(
    z.enum(["v2", "v3", "upstash"], { error: 'must be "v2", "v3" or "upstash"' }),
    "KEYFLOW_KAFKA_DIALECT",
    r.text("KEYFLOW_KAFKA_DIALECT", found.name === "UPSTASH_KAFKA_REST_URL" ? "upstash" : "v2"),
  );
  const clusterId = dialect === "v3" ? r.required("KEYFLOW_KAFKA_DIALECT=v3", "KEYFLOW_KAFKA_CLUSTER_ID") : r.env.KEYFLOW_KAFKA_CLUSTER_ID;
  const upstash = dialect === "upstash";
  const username = upstash
    ? r.required("KEYFLOW_KAFKA_DIALECT=upstash", "KEYFLOW_KAFKA_USERNAME", "UPSTASH_KAFKA_REST_USERNAME")
    : r.get("KEYFLOW_KAFKA_USERNAME")?.value;
  const password = upstash
    ? r.required("KEYFLOW_KAFKA_DIALECT=upstash", "KEYFLOW_KAFKA_PASSWORD", "UPSTASH_KAFKA_REST_PASSWORD")
    : r.get("KEYFLOW_KAFKA_PASSWORD")?.value;
  const topic = r.text("KEYFLOW_KAFKA_TOPIC", "keyflow.events");
  const windowsTopic = r.text("KEYFLOW_KAFKA_WINDOWS_TOPIC", "keyflow.windows");
  const alertsTopic = r.text("KEYFLOW_KAFKA_ALERTS_TOPIC", DEFAULT_ALERTS_TOPIC);
  const topicProblem = topicTemplateProblem(topic, [TYPE_PLACEHOLDER, TENANT_PLACEHOLDER]);
  if (topicProblem) r.problem("KEYFLOW_KAFKA_TOPIC", topic, topicProblem);
  const windowsProblem = topicTemplateProblem(windowsTopic, [TENANT_PLACEHOLDER]);
  if (windowsProblem) r.problem("KEYFLOW_KAFKA_WINDOWS_TOPIC", windowsTopic, windowsProblem);
  const alertsProblem = topicTemplateProblem(alertsTopic, [TENANT_PLACEHOLDER]);
  if (alertsProblem) r.problem("KEYFLOW_KAFKA_ALERTS_TOPIC", alertsTopic, alertsProblem);
  const maxRequestBytes = r.whole("KEYFLOW_KAFKA_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES);
  if (maxRequestBytes < 1024) r.problem("KEYFLOW_KAFKA_MAX_REQUEST_BYTES", String(maxRequestBytes), "must be at least 1024");
  if (!url || !dialect) return undefined;
  return {
    dialect,
    url: url.replace(/\/+$/, ""),
    clusterId,
    username,
    password,
    topic,
    windowsTopic,
    alertsTopic,
    headers: r.env.KEYFLOW_KAFKA_HEADERS !== "false",
    timeoutMs,
    maxRequestBytes,
  };
}

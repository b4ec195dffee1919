import type { SinkRecord } from "../../actor/outbox.ts";
import { recordJson } from "../../delivery/records.ts";
import { splitActorName } from "../../actor/tenant.ts";

/** The placeholders a topic name may hold (validated in settings.ts). */
export const TYPE_PLACEHOLDER = "{type}";
export const TENANT_PLACEHOLDER = "{tenant}";
export const DEFAULT_ALERTS_TOPIC = "keyflow.alerts";

/** Where each kind of record goes: the same for the REST and the native sink. */
export interface KafkaTopics {
  /**
   * Topic of events; "{type}" is replaced by the event type (one topic per type), "{tenant}" by the
   * record's tenant (one topic per tenant).
   */
  topic: string;
  /** Topic of windows; "{tenant}" is replaced by the record's tenant. */
  windowsTopic: string;
  /** Topic of alerts (detection rules that fired); "{tenant}" is replaced by the record's tenant. Default keyflow.alerts. */
  alertsTopic?: string;
}

/**
 * Kafka topic names allow [a-zA-Z0-9._-]; event types may also hold ':'. Tenant names
 * ([a-z0-9_-]) go in as they are.
 */
export function topicFor(topics: KafkaTopics, record: SinkRecord, tenant: string): string {
  let topic = record.kind === "window" ? topics.windowsTopic : record.kind === "alert" ? (topics.alertsTopic ?? DEFAULT_ALERTS_TOPIC) : topics.topic;
  if (record.kind === "event" && topic.includes(TYPE_PLACEHOLDER)) topic = topic.replaceAll(TYPE_PLACEHOLDER, record.type.replace(/[^a-zA-Z0-9._-]/g, "_"));
  if (topic.includes(TENANT_PLACEHOLDER)) topic = topic.replaceAll(TENANT_PLACEHOLDER, tenant);
  return topic;
}

/**
 * Header name/value pairs: event_id and event_type for an event, the window's identity for a
 * window, the rule, window and triggering event_id (if any) for an alert; then the tenant on every
 * record, and request-id on an event that has one.
 */
export function headerPairs(record: SinkRecord, tenant: string): Array<[string, string]> {
  if (record.kind === "window") {
    const pairs: Array<[string, string]> = [["window", `${record.spec}:${record.start}:${record.revision}`]];
    if (record.type !== undefined) pairs.push(["event_type", record.type]);
    if (record.retracted) pairs.push(["retracted", "true"]);
    pairs.push(["tenant", tenant]);
    return pairs;
  }
  if (record.kind === "alert") {
    const pairs: Array<[string, string]> = [["rule", record.rule], ["window", `${record.window.shape}:${record.window.start}`]];
    if (record.eventId) pairs.push(["event_id", record.eventId]);
    pairs.push(["tenant", tenant]);
    return pairs;
  }
  const pairs: Array<[string, string]> = [["event_id", record.id], ["event_type", record.type], ["tenant", tenant]];
  if (record.requestId !== undefined) pairs.push(["request-id", record.requestId]);
  return pairs;
}

/** A record as a Kafka message: the client's key (never the actor name), the record's JSON, headers. */
export interface KafkaMessage {
  topic: string;
  key: string;
  value: string;
  headers: Array<[string, string]>;
}

export function kafkaMessage(topics: KafkaTopics, record: SinkRecord): KafkaMessage {
  const { tenant, key } = splitActorName(record.key);
  return { topic: topicFor(topics, record, tenant), key, value: recordJson(record), headers: headerPairs(record, tenant) };
}

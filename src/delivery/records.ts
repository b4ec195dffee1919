import type { EventRecord, SinkRecord, WindowRecord } from "../actor/outbox.ts";
import type { AlertRecord } from "../actor/analytics.ts";
import { alertIdempotencyKey } from "../actor/detect.ts";
import type { Aggregate } from "../actor/windows.ts";
import { splitActorName } from "../actor/tenant.ts";

/** The record wire format: what every sink writes and the API shows, in snake_case with ISO-8601 times. */

let lastMs = NaN;
let lastIso = "";
/** ISO-8601 of epoch ms; the events of one ingest share their arrival time, so the last one is kept. */
export function iso(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}

export interface AggregateView {
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  avg: number | null;
}

export function aggregateView(agg: Aggregate): AggregateView {
  return { count: agg.count, sum: agg.sum, min: agg.min, max: agg.max, avg: agg.valued ? agg.sum / agg.valued : null };
}

export interface EventRecordView {
  kind: "event";
  tenant: string;
  event_id: string;
  event_type: string;
  key: string;
  timestamp: string;
  received_at: string;
  late: boolean;
  value?: number;
  properties?: Record<string, unknown>;
  /** The correlation ID of the request that brought the event (its x-request-id). */
  request_id?: string;
  /** Fields enrichment rules added (keyflow.config.json). */
  enriched?: Record<string, string | number | boolean>;
}

export interface WindowRecordView extends AggregateView {
  kind: "window";
  tenant: string;
  key: string;
  size: string;
  start: string;
  end: string;
  revision: number;
  final: boolean;
  by_type: Record<string, AggregateView>;
}

export interface AlertRecordView {
  kind: "alert";
  tenant: string;
  key: string;
  rule: string;
  window: { shape: string; start: string; end: string };
  aggregate: string;
  value: number;
  baseline?: { mean: number; stddev: number; windows: number } | { previous: number };
  /** The event whose arrival made the rule fire; null when the wall clock closed the window. */
  event_id: string | null;
  fired_at: string;
}

export type RecordView = EventRecordView | WindowRecordView;

export function alertRecordView(alert: AlertRecord): AlertRecordView {
  const { tenant, key } = splitActorName(alert.key);
  const view: AlertRecordView = {
    kind: "alert",
    tenant,
    key,
    rule: alert.rule,
    window: { shape: alert.window.shape, start: iso(alert.window.start), end: iso(alert.window.end) },
    aggregate: alert.aggregate,
    value: alert.value,
    event_id: alert.eventId || null,
    fired_at: iso(alert.firedAt),
  };
  if (alert.baseline !== undefined) view.baseline = alert.baseline;
  return view;
}

export function eventRecordView(record: EventRecord): EventRecordView {
  const { tenant, key } = splitActorName(record.key);
  const view: EventRecordView = {
    kind: "event",
    tenant,
    event_id: record.id,
    event_type: record.type,
    key,
    timestamp: iso(record.ts),
    received_at: iso(record.receivedAt),
    late: record.late,
  };
  if (record.value !== undefined) view.value = record.value;
  if (record.properties !== undefined) view.properties = record.properties;
  if (record.requestId !== undefined) view.request_id = record.requestId;
  if (record.enriched !== undefined) view.enriched = record.enriched;
  return view;
}

export function windowRecordView(record: WindowRecord): WindowRecordView {
  const { tenant, key } = splitActorName(record.key);
  return {
    kind: "window",
    tenant,
    key,
    size: record.spec,
    start: iso(record.start),
    end: iso(record.end),
    revision: record.revision,
    final: record.final,
    ...aggregateView(record.all),
    by_type: Object.fromEntries(Object.entries(record.types).map(([t, a]) => [t, aggregateView(a)])),
  };
}

export function recordView(record: EventRecord | WindowRecord): RecordView;
export function recordView(record: EventRecord | WindowRecord | AlertRecord): RecordView | AlertRecordView;
export function recordView(record: EventRecord | WindowRecord | AlertRecord): RecordView | AlertRecordView {
  return record.kind === "event" ? eventRecordView(record) : record.kind === "window" ? windowRecordView(record) : alertRecordView(record);
}

/** recordView as JSON text, built once per record however many sinks send it (records never change). */
const jsonOf = new WeakMap<object, string>();
export function recordJson(record: EventRecord | WindowRecord | AlertRecord): string {
  let text = jsonOf.get(record);
  if (text === undefined) jsonOf.set(record, (text = JSON.stringify(recordView(record))));
  return text;
}

/**
 * What an idempotent receiver dedupes a record on, unique across tenants and keys: a JSON array of
 * tenant, client key and event id for an event (`["default","user-1","evt-1"]`), or of tenant, key,
 * window size, start (epoch ms) and revision for a window (`["acme","user-1","1m",1795255200000,2]`),
 * or of tenant, key, rule, window shape and start for an alert (alertIdempotencyKey:
 * `["default","user-1","burst","1m",1795255200000]`, one per rule and window). JSON quotes every
 * part, so no key or id (which may hold any printable character, '|' and '"' included) can make two
 * records' keys equal; an event's has 3 parts, and an alert's a string where a window's has a number.
 */
export function idempotencyKey(record: SinkRecord): string {
  if (record.kind === "alert") return alertIdempotencyKey(record);
  const { tenant, key } = splitActorName(record.key);
  return JSON.stringify(record.kind === "event" ? [tenant, key, record.id] : [tenant, key, record.spec, record.start, record.revision]);
}

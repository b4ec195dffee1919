import type { EventRecord, SinkRecord, WindowRecord } from "../actor/outbox.ts";
import type { AlertRecord } from "../actor/analytics.ts";
import { alertIdempotencyKey } from "../actor/detect.ts";
import type { Aggregate } from "../actor/windows.ts";
import type { ExtrasView } from "../actor/window-extras.ts";
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
  /** Distinct values of the type's distinct path (keyflow.config.json): exact up to its exact_up_to, then a HyperLogLog estimate (1.6% standard error). */
  distinct?: number;
  /** The measure's percentiles, by name ("p99"), from a DDSketch (1% relative error); null without measured events. */
  percentiles?: Record<string, number | null>;
}

export function aggregateView(agg: Aggregate, extras?: ExtrasView): AggregateView {
  const view: AggregateView = { count: agg.count, sum: agg.sum, min: agg.min, max: agg.max, avg: agg.valued ? agg.sum / agg.valued : null };
  if (extras?.distinct !== undefined) view.distinct = extras.distinct;
  if (extras?.percentiles) view.percentiles = percentilesView(extras.percentiles);
  return view;
}

/** [[50, 12], [99, 40]] -> {"p50": 12, "p99": 40} (names from the configuration, never from clients). */
export function percentilesView(pairs: ReadonlyArray<[number, number | null]>): Record<string, number | null> {
  return Object.fromEntries(pairs.map(([p, v]) => [`p${p}`, v]));
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
  shape: "tumbling" | "hopping" | "sliding" | "session";
  /** A type's own window (keyflow.config.json): the event type it covers alone. */
  event_type?: string;
  /** A session window superseded by a merge or an extension backwards: delete it (by key, event_type, size, start and end). */
  retracted?: true;
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
  const extras = record.extras;
  const view: WindowRecordView = {
    kind: "window",
    tenant,
    key,
    size: record.spec,
    start: iso(record.start),
    end: iso(record.end),
    revision: record.revision,
    final: record.final,
    shape: shapeOf(record),
    ...aggregateView(record.all, record.type !== undefined && extras ? ownEntry(extras, record.type) : undefined),
    by_type: Object.fromEntries(Object.entries(record.types).map(([t, a]) => [t, aggregateView(a, extras && ownEntry(extras, t))])),
  };
  if (record.type !== undefined) view.event_type = record.type;
  if (record.retracted) view.retracted = true;
  return view;
}

/** A record's shape kind; records from before it was kept are the key's windows: hopping when the spec has a hop. */
export function shapeOf(record: Pick<WindowRecord, "shape" | "spec">): WindowRecordView["shape"] {
  return record.shape ?? (record.spec.includes("/") ? "hopping" : "tumbling");
}

/** An own entry of an object keyed by client data (never one from the prototype). */
function ownEntry<T>(byType: Record<string, T>, type: string): T | undefined {
  return Object.hasOwn(byType, type) ? byType[type] : undefined;
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
 * window size, start (epoch ms) and revision for a window (`["acme","user-1","1m",1795255200000,2]`; a type's own
 * window adds its type and end and whether it is a retraction: `["acme","user-1","session:30m","buy",1795255200000,1795255260000,3,"upserted"]`),
 * or of tenant, key, rule, window shape and start for an alert (alertIdempotencyKey:
 * `["default","user-1","burst","1m",1795255200000]`, one per rule and window). JSON quotes every
 * part, so no key or id (which may hold any printable character, '|' and '"' included) can make two
 * records' keys equal; an event's has 3 parts, and an alert's a string where a window's has a number.
 */
export function idempotencyKey(record: SinkRecord): string {
  if (record.kind === "alert") return alertIdempotencyKey(record);
  const { tenant, key } = splitActorName(record.key);
  if (record.kind === "event") return JSON.stringify([tenant, key, record.id]);
  // A type's own window names its type and end (a session's identity), and a retraction says so.
  if (record.type !== undefined) return JSON.stringify([tenant, key, record.spec, record.type, record.start, record.end, record.revision, record.retracted ? "retracted" : "upserted"]);
  return JSON.stringify([tenant, key, record.spec, record.start, record.revision]);
}

/**
 * The API's JSON, typed by hand for the client: src/client imports nothing from the server's layers
 * (tests/unit/layout.test.ts), so these restate src/http/schemas.ts, and
 * tests/unit/client-types.test.ts checks at compile time that each matches its zod schema.
 * Times are ISO-8601 strings in UTC.
 */

/** What `track()` takes: the API's event fields. `key` (else `user_id`) names the actor. */
export type TrackEvent = TrackEventFields & ({ key: string | number; user_id?: string | number } | { key?: undefined; user_id: string | number });

export interface TrackEventFields {
  /** `[a-z0-9_.:-]{1,64}` */
  event_type: string;
  /** The dedupe key; the client assigns a UUIDv7 when absent (so a retry is a duplicate, never a second event). */
  event_id?: string;
  /** Event time: ISO-8601, epoch milliseconds or a Date; the client sets the time of `track()` when absent. */
  timestamp?: string | number | Date;
  /** The measure for sum/min/max/avg (else `properties.amount` when it is a number). */
  value?: number;
  /** At most 16 levels deep and 32 KiB encoded. */
  properties?: Record<string, unknown>;
}

/** An event as the client sends it: its ID and time fixed at `track()`. */
export interface SentEvent {
  event_id: string;
  event_type: string;
  key?: string | number;
  user_id?: string | number;
  timestamp: string | number;
  value?: number;
  properties?: Record<string, unknown>;
}

/** `{"error": {...}}`: the body of every error answer. */
export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

/** The answer to a batch (`POST /v1/events` with a JSON array). */
export interface IngestBatchResult {
  accepted: number;
  duplicates: number;
  late: number;
  rejected: Array<{ index: number; error: ErrorBody }>;
  assigned_ids?: Array<{ index: number; event_id: string }>;
}

export interface Aggregate {
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  avg: number | null;
  distinct?: number;
  percentiles?: Record<string, number | null>;
}

export type WindowShape = "tumbling" | "hopping" | "sliding" | "session";

/** A window as `GET /v1/actors/:key` and `/windows` show it. */
export interface WindowView extends Aggregate {
  /** "1m", "5m/1m", "sliding:10m", "session:30m" */
  size: string;
  start: string;
  end: string;
  shape: WindowShape;
  event_type?: string;
  closed: boolean;
  /** With `?type=`: the aggregates are of that event type only. */
  type?: string;
  /** Without `?type=`: the aggregates of each event type. */
  by_type?: Record<string, Aggregate>;
  closed_at?: string;
  closed_by?: "watermark" | "idle";
}

/** `GET /v1/actors/:key`: the actor's state. */
export interface ActorView {
  key: string;
  totals: { events: number; duplicates: number; late: number; by_type: Record<string, number> };
  first_event_at: string | null;
  last_event_at: string | null;
  last_arrival_at: string | null;
  watermark: string | null;
  open_windows: WindowView[];
  recently_closed_windows: WindowView[];
  closed_windows_retained: number;
  dedupe_ids: number;
  late_log_size: number;
}

/** An entry of `GET /v1/actors/:key/late`. */
export interface LateEntry {
  event_id: string;
  event_type: string;
  timestamp: string;
  received_at: string;
  watermark_at_arrival: string;
  missed_windows: string[];
  value?: number;
}

/** An accepted event, as sinks and the live view receive it. */
export interface EventRecord {
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
  request_id?: string;
  enriched?: Record<string, string | number | boolean>;
}

/** A window update or close, as sinks and the live view receive it. */
export interface WindowRecord extends Aggregate {
  kind: "window";
  tenant: string;
  key: string;
  size: string;
  start: string;
  end: string;
  revision: number;
  final: boolean;
  shape: WindowShape;
  event_type?: string;
  /** A session superseded by a merge or an extension backwards: delete it. */
  retracted?: true;
  by_type: Record<string, Aggregate>;
}

/** An entry of `GET /v1/actors/:key/alerts`. */
export interface AlertRecord {
  kind: "alert";
  tenant: string;
  key: string;
  rule: string;
  window: { shape: string; start: string; end: string };
  aggregate: string;
  value: number;
  baseline?: { mean: number; stddev: number; windows: number } | { previous: number };
  event_id: string | null;
  fired_at: string;
}

/** `GET /v1/actors/:key/windows` query: `size` is a configured window ("1m", "5m/1m", "session:30m"). */
export interface WindowsQuery {
  size?: string;
  type?: string;
  from?: string | number | Date;
  to?: string | number | Date;
  /** 1..10,000; the server's default is 1,000. */
  limit?: number;
}

/** What `live()` yields: the server-sent events of `GET /v1/actors/:key/live`. */
export type LiveMessage =
  | { type: "event"; id: string | undefined; record: EventRecord }
  | { type: "window"; id: string | undefined; record: WindowRecord }
  /** A detection rule that fired (keyflow.config.json rules). */
  | { type: "alert"; id: string | undefined; record: AlertRecord }
  /** Some items after the Last-Event-ID the stream resumed from are no longer retained: they were missed. */
  | { type: "gap"; id: string | undefined; last_event_id: string | null; reason: string }
  /** The server ended the stream: `overflow` (the reader fell too far behind) or `end` (the server is closing). */
  | { type: "overflow" | "end"; id: string | undefined; reason: string };

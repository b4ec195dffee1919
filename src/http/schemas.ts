import { z } from "zod";

/**
 * The HTTP API's response bodies as zod schemas. views.ts and app.ts take their types from these
 * (type imports only: nothing here runs on the request path); openapi.ts documents them, and
 * tests/unit/openapi.test.ts checks real responses against them. Objects are strict, so a field
 * the code adds without documenting it fails that test.
 */

const time = z.iso.datetime().meta({ description: "ISO-8601, UTC" });
const count = z.int().nonnegative();

export const ErrorBodySchema = z.strictObject({
  code: z.string().meta({ description: "Stable, machine-readable: switch on this, not on the message." }),
  message: z.string().meta({ description: "For people: what is wrong and what to do." }),
  details: z.unknown().optional().meta({ description: "Structured detail, by code: e.g. the field problems of invalid_event." }),
});

export const ErrorSchema = z.strictObject({ error: ErrorBodySchema }).meta({ id: "Error" });

const aggregateShape = {
  count: count.meta({ description: "Events in the window." }),
  sum: z.number().meta({ description: "Sum of the measures (value, else properties.amount) of the events that had one." }),
  min: z.number().nullable(),
  max: z.number().nullable(),
  avg: z.number().nullable().meta({ description: "Mean over the events that had a measure; null when none had." }),
  distinct: count.optional().meta({
    description: "Distinct values of the type's distinct path (keyflow.config.json): exact up to its exact_up_to, then a HyperLogLog estimate (1.6% standard error).",
  }),
  percentiles: z
    .record(z.string(), z.number().nullable())
    .optional()
    .meta({ description: 'The measure\'s configured percentiles by name ("p99"), from a DDSketch (1% relative error).', example: { p50: 12, p99: 80 } }),
};
const shapeField = z.enum(["tumbling", "hopping", "sliding", "session"]).meta({ description: "The window's shape." });
const eventTypeField = z.string().optional().meta({ description: "A type's own window (keyflow.config.json): the event type it covers alone." });

export const AggregateViewSchema = z.strictObject(aggregateShape).meta({ id: "Aggregate" });

export const WindowViewSchema = z
  .strictObject({
    size: z.string().meta({ description: 'The window\'s name: "1m" (tumbling), "5m/1m" (size/hop), "sliding:10m" or "session:30m".', example: "1m" }),
    start: time,
    end: time,
    shape: shapeField,
    event_type: eventTypeField,
    ...aggregateShape,
    closed: z.boolean(),
    type: z.string().optional().meta({ description: "With ?type=: the aggregates are of that event type only." }),
    by_type: z.record(z.string(), AggregateViewSchema).optional().meta({ description: "Without ?type=: the aggregates of each event type." }),
    closed_at: time.optional(),
    closed_by: z.enum(["watermark", "idle"]).optional(),
  })
  .meta({ id: "Window" });

export const ActorViewSchema = z
  .strictObject({
    key: z.string(),
    totals: z.strictObject({ events: count, duplicates: count, late: count, by_type: z.record(z.string(), count) }),
    first_event_at: time.nullable(),
    last_event_at: time.nullable(),
    last_arrival_at: time.nullable(),
    watermark: time.nullable(),
    open_windows: z.array(WindowViewSchema),
    recently_closed_windows: z.array(WindowViewSchema).meta({ description: "The last 20 closed windows." }),
    closed_windows_retained: count,
    dedupe_ids: count,
    late_log_size: count,
  })
  .meta({ id: "Actor" });

export const LateViewSchema = z
  .strictObject({
    event_id: z.string(),
    event_type: z.string(),
    timestamp: time,
    received_at: time,
    watermark_at_arrival: time,
    missed_windows: z.array(z.string()),
    value: z.number().optional(),
  })
  .meta({ id: "LateEvent" });

export const EventRecordViewSchema = z
  .strictObject({
    kind: z.literal("event"),
    tenant: z.string(),
    event_id: z.string(),
    event_type: z.string(),
    key: z.string(),
    timestamp: time,
    received_at: time,
    late: z.boolean(),
    value: z.number().optional(),
    properties: z.record(z.string(), z.unknown()).optional(),
    request_id: z.string().optional().meta({ description: "The x-request-id of the request that brought the event." }),
    enriched: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
      .optional()
      .meta({ description: "Fields enrichment rules added (keyflow.config.json)." }),
  })
  .meta({ id: "EventRecord" });

export const WindowRecordViewSchema = z
  .strictObject({
    kind: z.literal("window"),
    tenant: z.string(),
    key: z.string(),
    size: z.string(),
    start: time,
    end: time,
    revision: count,
    final: z.boolean(),
    shape: shapeField,
    event_type: eventTypeField,
    retracted: z.literal(true).optional().meta({ description: "A session superseded by a merge or an extension backwards: delete it (key, event_type, size, start, end)." }),
    ...aggregateShape,
    by_type: z.record(z.string(), AggregateViewSchema),
  })
  .meta({ id: "WindowRecord" });

export const RecordViewSchema = z.discriminatedUnion("kind", [EventRecordViewSchema, WindowRecordViewSchema]).meta({
  id: "Record",
  description: "A record as the sinks receive it.",
});

export const AlertRecordViewSchema = z
  .strictObject({
    kind: z.literal("alert"),
    tenant: z.string(),
    key: z.string(),
    rule: z.string().meta({ description: "The detection rule's name (keyflow.config.json)." }),
    window: z.strictObject({ shape: z.string(), start: time, end: time }),
    aggregate: z.string().meta({ description: "count, sum, min, max, avg, distinct or pNN." }),
    value: z.number(),
    baseline: z
      .union([z.strictObject({ mean: z.number(), stddev: z.number(), windows: count }), z.strictObject({ previous: z.number() })])
      .optional()
      .meta({ description: "zscore rules: the key's baseline; change rules: the previous window's value." }),
    event_id: z.string().nullable().meta({ description: "The event whose arrival made the rule fire; null when the wall clock closed the window." }),
    fired_at: time,
  })
  .meta({ id: "Alert" });

export const DeadLetterViewSchema = z
  .strictObject({
    id: count,
    sink: z.string(),
    error: z.string(),
    attempts: count,
    failed_at: time,
    record: z.discriminatedUnion("kind", [EventRecordViewSchema, WindowRecordViewSchema, AlertRecordViewSchema]),
  })
  .meta({ id: "DeadLetter" });

export const SinkStatusViewSchema = z
  .strictObject({
    sink: z.string(),
    breaker: z.enum(["closed", "open", "half_open"]),
    retry_at: time.nullable(),
    consecutive_failures: count,
    last_error: z.string().nullable(),
    attempts: count,
    delivered: count,
    dead_lettered: count,
    transient_failures: count,
    breaker_opened: count,
    breaker_closed: count,
  })
  .meta({ id: "SinkStatus" });

export const OutboxViewSchema = z
  .strictObject({
    key: z.string(),
    backlog: z.record(z.string(), count).meta({ description: "Records waiting for each sink." }),
    dead_letters: count,
    sinks: z.array(SinkStatusViewSchema),
  })
  .meta({ id: "Outbox" });

export const HealthSchema = z
  .strictObject({
    status: z.literal("ok"),
    version: z.string(),
    host: z.string().meta({ description: "bun, deno, workers or memory" }),
    uptime_s: count,
    runtime: z.record(z.string(), z.number()).optional().meta({ description: "Counters of the self-hosted server's runtime." }),
  })
  .meta({ id: "Health" });

export const SinkReadinessViewSchema = z
  .strictObject({
    sink: z.string(),
    status: z.enum(["ok", "degraded", "down"]).meta({ description: "ok: delivering; degraded: failing and retrying; down: breaker open or probing." }),
    last_error: z.string().nullable(),
    latency_ms: z.number().nullable(),
    failing_since: time.nullable(),
    down_for_s: z.number().nonnegative(),
  })
  .meta({ id: "SinkReadiness" });

export const ReadySchema = z
  .strictObject({
    status: z.enum(["ready", "not_ready"]),
    sinks: z.array(SinkReadinessViewSchema).optional().meta({ description: "Only for a caller whose key has the metrics scope (or an open server)." }),
  })
  .meta({ id: "Ready" });

export const IngestOneSchema = z
  .strictObject({
    status: z.enum(["accepted", "duplicate"]),
    event_id: z.string(),
    id_assigned: z.literal(true).optional().meta({ description: "The event had no event_id: the server assigned this one (a retry would not be deduplicated)." }),
    late: z.literal(true).optional().meta({ description: "The event arrived after its windows closed: it is in the late log, not in them." }),
  })
  .meta({ id: "IngestResult" });

export const IngestBatchSchema = z
  .strictObject({
    accepted: count,
    duplicates: count,
    late: count,
    rejected: z.array(z.strictObject({ index: count, error: ErrorBodySchema })).meta({ description: "The events not taken, by their index in the batch (or line, for NDJSON)." }),
    assigned_ids: z.array(z.strictObject({ index: count, event_id: z.string() })).optional(),
  })
  .meta({ id: "IngestBatchResult" });

export const TopKeysSchema = z
  .strictObject({
    keys: z.array(z.strictObject({ key: z.string(), events: count, error_bound: count.meta({ description: "events may overcount by at most this much." }) })),
    approximate: z.literal(true),
    since: time.meta({ description: "When counting began (this process or isolate started)." }),
  })
  .meta({ id: "TopKeys" });

export const WindowsSchema = z.strictObject({ key: z.string(), windows: z.array(WindowViewSchema) }).meta({ id: "Windows" });
export const LateSchema = z.strictObject({ key: z.string(), late: z.array(LateViewSchema) }).meta({ id: "LateLog" });
export const AlertsSchema = z.strictObject({ key: z.string(), alerts: z.array(AlertRecordViewSchema) }).meta({ id: "Alerts" });
export const DeadLettersSchema = z.strictObject({ key: z.string(), dead_letters: z.array(DeadLetterViewSchema) }).meta({ id: "DeadLetters" });
export const ReplaySchema = z.strictObject({ key: z.string(), replayed: count }).meta({ id: "ReplayResult" });

import { neonConfig, Pool } from "@neondatabase/serverless";
import { SinkError, type Sink } from "../../delivery/sink.ts";
import type { DeadLetterRecord, EventRecord, OutboxAlert, OutboxRecord, WindowRecord } from "../../actor/outbox.ts";
import { aggregateView, iso, recordJson, recordView, shapeOf } from "../../delivery/records.ts";
import { splitActorName } from "../../actor/tenant.ts";
import { POSTGRES_SCHEMA } from "./schema.ts";

export interface PostgresSinkOptions {
  url: string;
  /** A WebSocket-to-TCP proxy ("127.0.0.1:6543/v1") for Postgres servers that are not on Neon. */
  wsProxy?: string;
  wsProxyTls: boolean;
  /** Workers: a connection may not outlive the request that opened it, so open one per delivery. */
  poolPerDelivery: boolean;
  /** How long connecting, and each batch's statement, may take (KEYFLOW_SINK_TIMEOUT); default 10 s. */
  timeoutMs?: number;
}

/** Connections per pool: a few batches in flight at once, each one statement on one connection. */
export const POOL_MAX = 8;

/** Points the Neon driver at a local WebSocket proxy (it speaks to Neon's own proxy by default). */
function configureNeon(opts: PostgresSinkOptions): void {
  if (!opts.wsProxy) return;
  const proxy = opts.wsProxy;
  neonConfig.wsProxy = (host, port) => `${proxy}?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = opts.wsProxyTls;
  // Pipelined connect sends a cleartext password first: only Neon's proxy expects that.
  neonConfig.pipelineConnect = false;
}

/** SQLSTATE classes where the data itself is refused: 21 cardinality, 22 data exception, 23 integrity. */
function isPermanent(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^2[123]/.test(code);
}

/** 42P01 no such table, 42703 no such column, 42P10 no unique index for ON CONFLICT: tables older than this sink. */
const SCHEMA_OUTDATED = /^(42P01|42703|42P10)$/;

/**
 * A failure as a SinkError, by SQLSTATE (the `code` both drivers set): refused data permanent,
 * missing or outdated tables transient with what to do, anything else (a lost connection, a
 * timeout, a server shutting down) transient.
 */
export function postgresError(error: unknown): SinkError {
  if (error instanceof SinkError) return error;
  const code = (error as { code?: unknown })?.code;
  const message = (error as Error)?.message ?? String(error);
  if (typeof code === "string" && SCHEMA_OUTDATED.test(code)) {
    // Transient: the records wait in the outbox (backpressure, then the DLQ after the retry budget) until the tables are migrated.
    return new SinkError(`postgres: ${message} (SQLSTATE ${code}): the tables are missing or out of date; run \`npm run migrate\``, false);
  }
  return new SinkError(`postgres: ${message}${typeof code === "string" ? ` (SQLSTATE ${code})` : ""}`, isPermanent(error));
}

/** One database: a pool of connections that runs one statement at a time on each, however they are made. */
export interface PostgresConnection {
  /** Runs `text` (one statement with `values` as $1…; without values, it may be several). */
  query(text: string, values?: string[]): Promise<unknown>;
  end(): Promise<void>;
}

/**
 * Opens a PostgresConnection: `statementTimeoutMs` bounds each statement (0: no bound, for the
 * migration); `lost` hears of a connection that broke while idle (logged; the next batch reconnects).
 */
export type OpenPostgres = (opts: PostgresSinkOptions, statementTimeoutMs: number, lost: (error: Error) => void) => PostgresConnection;

/** The Neon serverless driver (WebSocket): Neon, or any Postgres behind a WebSocket-to-TCP proxy (KEYFLOW_NEON_WSPROXY). */
export const openNeon: OpenPostgres = (opts, statementTimeoutMs, lost) => {
  configureNeon(opts);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const pool = new Pool({
    connectionString: opts.url,
    max: POOL_MAX,
    connectionTimeoutMillis: timeoutMs,
    // A statement that has not answered by then fails the batch (retried); its connection is dropped.
    query_timeout: statementTimeoutMs || undefined,
  });
  // node-postgres, which the driver is built on, emits an idle client's connection error on the pool
  // and throws it when nobody listens: the pool and every client it opens get a listener.
  pool.on("error", lost); // an idle client's connection ended (pg_terminate_backend, proxy restart, …)
  pool.on("connect", (client: { on(event: "error", listener: (error: Error) => void): unknown }) => client.on("error", lost));
  return {
    // pool.query takes a connection, runs the statement, and gives it back (or drops it on a connection error).
    query: (text, values) => pool.query(text, values),
    end: () => pool.end(),
  };
};

/**
 * Postgres, through a connection `open` makes (the Neon driver by default; postgres.js on the
 * self-hosted server: native.ts). Each batch is one statement (so one round trip, and atomic):
 * data-modifying CTEs insert the events into raw_events and processed_events from one JSON array,
 * upsert window_aggregates and insert alerts and failed_events. Every write is idempotent, so a
 * batch retried after a timeout leaves one effect: event rows ignore a known (tenant, actor_key,
 * event_id), window_aggregates takes only a newer revision, alerts ignore a known (tenant,
 * actor_key, rule, shape, window_start), failed_events ignores a known entry.
 * Every row carries the record's tenant and the client's key (actor_key), never the actor name.
 *
 * A lost connection never ends the process: the connection drops the broken one and the next batch
 * opens a new one; a batch that was on it fails (transiently) and is retried.
 */
export class PostgresSink implements Sink {
  readonly name = "postgres";
  private pool: PostgresConnection | undefined;
  private closing = false;
  private readonly timeoutMs: number;

  constructor(
    private readonly opts: PostgresSinkOptions,
    private readonly open: OpenPostgres = openNeon,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Creates the tables and brings older ones up to date (npm run migrate; idempotent). */
  async migrate(): Promise<void> {
    // A pool of its own, without the statement timeout: re-keying a big table takes as long as it takes.
    const pool = this.newPool(0);
    try {
      await pool.query(POSTGRES_SCHEMA);
    } catch (error) {
      throw postgresError(error);
    } finally {
      await pool.end().catch(() => undefined);
    }
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const events: EventRecord[] = [];
    const windows: WindowRecord[] = [];
    const alerts: OutboxAlert[] = [];
    const dead: DeadLetterRecord[] = [];
    for (const r of records) {
      if (r.kind === "event") events.push(r);
      else if (r.kind === "window") windows.push(r);
      else if (r.kind === "alert") alerts.push(r);
      else dead.push(r);
    }
    const { upserts, retractions } = lastPerWindow(windows);
    const statement = batchStatement(events, upserts, dead, alerts, retractions);
    if (!statement) return;
    await this.withPool((pool) => pool.query(statement.text, statement.values));
  }

  private newPool(statementTimeoutMs = this.timeoutMs): PostgresConnection {
    return this.open(this.opts, statementTimeoutMs, (error) => this.connectionLost(error));
  }

  private connectionLost(error: Error): void {
    if (this.closing) return;
    const code = (error as { code?: unknown }).code;
    console.warn(`keyflow postgres sink: connection lost (${error.message}${typeof code === "string" ? `, SQLSTATE ${code}` : ""}); the next batch reconnects`);
  }

  private async withPool<T>(fn: (pool: PostgresConnection) => Promise<T>): Promise<T> {
    const pool = this.pool ?? this.newPool();
    if (!this.opts.poolPerDelivery) this.pool = pool;
    try {
      return await fn(pool);
    } catch (error) {
      throw postgresError(error);
    } finally {
      if (this.opts.poolPerDelivery) await pool.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
  }
}

interface Statement {
  text: string;
  values: string[];
}

/** The batch as one statement: a data-modifying CTE per table with rows, each fed by one JSON parameter. */
export function batchStatement(events: EventRecord[], windows: WindowRecord[], dead: DeadLetterRecord[], alerts: OutboxAlert[] = [], retractions: WindowRecord[] = []): Statement | undefined {
  const parts: string[] = [];
  const values: string[] = [];
  if (events.length) {
    // The record view is the raw_events payload as it is, and the source of every processed_events
    // column (its tenant and key are the tenant and the client's key).
    values.push(`[${events.map(recordJson).join(",")}]`);
    const p = `$${values.length}`;
    parts.push(
      `e AS (
         SELECT v, r.* FROM jsonb_array_elements(${p}::jsonb) AS v,
           jsonb_to_record(v) AS r(tenant text, key text, event_id text, event_type text, "timestamp" timestamptz, value double precision,
             properties jsonb, received_at timestamptz, late boolean, request_id text, enriched jsonb)
       )`,
      `raw AS (
         INSERT INTO raw_events (tenant, actor_key, event_id, payload, received_at)
         SELECT tenant, key, event_id, v, received_at FROM e
         ON CONFLICT (tenant, actor_key, event_id) DO NOTHING
       )`,
      `processed AS (
         INSERT INTO processed_events (tenant, event_id, actor_key, event_type, event_time, value, properties, received_at, late, minute, hour, request_id, enriched)
         SELECT tenant, event_id, key, event_type, "timestamp", value, properties, received_at, late,
           to_timestamp(floor(extract(epoch FROM "timestamp") / 60) * 60), to_timestamp(floor(extract(epoch FROM "timestamp") / 3600) * 3600), request_id, enriched
         FROM e
         ON CONFLICT (tenant, actor_key, event_id) DO NOTHING
       )`,
    );
  }
  if (windows.length) {
    values.push(JSON.stringify(windowRows(windows)));
    parts.push(
      `windows AS (
         INSERT INTO window_aggregates (tenant, actor_key, event_type, size, window_start, window_end, count, sum, min, max, avg, revision, final,
           shape, distinct_count, percentiles)
         SELECT tenant, actor_key, event_type, size, window_start, window_end, count, sum, min, max, avg, revision, final, shape, "distinct", percentiles
         FROM jsonb_to_recordset($${values.length}::jsonb) AS r(tenant text, actor_key text, event_type text, size text, window_start timestamptz,
           window_end timestamptz, count bigint, sum double precision, min double precision, max double precision,
           avg double precision, revision integer, final boolean, shape text, "distinct" bigint, percentiles jsonb)
         ON CONFLICT (tenant, actor_key, event_type, size, window_start) DO UPDATE SET
           window_end = EXCLUDED.window_end, count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min,
           max = EXCLUDED.max, avg = EXCLUDED.avg, revision = EXCLUDED.revision, final = EXCLUDED.final, shape = EXCLUDED.shape,
           distinct_count = EXCLUDED.distinct_count, percentiles = EXCLUDED.percentiles, updated_at = now()
         WHERE window_aggregates.revision < EXCLUDED.revision
       )`,
    );
  }
  if (retractions.length) {
    // A superseded session: its row goes, unless a later revision (from a later batch) is there.
    values.push(JSON.stringify(windowRows(retractions)));
    parts.push(
      `retracted AS (
         DELETE FROM window_aggregates w
         USING jsonb_to_recordset($${values.length}::jsonb) AS r(tenant text, actor_key text, event_type text, size text, window_start timestamptz, revision integer)
         WHERE w.tenant = r.tenant AND w.actor_key = r.actor_key AND w.event_type = r.event_type AND w.size = r.size
           AND w.window_start = r.window_start AND w.revision <= r.revision
       )`,
    );
  }
  if (alerts.length) {
    // The alert's record view (alertRecordView) feeds every column: ON CONFLICT DO NOTHING keeps the first firing.
    values.push(`[${alerts.map(recordJson).join(",")}]`);
    parts.push(
      `alerts AS (
         INSERT INTO alerts (tenant, actor_key, rule, shape, window_start, window_end, aggregate, value, baseline, event_id, fired_at)
         SELECT tenant, key, rule, "window"->>'shape', ("window"->>'start')::timestamptz, ("window"->>'end')::timestamptz, aggregate, value, baseline, event_id, fired_at
         FROM jsonb_to_recordset($${values.length}::jsonb) AS r(tenant text, key text, rule text, "window" jsonb, aggregate text,
           value double precision, baseline jsonb, event_id text, fired_at timestamptz)
         ON CONFLICT (tenant, actor_key, rule, shape, window_start) DO NOTHING
       )`,
    );
  }
  if (dead.length) {
    values.push(JSON.stringify(deadRows(dead)));
    parts.push(
      `failed AS (
         INSERT INTO failed_events (tenant, actor_key, sink, outbox_index, kind, event_id, record, error, failed_at)
         SELECT tenant, actor_key, sink, outbox_index, kind, event_id, record, error, failed_at
         FROM jsonb_to_recordset($${values.length}::jsonb) AS r(tenant text, actor_key text, sink text, outbox_index bigint, kind text,
           event_id text, record jsonb, error text, failed_at timestamptz)
         ON CONFLICT (tenant, actor_key, sink, outbox_index) DO NOTHING
       )`,
    );
  }
  if (!parts.length) return undefined;
  // Data-modifying CTEs run to completion whether or not the outer query reads them.
  return { text: `WITH ${parts.join(",\n")}\nSELECT 1`, values };
}

/**
 * One statement cannot touch a row twice: per row (a window, or a type's own window, by start), only
 * the batch's last record of it counts, an upsert or a retraction (records come in outbox order).
 * A session upserted and retracted again within the batch leaves no row; one whose span changed and
 * kept its start is the new upsert of the same row.
 */
export function lastPerWindow(windows: WindowRecord[]): { upserts: WindowRecord[]; retractions: WindowRecord[] } {
  const last = new Map<string, WindowRecord>();
  for (const w of windows) {
    const id = JSON.stringify([w.key, w.spec, w.type ?? null, w.start]);
    const seen = last.get(id);
    // Map order is first-insertion order; a newer record replaces the older in place.
    if (!seen || w.retracted || seen.retracted || seen.revision < w.revision) last.set(id, w);
  }
  const upserts: WindowRecord[] = [];
  const retractions: WindowRecord[] = [];
  for (const w of last.values()) (w.retracted ? retractions : upserts).push(w);
  return { upserts, retractions };
}

function windowRows(windows: WindowRecord[]) {
  return windows.flatMap((w) => {
    const { tenant, key } = splitActorName(w.key);
    const start = iso(w.start);
    const end = iso(w.end);
    const shape = shapeOf(w);
    // A type's own window is one row, of its type; the key's windows a row for all types ('*') and one per type.
    const rows = w.type !== undefined ? [[w.type, w.all] as const] : [["*", w.all] as const, ...Object.entries(w.types)];
    return rows.map(([type, agg]) => {
      const extras = w.extras && Object.hasOwn(w.extras, type) ? w.extras[type] : undefined;
      const view = aggregateView(agg, extras);
      return {
        tenant,
        actor_key: key,
        event_type: type,
        size: w.spec,
        window_start: start,
        window_end: end,
        ...view,
        revision: w.revision,
        final: w.final,
        shape,
      };
    });
  });
}

function deadRows(dead: DeadLetterRecord[]) {
  return dead.map((d) => {
    const { tenant, key } = splitActorName(d.key);
    return {
      tenant,
      actor_key: key,
      sink: d.sink,
      outbox_index: d.record.n,
      kind: d.record.kind,
      event_id: d.record.kind === "event" ? d.record.id : null,
      record: recordView(d.record),
      error: d.error,
      failed_at: iso(d.failedAt),
    };
  });
}

import { neonConfig, Pool } from "@neondatabase/serverless";
import { SinkError, type Sink } from "../../delivery/sink.ts";
import type { DeadLetterRecord, EventRecord, OutboxRecord, WindowRecord } from "../../actor/outbox.ts";
import { aggregateView, recordView } from "../../delivery/records.ts";
import { POSTGRES_SCHEMA } from "./schema.ts";

export interface PostgresSinkOptions {
  url: string;
  /** A WebSocket-to-TCP proxy ("127.0.0.1:6543/v1") for Postgres servers that are not on Neon. */
  wsProxy?: string;
  wsProxyTls: boolean;
  /** Workers: a connection may not outlive the request that opened it, so open one per delivery. */
  poolPerDelivery: boolean;
}

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

/**
 * Postgres through the Neon serverless driver (WebSocket). Each batch is one transaction of
 * multi-row statements, every one idempotent: raw_events and processed_events ignore a known
 * event id, window_aggregates upserts only a newer revision, failed_events ignores a known entry.
 */
export class PostgresSink implements Sink {
  readonly name = "postgres";
  private pool: Pool | undefined;

  constructor(private readonly opts: PostgresSinkOptions) {
    configureNeon(opts);
  }

  async migrate(): Promise<void> {
    await this.withClient((client) => client.query(POSTGRES_SCHEMA));
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const events = records.filter((r): r is EventRecord => r.kind === "event");
    const windows = latestRevisions(records.filter((r): r is WindowRecord => r.kind === "window"));
    const dead = records.filter((r): r is DeadLetterRecord => r.kind === "dead_letter");
    await this.withClient(async (client) => {
      await client.query("BEGIN");
      try {
        if (events.length) await insertEvents(client, events);
        if (windows.length) await upsertWindows(client, windows);
        if (dead.length) await insertFailed(client, dead);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      }
    });
  }

  private async withClient<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    const pool = this.pool ?? new Pool({ connectionString: this.opts.url, max: 4 });
    if (!this.opts.poolPerDelivery) this.pool = pool;
    try {
      const client = await pool.connect();
      try {
        return await fn(client);
      } finally {
        client.release();
      }
    } catch (error) {
      if (error instanceof SinkError) throw error;
      const code = (error as { code?: string })?.code;
      throw new SinkError(`postgres: ${(error as Error)?.message ?? error}${code ? ` (SQLSTATE ${code})` : ""}`, isPermanent(error));
    } finally {
      if (this.opts.poolPerDelivery) await pool.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
  }
}

interface Queryable {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

const iso = (ms: number) => new Date(ms).toISOString();
const floorTo = (ms: number, size: number) => iso(Math.floor(ms / size) * size);

async function insertEvents(client: Queryable, events: EventRecord[]): Promise<void> {
  const rows = events.map((e) => ({
    actor_key: e.key,
    event_id: e.id,
    payload: recordView(e),
    event_type: e.type,
    event_time: iso(e.ts),
    value: e.value ?? null,
    properties: e.properties ?? null,
    received_at: iso(e.receivedAt),
    late: e.late,
    minute: floorTo(e.ts, 60_000),
    hour: floorTo(e.ts, 3_600_000),
  }));
  const json = JSON.stringify(rows);
  await client.query(
    `INSERT INTO raw_events (actor_key, event_id, payload, received_at)
     SELECT actor_key, event_id, payload, received_at
     FROM jsonb_to_recordset($1::jsonb) AS r(actor_key text, event_id text, payload jsonb, received_at timestamptz)
     ON CONFLICT DO NOTHING`,
    [json],
  );
  await client.query(
    `INSERT INTO processed_events (event_id, actor_key, event_type, event_time, value, properties, received_at, late, minute, hour)
     SELECT event_id, actor_key, event_type, event_time, value, properties, received_at, late, minute, hour
     FROM jsonb_to_recordset($1::jsonb) AS r(event_id text, actor_key text, event_type text, event_time timestamptz,
       value double precision, properties jsonb, received_at timestamptz, late boolean, minute timestamptz, hour timestamptz)
     ON CONFLICT (event_id) DO NOTHING`,
    [json],
  );
}

/** One upsert cannot touch a row twice: keep only the newest revision of each window in a batch. */
function latestRevisions(windows: WindowRecord[]): WindowRecord[] {
  const newest = new Map<string, WindowRecord>();
  for (const w of windows) {
    const id = `${w.key}\u0000${w.spec}\u0000${w.start}`;
    const seen = newest.get(id);
    if (!seen || seen.revision < w.revision) newest.set(id, w);
  }
  return [...newest.values()];
}

async function upsertWindows(client: Queryable, windows: WindowRecord[]): Promise<void> {
  const rows = windows.flatMap((w) =>
    [["*", w.all] as const, ...Object.entries(w.types)].map(([type, agg]) => ({
      actor_key: w.key,
      event_type: type,
      size: w.spec,
      window_start: iso(w.start),
      window_end: iso(w.end),
      ...aggregateView(agg),
      revision: w.revision,
      final: w.final,
    })),
  );
  await client.query(
    `INSERT INTO window_aggregates (actor_key, event_type, size, window_start, window_end, count, sum, min, max, avg, revision, final)
     SELECT actor_key, event_type, size, window_start, window_end, count, sum, min, max, avg, revision, final
     FROM jsonb_to_recordset($1::jsonb) AS r(actor_key text, event_type text, size text, window_start timestamptz,
       window_end timestamptz, count bigint, sum double precision, min double precision, max double precision,
       avg double precision, revision integer, final boolean)
     ON CONFLICT (actor_key, event_type, size, window_start) DO UPDATE SET
       window_end = EXCLUDED.window_end, count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min,
       max = EXCLUDED.max, avg = EXCLUDED.avg, revision = EXCLUDED.revision, final = EXCLUDED.final, updated_at = now()
     WHERE window_aggregates.revision < EXCLUDED.revision`,
    [JSON.stringify(rows)],
  );
}

async function insertFailed(client: Queryable, dead: DeadLetterRecord[]): Promise<void> {
  const rows = dead.map((d) => ({
    actor_key: d.key,
    sink: d.sink,
    outbox_index: d.record.n,
    kind: d.record.kind,
    event_id: d.record.kind === "event" ? d.record.id : null,
    record: recordView(d.record),
    error: d.error,
    failed_at: iso(d.failedAt),
  }));
  await client.query(
    `INSERT INTO failed_events (actor_key, sink, outbox_index, kind, event_id, record, error, failed_at)
     SELECT actor_key, sink, outbox_index, kind, event_id, record, error, failed_at
     FROM jsonb_to_recordset($1::jsonb) AS r(actor_key text, sink text, outbox_index bigint, kind text, event_id text,
       record jsonb, error text, failed_at timestamptz)
     ON CONFLICT DO NOTHING`,
    [JSON.stringify(rows)],
  );
}

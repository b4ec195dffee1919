import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { SeededRandom } from "../support/fake-env.ts";
import { startUpstashFront, type UpstashFront } from "../support/fronts.ts";
import { BRIDGE_URL, consumeAll, createTopic, ensureServices, KAFKA_BROKERS, kafkaClient } from "../support/kafka.ts";
import { PG_URL, preparePostgres, WSPROXY } from "../support/postgres.ts";
import type { DeadLetterRecord, EventRecord, OutboxAlert, OutboxRecord, WindowRecord } from "../../src/actor/outbox.ts";
import { actorName, DEFAULT_TENANT } from "../../src/actor/tenant.ts";
import { SinkError, type Sink } from "../../src/delivery/sink.ts";
import { NativeKafkaSink } from "../../src/sinks/kafka/native-sink.ts";
import { KafkaSink } from "../../src/sinks/kafka/sink.ts";
import { NativePostgresSink } from "../../src/sinks/postgres/native.ts";
import { PostgresSink } from "../../src/sinks/postgres/sink.ts";
import { NativeRedisSink } from "../../src/sinks/redis/native.ts";
import { RedisSink, type RedisSinkOptions } from "../../src/sinks/redis/sink.ts";
import { BIN, ROOT } from "../support/process.ts";
import { CLIENT_KINDS, localSinkEnv, REDIS_FRONT, REDIS_URL, type ClientKind } from "../support/sink-env.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import { BUN_SERVER, processTarget, type Target } from "../support/targets.ts";
import { bearer, TEST_KEY_LINES } from "../support/api-keys.ts";

// Real Kafka, Redis and Postgres, all started by scripts/services.sh, reached with the same client
// libraries the sinks use in production. Every test runs once per client kind
// (tests/support/sink-env.ts): "http" reaches Kafka through the REST bridge, Redis through the
// Upstash-REST front and Postgres through the Neon WebSocket proxy; "native" reaches the three
// servers directly (kafkajs's transactional producer, ioredis, postgres.js), as the self-hosted
// server does with KEYFLOW_KAFKA_BROKERS and redis:// and postgres:// URLs. The checks read the same
// servers either way (Kafka with read_committed).
const TOKEN = REDIS_FRONT.token;
const LATENESS = 5_000;
/** Each kind's names end in its letter (h, n), so the two runs never count each other's rows. */
const BASE = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

const sinkEnv = (kind: ClientKind, run: string, extra: Record<string, string> = {}) => ({
  ...localSinkEnv(`it-${run}`, kind),
  KEYFLOW_WINDOWS: "1m",
  KEYFLOW_ALLOWED_LATENESS: "5s",
  KEYFLOW_IDLE_TIMEOUT: "1s",
  KEYFLOW_SINK_MAX_DELAY: "50ms",
  KEYFLOW_BREAKER_COOLDOWN: "1s",
  KEYFLOW_SINK_BACKOFF_MAX: "1s",
  ...extra,
});

let pool: Pool;
const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });
const json = async (res: Response) => (await res.json()) as any;

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last as T;
    await Bun.sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres();
}, 300_000);

afterAll(async () => {
  await pool?.end();
});

interface Truth {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** The workload of the issue: 20,000 events over 200 keys, 10% duplicates and 5% late events. */
function workload(prefix: string, run: string) {
  const random = new SeededRandom(20_000);
  const base = Math.floor((Date.now() - 3 * 3_600_000) / 60_000) * 60_000;
  const keys = Array.from({ length: 200 }, (_, i) => `${prefix}-${run}-${i}`);
  const sent: object[] = [];
  const accepted = new Map<string, string[]>(); // key -> event ids in acceptance order
  const windows = new Map<string, Truth>(); // `${key}|${start}` -> aggregates of on-time events
  const watermark = new Map<string, number>();
  let late = 0;
  let duplicates = 0;
  const perKeyStep = new Map<string, number>();
  for (let i = 0; i < 20_000; i++) {
    const key = keys[random.int(keys.length)]!;
    const ids = accepted.get(key) ?? [];
    const roll = random.next();
    if (roll < 0.1 && ids.length) {
      // A retry of something this key already accepted.
      const id = ids[random.int(ids.length)]!;
      sent.push(sent.find((e: any) => e.event_id === id)!);
      duplicates++;
      continue;
    }
    const step = (perKeyStep.get(key) ?? 0) + 1;
    perKeyStep.set(key, step);
    const wm = watermark.get(key);
    // Late: a minute and the allowed lateness behind the watermark, so its window has closed.
    const lateTs = wm === undefined ? -1 : wm - 60_000 - LATENESS - 1_000;
    const isLate = roll > 0.93 && lateTs >= base;
    const ts = isLate ? lateTs : base + step * 3_000;
    const value = Math.round(random.next() * 10_000) / 100;
    const event = { event_id: `${key}:${i}`, event_type: i % 3 ? "purchase" : "refund", user_id: key, timestamp: ts, value };
    sent.push(event);
    accepted.set(key, [...ids, event.event_id]);
    if (isLate) {
      late++;
      continue;
    }
    watermark.set(key, Math.max(wm ?? 0, ts));
    const start = Math.floor(ts / 60_000) * 60_000;
    const cell = `${key}|${start}`;
    const t = windows.get(cell) ?? { count: 0, sum: 0, min: Infinity, max: -Infinity };
    windows.set(cell, { count: t.count + 1, sum: t.sum + value, min: Math.min(t.min, value), max: Math.max(t.max, value) });
  }
  return { keys, sent, accepted, windows, late, duplicates };
}

async function postBatches(target: Target, events: object[], size: number) {
  const totals = { accepted: 0, duplicates: 0, late: 0 };
  for (let i = 0; i < events.length; i += size) {
    const res = await target.fetch("/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(events.slice(i, i + size)),
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.rejected).toEqual([]);
    totals.accepted += body.accepted;
    totals.duplicates += body.duplicates;
    totals.late += body.late;
  }
  return totals;
}

async function backlogDrained(target: Target, keys: string[]): Promise<boolean> {
  for (const key of keys) {
    const outbox = await json(await target.fetch(`/v1/actors/${encodeURIComponent(key)}/outbox`));
    if (Object.values(outbox.backlog).some((n) => n !== 0)) return false;
  }
  return true;
}

async function expectRedisWindows(prefix: string, windows: Map<string, Truth>) {
  const cells = [...windows];
  for (let i = 0; i < cells.length; i += 200) {
    const p = redis.pipeline();
    const slice = cells.slice(i, i + 200);
    for (const [cell] of slice) {
      const [key, start] = cell.split("|");
      p.hgetall(`${prefix}window:${key}:1m:${start}`);
    }
    const hashes = (await p.exec()) as Array<Record<string, unknown> | null>;
    slice.forEach(([cell, t], j) => {
      const h = hashes[j];
      expect(h, `redis hash for ${cell}`).not.toBeNull();
      expect({ cell, count: Number(h!.count), min: Number(h!.min), max: Number(h!.max), final: String(h!.final) }).toEqual({
        cell, count: t.count, min: t.min, max: t.max, final: "1",
      });
      expect(Number(h!.sum)).toBeCloseTo(t.sum, 6);
    });
  }
}


/** The sinks of a client kind, as the self-hosted server picks them for the local services' URLs. */
function clients(kind: ClientKind) {
  const native = kind === "native";
  return {
    postgres: (url: string): PostgresSink =>
      native ? new NativePostgresSink({ url, wsProxyTls: false, poolPerDelivery: false }) : new PostgresSink({ url, wsProxy: WSPROXY, wsProxyTls: false, poolPerDelivery: false }),
    redis: (opts: Pick<RedisSinkOptions, "prefix" | "ttlSeconds" | "streamMaxLen">): Sink =>
      native ? new NativeRedisSink({ url: REDIS_URL, ...opts }) : new RedisSink({ ...REDIS_FRONT, ...opts }),
    /** A Kafka sink of this kind (REST through the bridge, or the transactional producer) with these topics. */
    kafka: (topics: { topic: string; windowsTopic: string }, tag: string): Sink =>
      native
        ? new NativeKafkaSink({
            dialect: "native",
            brokers: KAFKA_BROKERS,
            transactionalId: `it-${tag}-tx`,
            dataDir: "",
            durable: true,
            progressTopic: `it-${tag}.progress`,
            alertsTopic: `it-${tag}.alerts`,
            timeoutMs: 10_000,
            maxRequestBytes: 1_048_576,
            ssl: false,
            ...topics,
          })
        : new KafkaSink({ dialect: "v2", url: BRIDGE_URL, headers: true, timeoutMs: 10_000, ...topics }),
    /** The variables that make `npm run migrate` use this kind's driver. */
    migrateEnv: (url: string): Record<string, string> =>
      native ? { KEYFLOW_POSTGRES_URL: url, KEYFLOW_POSTGRES_CLIENT: "native" } : { KEYFLOW_POSTGRES_URL: url, KEYFLOW_NEON_WSPROXY: WSPROXY },
  };
}

/**
 * What stands between the server and Redis, of this test's own, that the outage test stops and starts
 * again on the same port: an Upstash-REST front (http), a TCP proxy (native).
 */
async function redisWay(kind: ClientKind): Promise<{ env: Record<string, string>; stop(): Promise<void>; restart(): Promise<void> }> {
  if (kind === "native") {
    const proxy = await startTcpProxy(6379);
    return { env: { KEYFLOW_REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, stop: () => proxy.stop(), restart: () => proxy.start() };
  }
  let front: UpstashFront = await startUpstashFront({ token: TOKEN });
  return {
    env: { KEYFLOW_REDIS_URL: front.url },
    stop: async () => void (await front.stop()),
    restart: async () => void (front = await startUpstashFront({ token: TOKEN, port: front.port })),
  };
}

/** Neither an actor name's separator nor its JSON escape: what a sink writes names tenant and key apart. */
function expectNoActorName(what: string, value: unknown) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  expect(text.includes("\x1f") || text.toLowerCase().includes("\\u001f"), `${what} holds an actor name: ${text.slice(0, 200)}`).toBe(false);
}

/** Delivers, sending again after a transient failure (a topic just made may need a moment for its leader). */
async function deliverAll(sink: { deliver(records: OutboxRecord[]): Promise<void> }, records: OutboxRecord[]): Promise<void> {
  await until("a batch delivered", 30_000, async () => {
    try {
      await sink.deliver(records);
      return true;
    } catch (error) {
      if (error instanceof SinkError && !error.permanent) return false;
      throw error;
    }
  });
}

/** The tables as keyflow created them before tenants (commit 7ba8b54), and their index. */
const TABLES_BEFORE_TENANTS = `
CREATE TABLE raw_events (
  actor_key   text        NOT NULL,
  event_id    text        NOT NULL,
  payload     jsonb       NOT NULL,
  received_at timestamptz NOT NULL,
  stored_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (actor_key, event_id)
);
CREATE TABLE processed_events (
  event_id    text             NOT NULL,
  actor_key   text             NOT NULL,
  event_type  text             NOT NULL,
  event_time  timestamptz      NOT NULL,
  value       double precision,
  properties  jsonb,
  received_at timestamptz      NOT NULL,
  late        boolean          NOT NULL,
  minute      timestamptz      NOT NULL,
  hour        timestamptz      NOT NULL,
  processed_at timestamptz     NOT NULL DEFAULT now(),
  PRIMARY KEY (actor_key, event_id)
);
CREATE INDEX processed_events_actor_time ON processed_events (actor_key, event_time);
CREATE TABLE window_aggregates (
  actor_key    text             NOT NULL,
  event_type   text             NOT NULL,
  size         text             NOT NULL,
  window_start timestamptz      NOT NULL,
  window_end   timestamptz      NOT NULL,
  count        bigint           NOT NULL,
  sum          double precision NOT NULL,
  min          double precision,
  max          double precision,
  avg          double precision,
  revision     integer          NOT NULL,
  final        boolean          NOT NULL,
  updated_at   timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (actor_key, event_type, size, window_start)
);
CREATE TABLE failed_events (
  actor_key    text        NOT NULL,
  sink         text        NOT NULL,
  outbox_index bigint      NOT NULL,
  kind         text        NOT NULL,
  event_id     text,
  record       jsonb       NOT NULL,
  error        text        NOT NULL,
  failed_at    timestamptz NOT NULL,
  PRIMARY KEY (actor_key, sink, outbox_index)
);`;

/** Rows in the tables of TABLES_BEFORE_TENANTS: events old-1…old-30 over keys key-0…key-2, their windows, dead letters. */
const ROWS_BEFORE_TENANTS = `
INSERT INTO raw_events (actor_key, event_id, payload, received_at)
SELECT 'key-' || (i % 3), 'old-' || i, jsonb_build_object('event_id', 'old-' || i, 'key', 'key-' || (i % 3)), t
FROM generate_series(1, 30) AS i, LATERAL (SELECT timestamptz '2026-11-21 10:00:00+00' + i * interval '1 second' AS t) AS x;
INSERT INTO processed_events (event_id, actor_key, event_type, event_time, value, properties, received_at, late, minute, hour)
SELECT 'old-' || i, 'key-' || (i % 3), 'purchase', t, i, jsonb_build_object('i', i), t, false, date_trunc('minute', t), date_trunc('hour', t)
FROM generate_series(1, 30) AS i, LATERAL (SELECT timestamptz '2026-11-21 10:00:00+00' + i * interval '1 second' AS t) AS x;
INSERT INTO window_aggregates (actor_key, event_type, size, window_start, window_end, count, sum, min, max, avg, revision, final)
SELECT 'key-' || k, ty, '1m', timestamptz '2026-11-21 10:00:00+00', timestamptz '2026-11-21 10:01:00+00', 10, 100 + k, 1, 30, 10 + k, 1, true
FROM generate_series(0, 2) AS k, unnest(ARRAY['*', 'purchase']) AS ty;
INSERT INTO failed_events (actor_key, sink, outbox_index, kind, event_id, record, error, failed_at)
SELECT 'key-' || (i % 3), 'kafka', i, 'event', 'old-' || i, jsonb_build_object('event_id', 'old-' || i), 'refused', timestamptz '2026-11-21 10:05:00+00'
FROM generate_series(1, 4) AS i;`;

/** The processed_events table as keyflow created it before rows were keyed by (actor_key, event_id). */
const PROCESSED_EVENTS_V1 = `
CREATE TABLE processed_events (
  event_id    text             PRIMARY KEY,
  actor_key   text             NOT NULL,
  event_type  text             NOT NULL,
  event_time  timestamptz      NOT NULL,
  value       double precision,
  properties  jsonb,
  received_at timestamptz      NOT NULL,
  late        boolean          NOT NULL,
  minute      timestamptz      NOT NULL,
  hour        timestamptz      NOT NULL,
  processed_at timestamptz     NOT NULL DEFAULT now()
);
CREATE INDEX processed_events_actor_time ON processed_events (actor_key, event_time);`;

const TABLES = ["failed_events", "processed_events", "raw_events", "window_aggregates"];
/** Those tables and the ones a migration adds (alerts came after tenants: it is new to every older database). */
const TABLES_NOW = ["alerts", ...TABLES];
/** Each table's primary key, and the index, as POSTGRES_SCHEMA makes them. */
const KEYS_NOW = {
  alerts: ["tenant", "actor_key", "rule", "shape", "window_start"],
  failed_events: ["tenant", "actor_key", "sink", "outbox_index"],
  processed_events: ["tenant", "actor_key", "event_id"],
  raw_events: ["tenant", "actor_key", "event_id"],
  window_aggregates: ["tenant", "actor_key", "event_type", "size", "window_start"],
  processed_events_actor_time: ["tenant", "actor_key", "event_time"],
};
/** Every table's rows in a stable order. */
const ORDER_BY: Record<string, string> = {
  failed_events: "actor_key, sink, outbox_index",
  processed_events: "actor_key, event_id",
  raw_events: "actor_key, event_id",
  window_aggregates: "actor_key, event_type, size, window_start",
};

/**
 * A schema of its own (the sessions' search_path), so the shared tables are not touched, with what a
 * migration test needs: a pool in it, `npm run migrate` against it, and the shape of its tables.
 */
function migrationSchema(tag: string, run: string, kind: ClientKind) {
  const schema = `kf_${tag}_${run}`;
  const url = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  let scoped: Pool;
  beforeAll(async () => {
    await pool.query(`CREATE SCHEMA ${schema}`);
    scoped = new Pool({ connectionString: url, max: 1 });
    scoped.on("error", () => undefined);
  });
  afterAll(async () => {
    await scoped?.end();
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });
  /** Columns of a table's primary key, or of an index, in order. */
  const keyColumns = async (tableOrIndex: string) =>
    (
      await scoped.query(
        `SELECT array_agg(a.attname::text ORDER BY k.i) AS cols FROM pg_index x
         CROSS JOIN LATERAL unnest(x.indkey::smallint[]) WITH ORDINALITY AS k(attnum, i)
         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
         WHERE (x.indrelid = to_regclass($1) AND x.indisprimary) OR x.indexrelid = to_regclass($1)`,
        [tableOrIndex],
      )
    ).rows[0].cols as string[] | null;
  return {
    schema,
    url,
    query: (text: string, values?: unknown[]) => scoped.query(text, values),
    keyColumns,
    /** Every table's key and the index, by name. */
    shape: async () => Object.fromEntries(await Promise.all(Object.keys(KEYS_NOW).map(async (name) => [name, await keyColumns(name)] as const))),
    /** The tenant column of every table: type, nullability, default. */
    tenantColumns: async () =>
      (
        await scoped.query(
          `SELECT table_name, data_type, is_nullable, column_default FROM information_schema.columns
           WHERE table_schema = $1 AND column_name = 'tenant' ORDER BY table_name`,
          [schema],
        )
      ).rows,
    /** The index of every primary key and of processed_events_actor_time: a rebuilt one has a new oid. */
    indexOids: async () =>
      (
        await scoped.query(
          `SELECT c.relname, c.oid::bigint AS oid FROM pg_class c WHERE c.relkind = 'i' AND c.relnamespace = $1::regnamespace ORDER BY c.relname`,
          [schema],
        )
      ).rows,
    rows: async (table: string) => (await scoped.query(`SELECT * FROM ${table} ORDER BY ${ORDER_BY[table]}`)).rows,
    migrate: () =>
      Bun.spawnSync([`${BIN}/bun`, "scripts/migrate.ts"], {
        cwd: ROOT,
        env: { ...process.env, ...clients(kind).migrateEnv(url) },
        stdout: "pipe",
        stderr: "pipe",
      }),
  };
}

const oldEvent = (n: number, tenant: string, key: string, id: string): EventRecord => ({
  kind: "event", n, key: actorName(tenant, key), id, type: "purchase", ts: Date.UTC(2026, 10, 21, 10, 0, n), value: n, receivedAt: Date.UTC(2026, 10, 21, 10, 1), late: false,
});

for (const kind of CLIENT_KINDS) {
  const run = `${BASE}${kind[0]}`;
  const sinks = clients(kind);

  describe(`${kind} clients: sinks against real Kafka, Redis and Postgres`, () => {
    let target: ReturnType<typeof processTarget>;
    beforeAll(async () => {
      target = processTarget(BUN_SERVER, sinkEnv(kind, run));
      await target.start();
    });
    afterAll(() => target?.stop());

    test("20,000 events, 200 keys, 10% duplicates, 5% late: every sink holds each accepted event once and the ground-truth windows", async () => {
      const w = workload("load", run);
      const totalAccepted = [...w.accepted.values()].reduce((n, ids) => n + ids.length, 0);
      const totals = await postBatches(target, w.sent, 500);
      expect(totals).toEqual({ accepted: totalAccepted, duplicates: w.duplicates, late: w.late });
      expect(w.duplicates).toBeGreaterThan(1_500);
      expect(w.late).toBeGreaterThan(500);

      // Quiet keys close their last windows on the idle timeout; then every outbox drains.
      await until("every window closed and every outbox drained", 200_000, async () => {
        for (const key of w.keys) {
          const state = await json(await target.fetch(`/v1/actors/${encodeURIComponent(key)}`));
          if (state.open_windows.length) return false;
        }
        return backlogDrained(target, w.keys);
      });

      // Postgres: exactly one processed_events row per accepted event id, lateness recorded.
      const rows = await pool.query(
        "SELECT event_id, late FROM processed_events WHERE actor_key LIKE $1",
        [`load-${run}-%`],
      );
      expect(rows.rows.length).toBe(totalAccepted);
      expect(new Set(rows.rows.map((r: any) => r.event_id)).size).toBe(totalAccepted);
      expect(rows.rows.filter((r: any) => r.late).length).toBe(w.late);
      const raw = await pool.query("SELECT count(*)::int AS n FROM raw_events WHERE actor_key LIKE $1", [`load-${run}-%`]);
      expect(raw.rows[0].n).toBe(totalAccepted);

      // Postgres window_aggregates (all types together) equal the ground truth, every one final.
      const aggs = await pool.query(
        `SELECT actor_key, (extract(epoch FROM window_start) * 1000)::bigint AS start, count, sum, min, max, final
         FROM window_aggregates WHERE actor_key LIKE $1 AND event_type = '*' AND size = '1m'`,
        [`load-${run}-%`],
      );
      expect(aggs.rows.length).toBe(w.windows.size);
      for (const r of aggs.rows as any[]) {
        const t = w.windows.get(`${r.actor_key}|${r.start}`)!;
        expect(t, `window ${r.actor_key} ${r.start}`).toBeDefined();
        expect({ count: Number(r.count), min: r.min, max: r.max, final: r.final }).toEqual({ count: t.count, min: t.min, max: t.max, final: true });
        expect(r.sum).toBeCloseTo(t.sum, 6);
      }

      // Redis: the window hashes equal the ground truth; each key's stream holds its events once, in order.
      await expectRedisWindows(`it-${run}:`, w.windows);
      for (const key of w.keys.slice(0, 20)) {
        const entries = (await redis.xrange(`it-${run}:events:${key}`, "-", "+")) as Record<string, Record<string, unknown>>;
        expect(Object.values(entries).map((e) => String(e.event_id))).toEqual(w.accepted.get(key)!);
      }

      // Kafka: each accepted event exactly once, keyed by actor, in per-key order, event_id in a header.
      const records = await consumeAll(`it-${run}.events`, totalAccepted, 60_000, { settleMs: 1_000 });
      expect(records.length).toBe(totalAccepted);
      const perKey = new Map<string, string[]>();
      for (const r of records) {
        const value = JSON.parse(r.value!.toString());
        expect(r.headers.event_id!.toString()).toBe(value.event_id);
        expect(r.key!.toString()).toBe(value.key);
        perKey.set(value.key, [...(perKey.get(value.key) ?? []), value.event_id]);
      }
      for (const [key, ids] of w.accepted) expect(perKey.get(key)).toEqual(ids);
    }, 360_000);

    test("the same event_id on two keys is two events, and Postgres keeps both (keyed by tenant, actor_key, event_id)", async () => {
      const keys = [`twin-a-${run}`, `twin-b-${run}`];
      const id = `twin-${run}`;
      for (const key of keys) {
        const res = await target.fetch("/v1/events", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ event_id: id, event_type: "purchase", user_id: key, value: key.length }),
        });
        expect(res.status).toBe(202);
      }
      const rows = await until("both events in processed_events and raw_events", 30_000, async () => {
        const r = await pool.query(
          `SELECT p.actor_key, p.event_id, p.value, r.payload->>'key' AS payload_key
           FROM processed_events p JOIN raw_events r USING (tenant, actor_key, event_id) WHERE p.event_id = $1 ORDER BY p.actor_key`,
          [id],
        );
        return r.rows.length === 2 ? r.rows : undefined;
      });
      expect(rows).toEqual(keys.map((key) => ({ actor_key: key, event_id: id, value: key.length, payload_key: key })));
    }, 60_000);

    test("a poison event a sink refuses lands in the DLQ (and failed_events), is listed, and replays once fixed", async () => {
      const key = `poison-${run}`;
      const constraint = `kf_it_no_poison_${run}`;
      await pool.query(`ALTER TABLE processed_events ADD CONSTRAINT ${constraint} CHECK (event_type <> 'poison_${run}') NOT VALID`);
      try {
        const res = await target.fetch("/v1/events", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify([
            { event_id: `ok-1-${run}`, event_type: "purchase", user_id: key, value: 1 },
            { event_id: `bad-1-${run}`, event_type: `poison_${run}`, user_id: key, value: 2 },
            { event_id: `ok-2-${run}`, event_type: "purchase", user_id: key, value: 3 },
          ]),
        });
        expect((await json(res)).accepted).toBe(3);
        const dlq = await until("the poison event in the DLQ", 30_000, async () => {
          const body = await json(await target.fetch(`/v1/actors/${key}/dlq`));
          return body.dead_letters.length ? body.dead_letters : undefined;
        });
        expect(dlq).toHaveLength(1);
        expect(dlq[0]).toMatchObject({ sink: "postgres", record: { kind: "event", event_id: `bad-1-${run}` } });
        expect(dlq[0].error).toContain("23514");
        const ok = await pool.query("SELECT event_id FROM processed_events WHERE actor_key = $1 ORDER BY event_id", [key]);
        expect(ok.rows.map((r: any) => r.event_id)).toEqual([`ok-1-${run}`, `ok-2-${run}`]);
        const failed = await until("the dead letter mirrored to failed_events", 30_000, async () => {
          const r = await pool.query("SELECT sink, event_id, error FROM failed_events WHERE actor_key = $1", [key]);
          return r.rows.length ? r.rows : undefined;
        });
        expect(failed).toEqual([{ sink: "postgres", event_id: `bad-1-${run}`, error: dlq[0].error }]);
      } finally {
        await pool.query(`ALTER TABLE processed_events DROP CONSTRAINT IF EXISTS ${constraint}`);
      }
      const replay = await json(await target.fetch(`/v1/actors/${key}/dlq/replay?sink=postgres`, { method: "POST" }));
      expect(replay).toEqual({ key, replayed: 1 });
      await until("the replayed event in processed_events", 30_000, async () => {
        const r = await pool.query("SELECT count(*)::int AS n FROM processed_events WHERE actor_key = $1", [key]);
        return r.rows[0].n === 3;
      });
      const rows = await pool.query("SELECT event_id FROM processed_events WHERE actor_key = $1 ORDER BY event_id", [key]);
      expect(rows.rows.map((r: any) => r.event_id)).toEqual([`bad-1-${run}`, `ok-1-${run}`, `ok-2-${run}`]);
      expect((await json(await target.fetch(`/v1/actors/${key}/dlq`))).dead_letters).toEqual([]);
    }, 120_000);
  });

  describe(`${kind} clients: outage: the way to Redis goes away mid-run and comes back`, () => {
    let front: Awaited<ReturnType<typeof redisWay>>;
    let target: ReturnType<typeof processTarget>;
    beforeAll(async () => {
      front = await redisWay(kind);
      target = processTarget(BUN_SERVER, sinkEnv(kind, run, { ...front.env, KEYFLOW_REDIS_PREFIX: `it-${run}-outage:` }));
      await target.start();
    });
    afterAll(async () => {
      await target?.stop();
      await front?.stop();
    });

    test("ingest goes on; afterwards everything caught up, nothing lost, nothing doubled; the breaker opened and closed", async () => {
      const random = new SeededRandom(99);
      const base = Math.floor((Date.now() - 3 * 3_600_000) / 60_000) * 60_000;
      const keys = Array.from({ length: 20 }, (_, i) => `outage-${run}-${i}`);
      const expected = new Map<string, string[]>(keys.map((k) => [k, []]));
      const windows = new Map<string, Truth>();
      let seq = 0;
      const batch = (n: number) =>
        Array.from({ length: n }, () => {
          const key = keys[random.int(keys.length)]!;
          const i = seq++;
          const ts = base + i * 100;
          const value = random.int(1_000);
          expected.get(key)!.push(`o${i}`);
          const cell = `${key}|${Math.floor(ts / 60_000) * 60_000}`;
          const t = windows.get(cell) ?? { count: 0, sum: 0, min: Infinity, max: -Infinity };
          windows.set(cell, { count: t.count + 1, sum: t.sum + value, min: Math.min(t.min, value), max: Math.max(t.max, value) });
          return { event_id: `o${i}`, event_type: "purchase", user_id: key, timestamp: ts, value };
        });

      await postBatches(target, batch(500), 250);
      await Bun.sleep(500);
      await front.stop(); // Redis unreachable from here on
      for (let i = 0; i < 6; i++) {
        await postBatches(target, batch(250), 250);
        await Bun.sleep(300);
      }
      const during = await json(await target.fetch(`/v1/actors/${keys[0]}/outbox`));
      const redisDuring = during.sinks.find((s: any) => s.sink === "redis");
      expect(redisDuring.breaker_opened).toBeGreaterThanOrEqual(1);
      expect(during.backlog.redis).toBeGreaterThan(0);
      expect(during.backlog.postgres).toBe(0); // the other sinks kept going

      await front.restart();
      await until("redis caught up, windows closed", 150_000, async () => {
        for (const key of keys) {
          const state = await json(await target.fetch(`/v1/actors/${encodeURIComponent(key)}`));
          if (state.open_windows.length) return false;
        }
        return backlogDrained(target, keys);
      });
      const after = (await json(await target.fetch(`/v1/actors/${keys[0]}/outbox`))).sinks.find((s: any) => s.sink === "redis");
      expect(after.breaker).toBe("closed");
      expect(after.breaker_closed).toBeGreaterThanOrEqual(1);
      for (const key of keys) {
        const entries = (await redis.xrange(`it-${run}-outage:events:${key}`, "-", "+")) as Record<string, Record<string, unknown>>;
        expect(Object.values(entries).map((e) => String(e.event_id))).toEqual(expected.get(key)!);
      }
      await expectRedisWindows(`it-${run}-outage:`, windows);
    }, 300_000);
  });

  describe(`${kind} clients: tenants: the same client key and event id in two tenants, through each sink to the real services`, () => {
    const KEY = `twin-${run}`;
    const ID = `same-${run}`;
    const ACME = "acme";
    const TENANTS = [DEFAULT_TENANT, ACME] as const;
    const START = Date.UTC(2026, 10, 21, 10);
    const TS = START + 30_000;
    const one = (v: number) => ({ count: 1, valued: 1, sum: v, min: v, max: v });
    /** Per tenant: the event and its closed window as the actor named (tenant, KEY) emits them; value 1 for the default tenant, 2 for acme. */
    const records = (): Array<EventRecord | WindowRecord> =>
      TENANTS.flatMap((tenant, i): Array<EventRecord | WindowRecord> => {
        const key = actorName(tenant, KEY);
        return [
          { kind: "event", n: 0, key, id: ID, type: "purchase", ts: TS, value: i + 1, properties: { tenant_index: i }, receivedAt: TS + 1_000, late: false },
          { kind: "window", n: 1, key, spec: "1m", start: START, end: START + 60_000, revision: 1, final: true, all: one(i + 1), types: { purchase: one(i + 1) } },
        ];
      });
    const redisKeys: string[] = [];
    const topics: string[] = [];
    afterAll(async () => {
      if (redisKeys.length) await redis.del(...redisKeys);
      if (!topics.length) return;
      const admin = kafkaClient("keyflow-tenants-cleanup").admin();
      await admin.connect();
      await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => undefined);
      await admin.disconnect();
    });

    test("postgres: two rows in every table, the tenant and the client's key in their columns; delivered again, still two", async () => {
      const batch = records();
      const dead: DeadLetterRecord[] = batch
        .filter((r): r is EventRecord => r.kind === "event")
        .map((r) => ({ kind: "dead_letter", n: 2, key: r.key, sink: "kafka", record: r, error: "refused", failedAt: TS + 2_000 }));
      const sink = sinks.postgres(PG_URL);
      try {
        await sink.deliver([...batch, ...dead]);
        await sink.deliver([...batch, ...dead]);
      } finally {
        await sink.close();
      }
      const rows = async (sql: string) => (await pool.query(sql, [KEY])).rows;
      expect(await rows("SELECT tenant, actor_key, event_id, value FROM processed_events WHERE actor_key = $1 ORDER BY tenant")).toEqual([
        { tenant: ACME, actor_key: KEY, event_id: ID, value: 2 },
        { tenant: DEFAULT_TENANT, actor_key: KEY, event_id: ID, value: 1 },
      ]);
      expect(await rows("SELECT tenant, actor_key, event_id, payload->>'tenant' AS t, payload->>'key' AS k FROM raw_events WHERE actor_key = $1 ORDER BY tenant")).toEqual([
        { tenant: ACME, actor_key: KEY, event_id: ID, t: ACME, k: KEY },
        { tenant: DEFAULT_TENANT, actor_key: KEY, event_id: ID, t: DEFAULT_TENANT, k: KEY },
      ]);
      expect(await rows("SELECT tenant, event_type, sum FROM window_aggregates WHERE actor_key = $1 ORDER BY tenant, event_type")).toEqual([
        { tenant: ACME, event_type: "*", sum: 2 }, { tenant: ACME, event_type: "purchase", sum: 2 },
        { tenant: DEFAULT_TENANT, event_type: "*", sum: 1 }, { tenant: DEFAULT_TENANT, event_type: "purchase", sum: 1 },
      ]);
      expect(await rows("SELECT tenant, sink, outbox_index, record->>'tenant' AS t, record->>'key' AS k FROM failed_events WHERE actor_key = $1 ORDER BY tenant")).toEqual([
        { tenant: ACME, sink: "kafka", outbox_index: "0", t: ACME, k: KEY },
        { tenant: DEFAULT_TENANT, sink: "kafka", outbox_index: "0", t: DEFAULT_TENANT, k: KEY },
      ]);
      for (const table of ["raw_events", "processed_events", "window_aggregates", "failed_events"]) {
        const all = await rows(`SELECT row_to_json(x)::text AS row FROM ${table} x WHERE actor_key = $1`);
        expect(all.length, table).toBeGreaterThan(0);
        for (const { row } of all) expectNoActorName(table, row);
        // The actor name never lands as a key.
        const named = await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE actor_key = $1`, [actorName(ACME, KEY)]);
        expect(named.rows[0].n, table).toBe(0);
      }
    }, 60_000);

    test("redis: a stream and a window hash per tenant, each entry with its tenant; the default tenant's keys as before; {tenant} in the prefix", async () => {
      const plain = `it-${run}-tn:`;
      const templated = `it-${run}-tp:{tenant}:`;
      const cases = [
        { prefix: plain, match: `${plain}*`, bases: { [DEFAULT_TENANT]: plain, [ACME]: `${plain}t:acme:` } },
        { prefix: templated, match: `it-${run}-tp:*`, bases: { [DEFAULT_TENANT]: `it-${run}-tp:default:`, [ACME]: `it-${run}-tp:acme:` } },
      ];
      for (const { prefix, match, bases } of cases) {
        const sink = sinks.redis({ prefix, ttlSeconds: 3_600, streamMaxLen: 1_000 });
        try {
          await sink.deliver(records());
          await sink.deliver(records()); // again: each XADD refused as already there, each hash kept (same revision)
        } finally {
          await sink.close?.();
        }
        const expected: string[] = [];
        for (const [i, tenant] of TENANTS.entries()) {
          const base = bases[tenant]!;
          const stream = RedisSink.streamKey(prefix, tenant, KEY);
          const hash = RedisSink.windowKey(prefix, tenant, KEY, "1m", START);
          expect([stream, hash]).toEqual([`${base}events:${KEY}`, `${base}window:${KEY}:1m:${START}`]);
          expected.push(stream, hash);
          const entries = (await redis.xrange(stream, "-", "+")) as Record<string, Record<string, unknown>>;
          expect(Object.values(entries).map((e) => [String(e.tenant), String(e.event_id), Number(e.value)])).toEqual([[tenant, ID, i + 1]]);
          const h = (await redis.hgetall(hash)) as Record<string, unknown>;
          expect([String(h.tenant), String(h.key), Number(h.sum), Number(h.revision)]).toEqual([tenant, KEY, i + 1, 1]);
        }
        // Every key the sink made under the prefix: these four, and no actor name among them.
        const found: string[] = [];
        let cursor = "0";
        do {
          const [next, keys] = await redis.scan(cursor, { match, count: 1_000 });
          found.push(...keys);
          cursor = String(next);
        } while (cursor !== "0");
        redisKeys.push(...found);
        expect(found.sort()).toEqual(expected.sort());
        for (const key of found) expectNoActorName("redis key", key);
      }
    }, 60_000);

    test("kafka: the client's key as message key, a tenant header on events and windows, {tenant} topics", async () => {
      const base = `it-${run}-tn`;
      const perTenant = TENANTS.flatMap((t) => [`${base}.${t}.events`, `${base}.${t}.windows`]);
      topics.push(...perTenant, `${base}.shared`, `${base}.shared-windows`);
      await Promise.all(topics.map((t) => createTopic(t, 1)));
      await deliverAll(sinks.kafka({ topic: `${base}.{tenant}.events`, windowsTopic: `${base}.{tenant}.windows` }, `${base}-a`), records());
      await deliverAll(sinks.kafka({ topic: `${base}.shared`, windowsTopic: `${base}.shared-windows` }, `${base}-b`), records());

      const view = (r: Awaited<ReturnType<typeof consumeAll>>[number]) => {
        for (const part of [r.key, r.value, ...Object.values(r.headers)]) expectNoActorName(`kafka ${r.topic}`, part?.toString() ?? "");
        const value = JSON.parse(r.value!.toString());
        return { topic: r.topic, key: r.key!.toString(), tenant: r.headers.tenant?.toString(), value: [value.kind, value.tenant, value.key] };
      };
      for (const tenant of TENANTS) {
        const [ev] = (await consumeAll(`${base}.${tenant}.events`, 1)).map(view);
        expect(ev).toEqual({ topic: `${base}.${tenant}.events`, key: KEY, tenant, value: ["event", tenant, KEY] });
        const [win] = (await consumeAll(`${base}.${tenant}.windows`, 1)).map(view);
        expect(win).toEqual({ topic: `${base}.${tenant}.windows`, key: KEY, tenant, value: ["window", tenant, KEY] });
      }
      // One topic for both tenants: the same key and event id twice, told apart by the tenant header.
      const shared = await consumeAll(`${base}.shared`, 2);
      expect(shared.map((r) => [r.key!.toString(), r.headers.tenant!.toString(), r.headers.event_id!.toString()])).toEqual([
        [KEY, DEFAULT_TENANT, ID], [KEY, ACME, ID],
      ]);
      shared.forEach(view);
      const windows = (await consumeAll(`${base}.shared-windows`, 2)).map(view);
      expect(windows.map((w) => [w.key, w.tenant])).toEqual([[KEY, DEFAULT_TENANT], [KEY, ACME]]);
    }, 120_000);
  });

  describe(`${kind} clients: tenants end to end: a server with API keys of two tenants, the same key and event id from each`, () => {
    const NAME = `it-${run}-e2e`;
    const KEY = `e2e-${run}`;
    const ID = `e2e-${run}`;
    const CALLERS = [
      { tenant: "tenant-a", headers: bearer("all"), value: 1 },
      { tenant: "tenant-b", headers: bearer("otherTenant"), value: 2 },
    ];
    let target: ReturnType<typeof processTarget>;
    beforeAll(async () => {
      target = processTarget(BUN_SERVER, {
        ...sinkEnv(kind, run),
        KEYFLOW_API_KEYS: TEST_KEY_LINES,
        KEYFLOW_REDIS_PREFIX: `${NAME}:`,
        KEYFLOW_KAFKA_TOPIC: `${NAME}.{tenant}.events`,
        KEYFLOW_KAFKA_WINDOWS_TOPIC: `${NAME}.{tenant}.windows`,
      });
      await target.start();
    });
    afterAll(async () => {
      await target?.stop();
      await redis.del(...CALLERS.map(({ tenant }) => RedisSink.streamKey(`${NAME}:`, tenant, KEY)));
      const admin = kafkaClient("keyflow-tenants-e2e-cleanup").admin();
      await admin.connect();
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${NAME}.`));
      if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => undefined);
      await admin.disconnect();
    });

    test("each tenant's event reaches Postgres, Redis and its own Kafka topic under its tenant, with the client's key", async () => {
      for (const { headers, value } of CALLERS) {
        const res = await target.fetch("/v1/events", {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ event_id: ID, event_type: "purchase", user_id: KEY, value }),
        });
        expect(res.status, await res.clone().text()).toBe(202);
      }
      const rows = await until("both tenants' events in processed_events", 30_000, async () => {
        const r = await pool.query("SELECT tenant, actor_key, event_id, value FROM processed_events WHERE actor_key = $1 ORDER BY tenant", [KEY]);
        return r.rows.length === 2 ? r.rows : undefined;
      });
      expect(rows).toEqual(CALLERS.map(({ tenant, value }) => ({ tenant, actor_key: KEY, event_id: ID, value })));
      for (const { tenant, value } of CALLERS) {
        const stream = `${NAME}:t:${tenant}:events:${KEY}`;
        const entries = await until(`${tenant}'s stream in Redis`, 30_000, async () => {
          const e = Object.values((await redis.xrange(stream, "-", "+")) as Record<string, Record<string, unknown>>);
          return e.length ? e : undefined;
        });
        expect(entries.map((e) => [String(e.tenant), String(e.event_id), Number(e.value)])).toEqual([[tenant, ID, value]]);
        const [record] = await consumeAll(`${NAME}.${tenant}.events`, 1, 30_000);
        expect([record!.key!.toString(), record!.headers.tenant!.toString(), record!.headers.event_id!.toString()]).toEqual([KEY, tenant, ID]);
        const view = JSON.parse(record!.value!.toString());
        expect([view.tenant, view.key, view.value]).toEqual([tenant, KEY, value]);
        expectNoActorName("kafka record", record!.value!.toString());
      }
    }, 90_000);
  });

  describe(`${kind} clients: postgres migration: tables from before tenants get a tenant column and keys, in place`, () => {
    const db = migrationSchema("tenants", run, kind);

    test("npm run migrate adds tenant ('default' for every row there) and re-keys every table, rows kept; a second run changes nothing", async () => {
      await db.query(TABLES_BEFORE_TENANTS);
      await db.query(ROWS_BEFORE_TENANTS);
      const before = Object.fromEntries(await Promise.all(TABLES.map(async (t) => [t, await db.rows(t)] as const)));
      expect(Object.values(before).map((rows) => rows.length)).toEqual([4, 30, 30, 6]);
      expect(await db.keyColumns("processed_events")).toEqual(["actor_key", "event_id"]);

      // The sink does not migrate by itself: against the old tables a batch fails, transiently, saying what to do.
      const sink = sinks.postgres(db.url);
      try {
        const error = await sink.deliver([oldEvent(0, "acme", "key-1", "old-1")]).catch((e) => e);
        expect(error).toBeInstanceOf(SinkError);
        expect(error.permanent).toBe(false);
        expect(error.message).toContain("npm run migrate");

        const first = db.migrate();
        expect(first.exitCode, first.stderr.toString()).toBe(0);
        expect(await db.shape()).toEqual(KEYS_NOW);
        // The column as a new table has it: NOT NULL, no default (a sink that left it out would fail, not file rows under 'default').
        expect(await db.tenantColumns()).toEqual(
          TABLES_NOW.map((table_name) => ({ table_name, data_type: "text", is_nullable: "NO", column_default: null })),
        );
        for (const table of TABLES) {
          const added =
            table === "processed_events"
              ? { tenant: DEFAULT_TENANT, request_id: null, enriched: null }
              : table === "window_aggregates"
                ? { tenant: DEFAULT_TENANT, shape: null, distinct_count: null, percentiles: null }
                : { tenant: DEFAULT_TENANT };
          expect(await db.rows(table), table).toEqual(before[table]!.map((row: object) => ({ ...row, ...added })));
        }

        // Twice: harmless, and nothing is rebuilt (every index keeps its oid).
        const indexes = await db.indexOids();
        expect(indexes.length).toBe(6);
        const again = db.migrate();
        expect(again.exitCode, again.stderr.toString()).toBe(0);
        expect(await db.indexOids()).toEqual(indexes);
        expect(await db.shape()).toEqual(KEYS_NOW);
        for (const table of TABLES) expect((await db.rows(table)).length, table).toBe(before[table]!.length);

        // The old rows are the default tenant's: its copy of old-1 on key-1 is a duplicate; acme's is a row of its own.
        await sink.deliver([oldEvent(0, DEFAULT_TENANT, "key-1", "old-1"), oldEvent(0, "acme", "key-1", "old-1")]);
        const rows = await db.query("SELECT tenant, actor_key, value FROM processed_events WHERE event_id = 'old-1' ORDER BY tenant");
        expect(rows.rows).toEqual([{ tenant: "acme", actor_key: "key-1", value: 0 }, { tenant: DEFAULT_TENANT, actor_key: "key-1", value: 1 }]);
        const raw = await db.query("SELECT tenant FROM raw_events WHERE event_id = 'old-1' ORDER BY tenant");
        expect(raw.rows).toEqual([{ tenant: "acme" }, { tenant: DEFAULT_TENANT }]);
      } finally {
        await sink.close();
      }
    }, 60_000);
  });

  describe(`${kind} clients: postgres migration: processed_events keyed by event_id alone becomes (tenant, actor_key, event_id)`, () => {
    const db = migrationSchema("migrate", run, kind);

    test("an old table is migrated in place by npm run migrate, its rows kept; then the same event_id lands on two keys", async () => {
      await db.query(PROCESSED_EVENTS_V1);
      await db.query(
        `INSERT INTO processed_events (event_id, actor_key, event_type, event_time, value, properties, received_at, late, minute, hour)
         SELECT 'old-' || i, 'key-' || (i % 3), 'purchase', t, i, jsonb_build_object('i', i), t, false, date_trunc('minute', t), date_trunc('hour', t)
         FROM generate_series(1, 50) AS i, LATERAL (SELECT timestamptz '2026-11-21 10:00:00+00' + i * interval '1 second' AS t) AS x`,
      );
      const before = (await db.query("SELECT * FROM processed_events ORDER BY event_id")).rows;
      expect(await db.keyColumns("processed_events")).toEqual(["event_id"]);

      const sink = sinks.postgres(db.url);
      try {
        const error = await sink.deliver([oldEvent(0, DEFAULT_TENANT, "key-a", `same-${run}`)]).catch((e) => e);
        expect(error).toBeInstanceOf(SinkError);
        expect(error.permanent).toBe(false);
        expect(error.message).toContain("npm run migrate");

        const first = db.migrate();
        expect(first.exitCode, first.stderr.toString()).toBe(0);
        expect(await db.keyColumns("processed_events")).toEqual(["tenant", "actor_key", "event_id"]);
        expect((await db.query("SELECT * FROM processed_events ORDER BY event_id")).rows).toEqual(before.map((row) => ({ ...row, tenant: DEFAULT_TENANT, request_id: null, enriched: null })));
        // The other tables are there too, and a second run changes nothing.
        const again = db.migrate();
        expect(again.exitCode, again.stderr.toString()).toBe(0);
        expect(await db.shape()).toEqual(KEYS_NOW);
        const tables = await db.query("SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", [db.schema]);
        expect(tables.rows.map((r: any) => r.tablename)).toEqual(TABLES_NOW);

        // The same event_id on two keys: two rows; delivered again: still two. The added request_id and enriched columns take the records' values.
        const batch = [
          oldEvent(0, DEFAULT_TENANT, "key-a", `same-${run}`),
          { ...oldEvent(0, DEFAULT_TENANT, "key-b", `same-${run}`), requestId: "req-b", enriched: { category: "high_value", first_purchase: true } },
        ];
        await sink.deliver(batch);
        await sink.deliver(batch);
        const rows = await db.query("SELECT actor_key, value, minute, hour, request_id, enriched FROM processed_events WHERE event_id = $1 ORDER BY actor_key", [`same-${run}`]);
        const ts = new Date(Date.UTC(2026, 10, 21, 10, 0, 0));
        expect(rows.rows).toEqual([
          { actor_key: "key-a", value: 0, minute: ts, hour: ts, request_id: null, enriched: null },
          { actor_key: "key-b", value: 0, minute: ts, hour: ts, request_id: "req-b", enriched: { category: "high_value", first_purchase: true } },
        ]);
        const raw = await db.query("SELECT count(*)::int AS n FROM raw_events WHERE event_id = $1", [`same-${run}`]);
        expect(raw.rows[0].n).toBe(2);
        expect((await db.query("SELECT count(*)::int AS n FROM processed_events")).rows[0].n).toBe(before.length + 2);

        // The alerts table the migration added takes alerts, once per (tenant, actor_key, rule, shape, window_start).
        const start = Date.UTC(2026, 10, 21, 10, 0);
        const alert = (n: number, eventId: string): OutboxAlert => ({
          kind: "alert", n, key: actorName("acme", "key-a"), rule: "burst", window: { shape: "1m", start, end: start + 60_000 }, aggregate: "count", value: 4, eventId, firedAt: start + 1_000,
        });
        await sink.deliver([alert(5, "e4")]);
        await sink.deliver([alert(9, "e9"), { ...alert(10, ""), window: { shape: "1h", start, end: start + 3_600_000 } }]);
        const alerts = await db.query("SELECT tenant, actor_key, rule, shape, window_start, window_end, event_id FROM alerts ORDER BY shape");
        expect(alerts.rows).toEqual([
          { tenant: "acme", actor_key: "key-a", rule: "burst", shape: "1h", window_start: new Date(start), window_end: new Date(start + 3_600_000), event_id: null },
          { tenant: "acme", actor_key: "key-a", rule: "burst", shape: "1m", window_start: new Date(start), window_end: new Date(start + 60_000), event_id: "e4" },
        ]);
      } finally {
        await sink.close();
      }
    }, 60_000);
  });
}

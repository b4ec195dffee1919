import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { SeededRandom } from "../support/fake-env.ts";
import { startUpstashFront, type UpstashFront } from "../support/fronts.ts";
import { consumeAll, ensureServices } from "../support/kafka.ts";
import { PG_URL, preparePostgres, WSPROXY } from "../support/postgres.ts";
import type { EventRecord } from "../../src/actor/outbox.ts";
import { SinkError } from "../../src/delivery/sink.ts";
import { PostgresSink } from "../../src/sinks/postgres/sink.ts";
import { BIN, ROOT } from "../support/process.ts";
import { localSinkEnv, REDIS_FRONT } from "../support/sink-env.ts";
import { BUN_SERVER, processTarget, type Target } from "../support/targets.ts";

// Real Kafka (through the Strimzi bridge), Redis (through the Upstash-REST front) and Postgres
// (through the Neon WebSocket proxy), all started by scripts/services.sh, reached with the same
// client libraries the sinks use in production.
const TOKEN = REDIS_FRONT.token;
const LATENESS = 5_000;
const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

const sinkEnv = (extra: Record<string, string> = {}) => ({
  ...localSinkEnv(`it-${run}`),
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
function workload(prefix: string) {
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

describe("sinks against real Kafka, Redis and Postgres", () => {
  let target: ReturnType<typeof processTarget>;
  beforeAll(async () => {
    target = processTarget(BUN_SERVER, sinkEnv());
    await target.start();
  });
  afterAll(() => target?.stop());

  test("20,000 events, 200 keys, 10% duplicates, 5% late: every sink holds each accepted event once and the ground-truth windows", async () => {
    const w = workload("load");
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

  test("the same event_id on two keys is two events, and Postgres keeps both (keyed by actor_key, event_id)", async () => {
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
         FROM processed_events p JOIN raw_events r USING (actor_key, event_id) WHERE p.event_id = $1 ORDER BY p.actor_key`,
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

describe("outage: the Redis front goes away mid-run and comes back", () => {
  let front: UpstashFront;
  let target: ReturnType<typeof processTarget>;
  beforeAll(async () => {
    front = await startUpstashFront({ token: TOKEN });
    target = processTarget(BUN_SERVER, sinkEnv({ KEYFLOW_REDIS_URL: front.url, KEYFLOW_REDIS_PREFIX: `it-${run}-outage:` }));
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

    front = await startUpstashFront({ token: TOKEN, port: front.port });
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

describe("postgres migration: processed_events keyed by event_id alone becomes (actor_key, event_id)", () => {
  // A schema of its own (the sessions' search_path), so the shared tables are not touched.
  const schema = `kf_migrate_${run}`;
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

  const event = (n: number, key: string, id: string): EventRecord => ({
    kind: "event", n, key, id, type: "purchase", ts: Date.UTC(2026, 10, 21, 10, 0, n), value: n, receivedAt: Date.UTC(2026, 10, 21, 10, 1), late: false,
  });
  const primaryKey = async () =>
    (
      await scoped.query(
        `SELECT array_agg(a.attname::text ORDER BY k.i) AS cols FROM pg_constraint c
         CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
         WHERE c.conrelid = 'processed_events'::regclass AND c.contype = 'p'`,
      )
    ).rows[0].cols;
  const migrate = () =>
    Bun.spawnSync([`${BIN}/bun`, "scripts/migrate.ts"], {
      cwd: ROOT,
      env: { ...process.env, KEYFLOW_POSTGRES_URL: url, KEYFLOW_NEON_WSPROXY: WSPROXY },
      stdout: "pipe",
      stderr: "pipe",
    });

  test("an old table is migrated in place by npm run migrate, its rows kept; then the same event_id lands on two keys", async () => {
    await scoped.query(PROCESSED_EVENTS_V1);
    await scoped.query(
      `INSERT INTO processed_events (event_id, actor_key, event_type, event_time, value, properties, received_at, late, minute, hour)
       SELECT 'old-' || i, 'key-' || (i % 3), 'purchase', t, i, jsonb_build_object('i', i), t, false, date_trunc('minute', t), date_trunc('hour', t)
       FROM generate_series(1, 50) AS i, LATERAL (SELECT timestamptz '2026-11-21 10:00:00+00' + i * interval '1 second' AS t) AS x`,
    );
    const before = (await scoped.query("SELECT * FROM processed_events ORDER BY event_id")).rows;
    expect(await primaryKey()).toEqual(["event_id"]);

    // The sink does not migrate by itself: against the old table a batch fails, transiently, saying what to do.
    const sink = new PostgresSink({ url, wsProxy: WSPROXY, wsProxyTls: false, poolPerDelivery: false });
    try {
      const error = await sink.deliver([event(0, "key-a", `same-${run}`)]).catch((e) => e);
      expect(error).toBeInstanceOf(SinkError);
      expect(error.permanent).toBe(false);
      expect(error.message).toContain("npm run migrate");

      const first = migrate();
      expect(first.exitCode, first.stderr.toString()).toBe(0);
      expect(await primaryKey()).toEqual(["actor_key", "event_id"]);
      expect((await scoped.query("SELECT * FROM processed_events ORDER BY event_id")).rows).toEqual(before);
      // The other tables are there too, and a second run changes nothing.
      const again = migrate();
      expect(again.exitCode, again.stderr.toString()).toBe(0);
      expect(await primaryKey()).toEqual(["actor_key", "event_id"]);
      const tables = await scoped.query("SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", [schema]);
      expect(tables.rows.map((r: any) => r.tablename)).toEqual(["failed_events", "processed_events", "raw_events", "window_aggregates"]);

      // The same event_id on two keys: two rows; delivered again: still two.
      const batch = [event(0, "key-a", `same-${run}`), event(0, "key-b", `same-${run}`)];
      await sink.deliver(batch);
      await sink.deliver(batch);
      const rows = await scoped.query("SELECT actor_key, value, minute, hour FROM processed_events WHERE event_id = $1 ORDER BY actor_key", [`same-${run}`]);
      const ts = new Date(Date.UTC(2026, 10, 21, 10, 0, 0));
      expect(rows.rows).toEqual([
        { actor_key: "key-a", value: 0, minute: ts, hour: ts },
        { actor_key: "key-b", value: 0, minute: ts, hour: ts },
      ]);
      const raw = await scoped.query("SELECT count(*)::int AS n FROM raw_events WHERE event_id = $1", [`same-${run}`]);
      expect(raw.rows[0].n).toBe(2);
      expect((await scoped.query("SELECT count(*)::int AS n FROM processed_events")).rows[0].n).toBe(before.length + 2);
    } finally {
      await sink.close();
    }
  }, 60_000);
});

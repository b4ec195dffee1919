/**
 * No sink failure ends the process (issue 9, defect 3). A Bun server delivers to all three sinks
 * while ingest goes on; meanwhile each sink's connection is cut mid-delivery: the server's Postgres
 * backends are terminated (pg_terminate_backend) several times, the Neon WebSocket proxy, the
 * Upstash-REST front and the Kafka REST front are killed and started again on the same port. Every
 * ingest must answer 2xx (a 429 is retried), the server must stay up, and afterwards Postgres and
 * Redis hold every accepted event exactly once and Kafka every one at least once (README, "Effectively
 * once": a produce whose reply is lost is sent again; duplicates are reported, not failed).
 *
 * The fronts here are this test's own (free ports), so restarting them disturbs no other test; the
 * server's Postgres sessions carry an application_name of their own, so only they are terminated,
 * and write to tables in a schema of their own (dropped at the end).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { startNeonProxy, startUpstashFront, type NeonProxy, type UpstashFront } from "../support/fronts.ts";
import { consumeAll, ensureServices, kafkaClient } from "../support/kafka.ts";
import { PG_URL, preparePostgres, WSPROXY } from "../support/postgres.ts";
import { PostgresSink } from "../../src/sinks/postgres/sink.ts";
import { localSinkEnv, REDIS_FRONT } from "../support/sink-env.ts";
import { backends, kill, serverAlive, startIngest, startKafkaFront, terminateBackends, until, type KafkaFront } from "../support/sink-faults.ts";
import { BUN_SERVER, spawnServer, tempDir, type ServerProcess } from "../support/targets.ts";

const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const NAME = `flt-${run}`;
const APP = `keyflow-faults-${run}`;
const SCHEMA = `kf_faults_${run}`;
const SEARCH_PATH = `options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;
const KEYS = Array.from({ length: 300 }, (_, i) => `fault-${run}-${i}`);
const LANES = 2; // concurrent ingest clients, each with keys of its own (so each key's order is known)
const EVENTS_PER_REQUEST = 100;

let pool: Pool;
let redisFront: UpstashFront;
let kafkaFront: KafkaFront;
let neonProxy: NeonProxy;
let server: ServerProcess;
const dir = tempDir("sink-faults");
const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres();
  pool.on("error", () => undefined); // this checking pool is never the target, but a test must not die of it either
  await pool.query(`CREATE SCHEMA ${SCHEMA}`);
  const migrator = new PostgresSink({ url: `${PG_URL}?${SEARCH_PATH}`, wsProxy: WSPROXY, wsProxyTls: false, poolPerDelivery: false });
  await migrator.migrate();
  await migrator.close();
  [redisFront, kafkaFront, neonProxy] = await Promise.all([startUpstashFront(), startKafkaFront(), startNeonProxy()]);
  server = await spawnServer(BUN_SERVER, {
    ...localSinkEnv(NAME),
    KEYFLOW_REDIS_URL: redisFront.url,
    KEYFLOW_KAFKA_REST_URL: kafkaFront.url,
    KEYFLOW_NEON_WSPROXY: neonProxy.address,
    KEYFLOW_POSTGRES_URL: `${PG_URL}?application_name=${APP}&${SEARCH_PATH}`,
    KEYFLOW_WINDOWS: "1m",
    KEYFLOW_SINK_TIMEOUT: "5s",
    KEYFLOW_SINK_BACKOFF_MAX: "500ms",
    KEYFLOW_BREAKER_COOLDOWN: "500ms",
    PORT: "0",
    HOST: "127.0.0.1",
    KEYFLOW_DATA_DIR: dir.path,
  });
}, 300_000);

afterAll(async () => {
  await server?.stop();
  await Promise.all([redisFront?.stop(), kafkaFront?.stop(), neonProxy?.stop()]);
  // What the run wrote outside its schema: its Redis keys and Kafka topics.
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, { match: `${NAME}:*`, count: 1000 });
    if (keys.length) await redis.del(...keys);
    cursor = String(next);
  } while (cursor !== "0");
  const admin = kafkaClient("keyflow-faults-cleanup").admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${NAME}.`));
  if (topics.length) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.disconnect();
  await pool?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pool?.end();
  dir.remove();
});


/** Like until(), and fails at once if the server died meanwhile. */
const waitFor = <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false | null | 0>) =>
  until(what, timeoutMs, probe, () => serverAlive(server));

const pgCount = async () =>
  (await pool.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.processed_events`)).rows[0].n as number;

const redisCount = async () => {
  const p = redis.pipeline();
  for (const key of KEYS) p.xlen(`${NAME}:events:${key}`);
  return ((await p.exec()) as number[]).reduce((a, b) => a + b, 0);
};

describe("sink faults: connections cut mid-delivery while ingest goes on", () => {
  test("every ingest answers 2xx, the server stays up, and every sink ends up with every accepted event", async () => {
    const load = startIngest(server, { keys: KEYS, lanes: LANES, eventsPerRequest: EVENTS_PER_REQUEST, run });
    const { accepted, statuses } = load;
    const check = () => load.check();
    const faults: string[] = [];

    try {
      await waitFor("the first events in Postgres", 30_000, async () => (await pgCount()) > 0);

      // (a) Postgres: terminate the server's backends, several times, each while delivery goes on.
      for (let round = 0; round < 4; round++) {
        await waitFor("a backend of the server", 30_000, () => backends(pool, APP));
        const before = await pgCount();
        const n = await terminateBackends(pool, APP);
        faults.push(`terminated ${n} postgres backend(s)`);
        check();
        await waitFor("Postgres delivery after pg_terminate_backend", 30_000, async () => (await pgCount()) > before);
        check();
      }

      // (b) the Neon WebSocket proxy dies and comes back on the same port.
      let before = await pgCount();
      await kill(neonProxy);
      faults.push("killed the neon proxy");
      await Bun.sleep(500); // an outage, not a blip (not a wait for correctness)
      check();
      neonProxy = await startNeonProxy({ port: neonProxy.port });
      await waitFor("Postgres delivery after the proxy restart", 30_000, async () => (await pgCount()) > before);
      check();

      // (c) the Upstash-REST front in front of Redis.
      before = await redisCount();
      await kill(redisFront);
      faults.push("killed the redis front");
      await Bun.sleep(500);
      check();
      redisFront = await startUpstashFront({ port: redisFront.port });
      await waitFor("Redis delivery after the front restart", 30_000, async () => (await redisCount()) > before);
      check();

      // (d) the Kafka REST front.
      const admin = kafkaClient("keyflow-faults-admin").admin();
      await admin.connect();
      const kafkaOffsets = async () => {
        const offsets = await admin.fetchTopicOffsets(`${NAME}.events`);
        return offsets.reduce((n, o) => n + Number(o.high), 0);
      };
      try {
        const kafkaBefore = await kafkaOffsets();
        await kill(kafkaFront);
        faults.push("killed the kafka front");
        await Bun.sleep(500);
        check();
        kafkaFront = await startKafkaFront(kafkaFront.port);
        await waitFor("Kafka delivery after the front restart", 30_000, async () => (await kafkaOffsets()) > kafkaBefore);
      } finally {
        await admin.disconnect();
      }

      // One more round on Postgres, right after the others.
      const n = await terminateBackends(pool, APP);
      faults.push(`terminated ${n} postgres backend(s)`);
      check();
    } finally {
      await load.stop();
    }
    check();
    const total = [...accepted.values()].reduce((n, ids) => n + ids.length, 0);
    expect(total).toBe(load.sent);

    // Every outbox drains: each sink took every record.
    await waitFor("every outbox drained", 120_000, async () => {
      for (const key of KEYS) {
        const outbox = (await (await fetch(`${server.url}/v1/actors/${encodeURIComponent(key)}/outbox`)).json()) as any;
        if (Object.values(outbox.backlog).some((n) => n !== 0)) return false;
      }
      return true;
    });
    check();

    // Postgres: exactly one row per accepted (tenant, key, event_id), in both tables; every one the default tenant's.
    const rows = (await pool.query(`SELECT tenant, actor_key, event_id FROM ${SCHEMA}.processed_events`)).rows as any[];
    const inPg = new Set(rows.map((r) => JSON.stringify([r.tenant, r.actor_key, r.event_id])));
    expect(rows.length).toBe(total);
    expect(inPg.size).toBe(total);
    for (const [key, ids] of accepted) {
      for (const id of ids) if (!inPg.has(JSON.stringify(["default", key, id]))) throw new Error(`postgres lacks ${key}/${id}`);
    }
    const raw = await pool.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.raw_events`);
    expect(raw.rows[0].n).toBe(total);

    // Redis: each key's stream holds its events once, in acceptance order.
    for (let i = 0; i < KEYS.length; i += 50) {
      const slice = KEYS.slice(i, i + 50);
      const p = redis.pipeline();
      for (const key of slice) p.xrange(`${NAME}:events:${key}`, "-", "+");
      const streams = (await p.exec()) as Array<Record<string, Record<string, unknown>>>;
      slice.forEach((key, j) => {
        expect(Object.values(streams[j]!).map((e) => String(e.event_id)), `redis stream of ${key}`).toEqual(accepted.get(key)!);
      });
    }

    // Kafka: every accepted event at least once; duplicates (a produce whose reply was lost) reported.
    const records = await consumeAll(`${NAME}.events`, total, 120_000, { settleMs: 2_000 });
    const seen = new Map<string, number>();
    for (const r of records) {
      const id = r.headers.event_id!.toString();
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    for (const ids of accepted.values()) for (const id of ids) if (!seen.has(id)) throw new Error(`kafka lacks ${id}`);
    expect(seen.size).toBe(total);
    const duplicates = records.length - seen.size;
    const lost = server.output().match(/postgres sink: connection lost/g)?.length ?? 0;
    // The faults hit deliveries: each sink saw transient failures (and retried them), none dead-lettered.
    const outbox = (await (await fetch(`${server.url}/v1/actors/${encodeURIComponent(KEYS[0]!)}/outbox`)).json()) as any;
    const failures = Object.fromEntries(outbox.sinks.map((s: any) => [s.sink, s.transient_failures]));
    for (const sink of ["postgres", "redis", "kafka"]) expect(failures[sink], `${sink} transient failures`).toBeGreaterThan(0);
    expect(outbox.sinks.map((s: any) => [s.sink, s.dead_lettered])).toEqual([["kafka", 0], ["redis", 0], ["postgres", 0]]);
    console.log(
      `sink faults: ${total} events accepted (${statuses[200]} requests 200, ${load.retried} retried after 429); ` +
        `${faults.join(", ")}; the server logged ${lost} lost Postgres connections; transient delivery failures ${JSON.stringify(failures)}; ` +
        `kafka duplicates: ${duplicates}`,
    );
    expect(Object.keys(statuses).filter((s) => s !== "200" && s !== "429")).toEqual([]);
    serverAlive(server);
  }, 400_000);
});

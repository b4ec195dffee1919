/**
 * No sink failure ends the process, with the native clients too (issue 13): a Bun server delivers to
 * Redis through ioredis (redis://) and to Postgres through postgres.js while ingest goes on, and
 * meanwhile their connections are cut mid-delivery: the server's Postgres backends are terminated
 * (pg_terminate_backend) several times, its Redis connections killed by Redis (CLIENT KILL ADDR),
 * and the way to each server cut and closed for a while (a TCP proxy of this test's own, stopped
 * and started again on its port). Every ingest must answer 2xx (a 429 is retried), the server must
 * stay up, and afterwards Postgres and Redis hold every accepted event exactly once.
 *
 * The shared servers are never restarted: only this server's own connections are killed (its
 * Postgres sessions carry an application_name of their own, its Redis connections come from the
 * proxy's ports), and it writes to tables in a schema of its own (dropped at the end).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Pool } from "@neondatabase/serverless";
import { Redis } from "ioredis";
import { ensureServices, kafkaClient } from "../support/kafka.ts";
import { PG_URL, preparePostgres } from "../support/postgres.ts";
import { NativePostgresSink } from "../../src/sinks/postgres/native.ts";
import { localSinkEnv } from "../support/sink-env.ts";
import { backends, serverAlive, startIngest, terminateBackends, until } from "../support/sink-faults.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { BUN_SERVER, spawnServer, tempDir, type ServerProcess } from "../support/targets.ts";

const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const NAME = `nflt-${run}`;
const APP = `keyflow-native-faults-${run}`;
const SCHEMA = `kf_nfaults_${run}`;
const SEARCH_PATH = `options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;
const KEYS = Array.from({ length: 200 }, (_, i) => `nfault-${run}-${i}`);
const LANES = 2; // concurrent ingest clients, each with keys of its own (so each key's order is known)
const EVENTS_PER_REQUEST = 100;

let pool: Pool;
let pgProxy: TcpProxy;
let redisProxy: TcpProxy;
let server: ServerProcess;
const dir = tempDir("native-sink-faults");
const redis = new Redis("redis://127.0.0.1:6379", { lazyConnect: true });
redis.on("error", () => undefined);

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres();
  pool.on("error", () => undefined);
  await pool.query(`CREATE SCHEMA ${SCHEMA}`);
  const migrator = new NativePostgresSink({ url: `${PG_URL}?${SEARCH_PATH}`, wsProxyTls: false, poolPerDelivery: false });
  await migrator.migrate();
  await migrator.close();
  [pgProxy, redisProxy] = await Promise.all([startTcpProxy(5432), startTcpProxy(6379)]);
  server = await spawnServer(BUN_SERVER, {
    ...localSinkEnv(NAME, "native"),
    KEYFLOW_REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
    KEYFLOW_POSTGRES_URL: `postgres://postgres@127.0.0.1:${pgProxy.port}/test?application_name=${APP}&${SEARCH_PATH}`,
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
  await Promise.all([pgProxy?.stop(), redisProxy?.stop()]);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${NAME}:*`, "COUNT", 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== "0");
  redis.disconnect();
  const admin = kafkaClient("keyflow-native-faults-cleanup").admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${NAME}.`));
  if (topics.length) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.disconnect();
  await pool?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pool?.end();
  dir.remove();
});


const waitFor = <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false | null | 0>) =>
  until(what, timeoutMs, probe, () => serverAlive(server));

const pgCount = async () => (await pool.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.processed_events`)).rows[0].n as number;

const redisCount = async () => {
  const p = redis.pipeline();
  for (const key of KEYS) p.xlen(`${NAME}:events:${key}`);
  return ((await p.exec()) ?? []).reduce((n, [, len]) => n + Number(len), 0);
};

/** Redis closes the server's connections to it (they come from the proxy's ports): a connection killed server-side. */
async function killRedisConnections(): Promise<number> {
  let killed = 0;
  for (const port of redisProxy.upstreamPorts()) {
    // An error here: that connection closed meanwhile.
    if (await redis.call("CLIENT", "KILL", "ADDR", `127.0.0.1:${port}`).then(() => true, () => false)) killed++;
  }
  return killed;
}

describe("native sink faults: connections cut mid-delivery while ingest goes on", () => {
  test("every ingest answers 2xx, the server stays up, and Redis and Postgres end up with every accepted event once", async () => {
    await redis.connect();
    const load = startIngest(server, { keys: KEYS, lanes: LANES, eventsPerRequest: EVENTS_PER_REQUEST, run });
    const { accepted, statuses } = load;
    const check = () => load.check();
    const faults: string[] = [];
    /** How many connections each kind of kill ended, over all rounds. */
    const killed: Record<string, number> = {};
    /** Runs a fault, then waits until the sink has written more than before it. */
    const fault = async (what: string, count: () => Promise<number>, act: () => Promise<unknown>) => {
      const before = await count();
      const detail = await act();
      if (typeof detail === "number") killed[what] = (killed[what] ?? 0) + detail;
      faults.push(`${what}${typeof detail === "number" ? ` (${detail})` : ""}`);
      check();
      await waitFor(`delivery after: ${what}`, 30_000, async () => (await count()) > before);
      check();
    };

    try {
      await waitFor("the first events in Postgres and Redis", 30_000, async () => (await pgCount()) > 0 && (await redisCount()) > 0);
      for (let round = 0; round < 3; round++) {
        await waitFor("a backend of the server", 30_000, () => backends(pool, APP));
        await fault("terminated postgres backends", pgCount, () => terminateBackends(pool, APP));
        await fault("redis killed the server's connections", redisCount, killRedisConnections);
      }
      await fault("cut every connection to postgres", pgCount, async () => pgProxy.cut());
      await fault("cut every connection to redis", redisCount, async () => redisProxy.cut());
      // Each server unreachable for a while (an outage, not a blip: the sleep is the outage's length, not a wait).
      await fault("postgres unreachable for 500 ms", pgCount, async () => {
        await pgProxy.stop();
        await Bun.sleep(500);
        check();
        await pgProxy.start();
      });
      await fault("redis unreachable for 500 ms", redisCount, async () => {
        await redisProxy.stop();
        await Bun.sleep(500);
        check();
        await redisProxy.start();
      });
      faults.push(`terminated ${await terminateBackends(pool, APP)} postgres backend(s) at the end`);
      check();
    } finally {
      await load.stop();
    }
    check();
    // The kills hit live connections (a round may find a connection just reconnecting, not all of them).
    expect(killed["terminated postgres backends"]).toBeGreaterThan(0);
    expect(killed["redis killed the server's connections"]).toBeGreaterThan(0);
    const total = [...accepted.values()].reduce((n, ids) => n + ids.length, 0);
    expect(total).toBe(load.sent);

    await waitFor("every outbox drained", 120_000, async () => {
      for (const key of KEYS) {
        const outbox = (await (await fetch(`${server.url}/v1/actors/${encodeURIComponent(key)}/outbox`)).json()) as any;
        if (Object.values(outbox.backlog).some((n) => n !== 0)) return false;
      }
      return true;
    });
    check();

    // Postgres: exactly one row per accepted (tenant, key, event_id), in both tables.
    const rows = (await pool.query(`SELECT tenant, actor_key, event_id FROM ${SCHEMA}.processed_events`)).rows as any[];
    const inPg = new Set(rows.map((r) => JSON.stringify([r.tenant, r.actor_key, r.event_id])));
    expect(rows.length).toBe(total);
    expect(inPg.size).toBe(total);
    for (const [key, ids] of accepted) {
      for (const id of ids) if (!inPg.has(JSON.stringify(["default", key, id]))) throw new Error(`postgres lacks ${key}/${id}`);
    }
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.raw_events`)).rows[0].n).toBe(total);

    // Redis: each key's stream holds its events once, in acceptance order.
    for (let i = 0; i < KEYS.length; i += 50) {
      const slice = KEYS.slice(i, i + 50);
      const p = redis.pipeline();
      for (const key of slice) p.xrange(`${NAME}:events:${key}`, "-", "+");
      const streams = (await p.exec())!;
      slice.forEach((key, j) => {
        const [error, entries] = streams[j]!;
        expect(error).toBeNull();
        const ids = (entries as Array<[string, string[]]>).map(([, fields]) => fields[fields.indexOf("event_id") + 1]);
        expect(ids, `redis stream of ${key}`).toEqual(accepted.get(key)!);
      });
    }

    // The faults hit deliveries: both native sinks saw transient failures (and retried them), none dead-lettered.
    const outbox = (await (await fetch(`${server.url}/v1/actors/${encodeURIComponent(KEYS[0]!)}/outbox`)).json()) as any;
    const failures = Object.fromEntries(outbox.sinks.map((s: any) => [s.sink, s.transient_failures]));
    for (const sink of ["postgres", "redis"]) expect(failures[sink], `${sink} transient failures`).toBeGreaterThan(0);
    expect(outbox.sinks.map((s: any) => [s.sink, s.dead_lettered])).toEqual([["kafka", 0], ["redis", 0], ["postgres", 0]]);
    console.log(`native sink faults: ${total} events accepted (${statuses[200]} requests 200); ${faults.join(", ")}; transient delivery failures ${JSON.stringify(failures)}`);
    expect(Object.keys(statuses).filter((s) => s !== "200" && s !== "429")).toEqual([]);
    serverAlive(server);
  }, 400_000);
});

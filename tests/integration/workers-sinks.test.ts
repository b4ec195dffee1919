import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { bearer, TEST_KEY_LINES } from "../support/api-keys.ts";
import { consumeAll, ensureServices, kafkaClient } from "../support/kafka.ts";
import { preparePostgres } from "../support/postgres.ts";
import { localSinkEnv, REDIS_FRONT } from "../support/sink-env.ts";
import { processTarget, WORKERD_SERVER } from "../support/targets.ts";

// The same delivery engine on the edge host: each Durable Object delivers its own outbox from its
// alarm, through the same sink clients, to the real services.
const run = `w${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
let pool: Pool;
let target: ReturnType<typeof processTarget>;
/** The same Worker with the API keys of two tenants (tests/support/api-keys.ts), topics per tenant. */
let tenants: ReturnType<typeof processTarget>;
const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });
const SETTINGS = { KEYFLOW_WINDOWS: "1m", KEYFLOW_ALLOWED_LATENESS: "2s", KEYFLOW_IDLE_TIMEOUT: "1s", KEYFLOW_SINK_MAX_DELAY: "50ms" };

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres();
  target = processTarget(WORKERD_SERVER, { ...localSinkEnv(run), ...SETTINGS });
  tenants = processTarget(WORKERD_SERVER, {
    ...localSinkEnv(`${run}t`),
    ...SETTINGS,
    KEYFLOW_API_KEYS: TEST_KEY_LINES,
    KEYFLOW_KAFKA_TOPIC: `${run}t.{tenant}.events`,
    KEYFLOW_KAFKA_WINDOWS_TOPIC: `${run}t.{tenant}.windows`,
  });
  await Promise.all([target.start(), tenants.start()]);
}, 300_000);

afterAll(async () => {
  await Promise.all([target?.stop(), tenants?.stop()]);
  await pool?.end();
  const admin = kafkaClient("keyflow-workers-tenants-cleanup").admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${run}t.`));
  if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => undefined);
  await admin.disconnect();
});

test("Durable Objects deliver events and closed windows to Kafka, Redis and Postgres from their alarms", async () => {
  const base = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
  const keys = Array.from({ length: 10 }, (_, i) => `${run}-k${i}`);
  const truth = new Map<string, { count: number; sum: number }>();
  const events = keys.flatMap((key, k) =>
    Array.from({ length: 30 }, (_, j) => {
      // Each key's last event sits just before a minute ends, so its last window closes soon after.
      const ts = base + 60_000 + j * 2_000 - 1_000;
      const value = k * 100 + j;
      const cell = `${key}|${Math.floor(ts / 60_000) * 60_000}`;
      const t = truth.get(cell) ?? { count: 0, sum: 0 };
      truth.set(cell, { count: t.count + 1, sum: t.sum + value });
      return { event_id: `${key}-${j}`, event_type: "purchase", user_id: key, timestamp: ts, value };
    }),
  );
  const res = await target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
  expect(((await res.json()) as any).accepted).toBe(300);

  const deadline = Date.now() + 60_000;
  let windows: any[] = [];
  while (Date.now() < deadline) {
    windows = (await pool.query("SELECT actor_key, (extract(epoch FROM window_start) * 1000)::bigint AS start, count, sum, final FROM window_aggregates WHERE actor_key LIKE $1 AND event_type = '*'", [`${run}-%`])).rows;
    if (windows.length === truth.size) break;
    await Bun.sleep(250);
  }
  expect(windows.length).toBe(truth.size);
  for (const w of windows) {
    expect({ count: Number(w.count), sum: w.sum, final: w.final }).toEqual({ ...truth.get(`${w.actor_key}|${w.start}`)!, final: true });
  }
  // A server without API keys: every record is the default tenant's, under the names of before tenants.
  const processed = await pool.query(
    "SELECT count(DISTINCT event_id)::int AS n, count(*)::int AS rows, array_agg(DISTINCT tenant) AS tenants FROM processed_events WHERE actor_key LIKE $1",
    [`${run}-%`],
  );
  expect(processed.rows[0]).toEqual({ n: 300, rows: 300, tenants: ["default"] });
  for (const [cell, t] of truth) {
    const [key, start] = cell.split("|");
    const h = (await redis.hgetall(`${run}:window:${key}:1m:${start}`)) as Record<string, unknown>;
    expect({ count: Number(h.count), sum: Number(h.sum), final: String(h.final), tenant: h.tenant, key: h.key }).toEqual({ ...t, final: "1", tenant: "default", key });
  }
  const records = await consumeAll(`${run}.events`, 300, 30_000, { settleMs: 500 });
  expect(records.length).toBe(300);
  expect(new Set(records.map((r) => r.headers.tenant?.toString()))).toEqual(new Set(["default"]));
  for (const key of keys) {
    const ids = records.filter((r) => r.key!.toString() === key).map((r) => r.headers.event_id!.toString());
    expect(ids).toEqual(Array.from({ length: 30 }, (_, j) => `${key}-${j}`));
  }
}, 120_000);

test("Durable Objects of two tenants with the same key and event id deliver each tenant's records under its tenant", async () => {
  const key = `${run}-twin`;
  const id = `${run}-same`;
  const base = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
  const callers = [
    { tenant: "tenant-a", headers: bearer("all"), value: 1 },
    { tenant: "tenant-b", headers: bearer("otherTenant"), value: 2 },
  ];
  for (const { headers, value } of callers) {
    // Two events, the second a minute later: the first one's window then closes (allowed lateness 2 s).
    const res = await tenants.fetch("/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify([
        { event_id: id, event_type: "purchase", user_id: key, timestamp: base + 1_000, value },
        { event_id: `${id}-next`, event_type: "purchase", user_id: key, timestamp: base + 65_000, value },
      ]),
    });
    expect(res.status, await res.clone().text()).toBe(200);
  }
  const deadline = Date.now() + 60_000;
  let rows: any[] = [];
  let windows: any[] = [];
  while (Date.now() < deadline) {
    rows = (await pool.query("SELECT tenant, actor_key, value FROM processed_events WHERE event_id = $1 ORDER BY tenant", [id])).rows;
    windows = (
      await pool.query(
        "SELECT tenant, actor_key, sum FROM window_aggregates WHERE actor_key = $1 AND event_type = '*' AND window_start = to_timestamp($2::double precision / 1000) ORDER BY tenant",
        [key, base],
      )
    ).rows;
    if (rows.length === 2 && windows.length === 2) break;
    await Bun.sleep(250);
  }
  expect(rows).toEqual(callers.map(({ tenant, value }) => ({ tenant, actor_key: key, value })));
  expect(windows).toEqual(callers.map(({ tenant, value }) => ({ tenant, actor_key: key, sum: value })));
  for (const { tenant, value } of callers) {
    const entries = Object.values((await redis.xrange(`${run}t:t:${tenant}:events:${key}`, "-", "+")) as Record<string, Record<string, unknown>>);
    expect(entries.map((e) => [String(e.tenant), String(e.event_id), Number(e.value)])).toEqual([[tenant, id, value], [tenant, `${id}-next`, value]]);
    const h = (await redis.hgetall(`${run}t:t:${tenant}:window:${key}:1m:${base}`)) as Record<string, unknown>;
    expect([String(h.tenant), String(h.key), Number(h.sum)]).toEqual([tenant, key, value]);
    const events = await consumeAll(`${run}t.${tenant}.events`, 2, 30_000);
    expect(events.map((r) => [r.key!.toString(), r.headers.tenant!.toString(), r.headers.event_id!.toString()])).toEqual([
      [key, tenant, id], [key, tenant, `${id}-next`],
    ]);
    const [window] = await consumeAll(`${run}t.${tenant}.windows`, 1, 30_000);
    expect([window!.key!.toString(), window!.headers.tenant!.toString(), JSON.parse(window!.value!.toString()).tenant]).toEqual([key, tenant, tenant]);
  }
}, 120_000);

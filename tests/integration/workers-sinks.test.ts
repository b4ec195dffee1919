import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { consumeAll, ensureServices } from "../support/kafka.ts";
import { preparePostgres } from "../support/postgres.ts";
import { localSinkEnv, REDIS_FRONT } from "../support/sink-env.ts";
import { processTarget, WORKERD_SERVER } from "../support/targets.ts";

// The same delivery engine on the edge host: each Durable Object delivers its own outbox from its
// alarm, through the same sink clients, to the real services.
const run = `w${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
let pool: Pool;
let target: ReturnType<typeof processTarget>;
const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres();
  target = processTarget(WORKERD_SERVER, {
    ...localSinkEnv(run),
    KEYFLOW_WINDOWS: "1m",
    KEYFLOW_ALLOWED_LATENESS: "2s",
    KEYFLOW_IDLE_TIMEOUT: "1s",
    KEYFLOW_SINK_MAX_DELAY: "50ms",
  });
  await target.start();
}, 300_000);

afterAll(async () => {
  await target?.stop();
  await pool?.end();
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
  const processed = await pool.query("SELECT count(DISTINCT event_id)::int AS n, count(*)::int AS rows FROM processed_events WHERE actor_key LIKE $1", [`${run}-%`]);
  expect(processed.rows[0]).toEqual({ n: 300, rows: 300 });
  for (const [cell, t] of truth) {
    const [key, start] = cell.split("|");
    const h = (await redis.hgetall(`${run}:window:${key}:1m:${start}`)) as Record<string, unknown>;
    expect({ count: Number(h.count), sum: Number(h.sum), final: String(h.final) }).toEqual({ ...t, final: "1" });
  }
  const records = await consumeAll(`${run}.events`, 300, 30_000, { settleMs: 500 });
  expect(records.length).toBe(300);
  for (const key of keys) {
    const ids = records.filter((r) => r.key!.toString() === key).map((r) => r.headers.event_id!.toString());
    expect(ids).toEqual(Array.from({ length: 30 }, (_, j) => `${key}-${j}`));
  }
}, 120_000);

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { RedisSink } from "../../src/sinks/redis/sink.ts";
import { consumeAll, createTopic, ensureServices, kafkaClient } from "../support/kafka.ts";
import { preparePostgres } from "../support/postgres.ts";
import { localSinkEnv, REDIS_FRONT } from "../support/sink-env.ts";
import { BUN_SERVER, processTarget, tempDir } from "../support/targets.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";
import { until } from "../support/sink-faults.ts";

// Issue 12: a detection rule's alerts reach every sink once per rule, key and window, on the real local
// services (scripts/services.sh): Kafka through the REST front, Redis through the Upstash front,
// Postgres through the Neon WebSocket proxy, and a webhook receiver in this process. Retried events,
// a second post of the same stream and a restart of the server add nothing.
const run = `al${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });
const MIN = 60_000;
let pool: Pool;

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres(); // npm run migrate's statements: adds the alerts table to an older database
}, 300_000);

afterAll(async () => {
  await pool?.query("DELETE FROM alerts WHERE actor_key LIKE $1", [`${run}-%`]).catch(() => undefined);
  await pool?.end();
  const admin = kafkaClient("keyflow-alerts-cleanup").admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${run}.`));
  if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => undefined);
  await admin.disconnect();
});


describe("alerts in every sink: Bun server", () => {
  const config = tempDir("alerts-config");
  const configFile = join(config.path, "keyflow.config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      types: { purchase: { windows: ["1m"] } },
      rules: [{ name: "burst", type: "purchase", window: "1m", aggregate: "count", op: ">", threshold: 3 }],
    }),
  );
  // Two minutes of the recent past (never refused as too far ahead).
  const W1 = Math.floor(Date.now() / MIN) * MIN - 3 * MIN;
  const W2 = W1 + MIN;
  const keys = {
    hot1: `${run}-hot-1`,
    // Quotes, a statement and a separator-like character in the key: only ever data.
    hot2: `${run}-hot 2'";DROP TABLE alerts;--|:x`,
    hot3: `${run}-hot-3`,
    quiet1: `${run}-quiet-1`,
    quiet2: `${run}-quiet-2`,
  };
  const ev = (key: string, id: string, ts: number, type = "purchase") => ({ event_id: `${run}-${id}`, event_type: type, key, timestamp: ts, value: 1 });
  const burst = (key: string, tag: string, start: number, count: number) => Array.from({ length: count }, (_, i) => ev(key, `${tag}-${i + 1}`, start + 1_000 + i));
  /** A few keys burst (hot-1 in two windows), with retries of the same events inside the stream; the quiet keys never pass the threshold. */
  const stream = [
    ...burst(keys.hot1, "h1a", W1, 2),
    ...burst(keys.quiet1, "q1", W1, 3), // 3 is not > 3
    ...burst(keys.hot1, "h1a", W1, 5), // h1a-1 and -2 again, then -3, -4 (fires), -5
    ...burst(keys.quiet2, "q2", W1, 6).map((e) => ({ ...e, event_type: "page_view" })), // not a purchase
    ...burst(keys.hot2, "h2", W1, 4), // fires at h2-4
    ...burst(keys.hot1, "h1b", W2, 6), // the next window: fires again, at h1b-4
    ...burst(keys.hot2, "h2", W1, 4), // retries only
  ];
  /** What every sink must hold: [client key, window start, triggering event id]. */
  const expected = [
    [keys.hot1, W1, `${run}-h1a-4`],
    [keys.hot1, W2, `${run}-h1b-4`],
    [keys.hot2, W1, `${run}-h2-4`],
    [keys.hot3, W1, `${run}-h3-4`],
  ].sort() as Array<[string, number, string]>;

  const alertsTopic = `${run}.alerts`;
  const webhookAlerts: Array<Record<string, unknown>> = [];
  let receiver: WebhookReceiver;
  let target: ReturnType<typeof processTarget>;

  beforeAll(async () => {
    receiver = startWebhookReceiver();
    receiver.onDelivery = (_headers, records) => webhookAlerts.push(...records.filter((r) => r.kind === "alert"));
    // Made now, not on the first produce: the consumer below reads it from the beginning.
    await createTopic(alertsTopic, 1);
    target = processTarget(BUN_SERVER, {
      ...localSinkEnv(run),
      KEYFLOW_KAFKA_ALERTS_TOPIC: alertsTopic,
      KEYFLOW_WEBHOOK_URL: receiver.url,
      KEYFLOW_WEBHOOK_SECRET: receiver.secret,
      KEYFLOW_SINK_MAX_DELAY: "20ms",
      KEYFLOW_CONFIG: configFile,
      KEYFLOW_WINDOWS: "1m",
      KEYFLOW_ALLOWED_LATENESS: "5m",
      // No window closes by the wall clock during the test.
      KEYFLOW_IDLE_TIMEOUT: "1h",
    });
    await target.start();
  }, 120_000);

  afterAll(async () => {
    await target?.stop();
    receiver?.stop();
    config.remove();
  });

  const post = async (events: unknown[]) => {
    const res = await target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
    expect(res.status).toBe(200);
    return (await res.json()) as { accepted: number; duplicates: number };
  };

  const pgAlerts = async () =>
    (
      await pool.query(
        `SELECT tenant, actor_key, rule, shape, window_start, window_end, aggregate, value, baseline, event_id, fired_at FROM alerts
         WHERE actor_key LIKE $1 ORDER BY actor_key, window_start`,
        [`${run}-%`],
      )
    ).rows;
  const redisAlerts = async (key: string) => {
    const entries = (await redis.xrange(RedisSink.alertStreamKey(`${run}:`, "default", key), "-", "+")) as Record<string, Record<string, unknown>>;
    return Object.entries(entries).map(([id, e]): Record<string, unknown> => ({ ...e, id }));
  };
  const webhookTriples = () => webhookAlerts.map((a) => [a.key, Date.parse((a.window as { start: string }).start), a.event_id]).sort();

  /** Every sink holds exactly the expected alerts (waiting for them first), and nothing for the quiet keys. */
  async function checkSinks(what: string): Promise<void> {
    const rows = await until(`${what}: the alerts in Postgres`, 30_000, async () => {
      const rows = await pgAlerts();
      return rows.length >= expected.length && rows;
    });
    await until(`${what}: the alerts at the webhook`, 30_000, async () => webhookAlerts.length >= expected.length);
    const messages = await consumeAll(alertsTopic, expected.length, 60_000, { settleMs: 1_500 });
    // Anything doubled would have had time to arrive.
    await Bun.sleep(500);

    expect(rows.length).toBe(expected.length);
    expect(rows.map((r) => [r.actor_key, new Date(r.window_start).getTime(), r.event_id]).sort()).toEqual(expected);
    for (const r of rows) {
      expect(r).toMatchObject({ tenant: "default", rule: "burst", shape: "1m", aggregate: "count", value: 4, baseline: null });
      expect(new Date(r.window_end).getTime() - new Date(r.window_start).getTime()).toBe(MIN);
    }

    const fromRedis = [];
    for (const key of Object.values(keys)) {
      for (const e of await redisAlerts(key)) fromRedis.push([key, Number(e.start), String(e.event_id)]);
    }
    expect(fromRedis.sort()).toEqual(expected);
    const hot2 = await redisAlerts(keys.hot2);
    expect(hot2.map((e) => [String(e.tenant), String(e.rule), String(e.shape), Number(e.value), String(e.aggregate)])).toEqual([["default", "burst", "1m", 4, "count"]]);

    expect(messages.length).toBe(expected.length);
    const fromKafka = messages.map((m) => {
      const value = JSON.parse(m.value!.toString());
      expect(m.key!.toString()).toBe(value.key);
      expect(m.headers.rule?.toString()).toBe("burst");
      expect(m.headers.tenant?.toString()).toBe("default");
      expect(m.headers.event_id?.toString()).toBe(value.event_id);
      expect(value).toMatchObject({ kind: "alert", tenant: "default", rule: "burst", aggregate: "count", value: 4, window: { shape: "1m" } });
      return [value.key, Date.parse(value.window.start), value.event_id];
    });
    expect(fromKafka.sort()).toEqual(expected);

    expect(webhookAlerts.length).toBe(expected.length);
    expect(webhookTriples()).toEqual(expected);
    for (const a of webhookAlerts) {
      const start = Date.parse((a.window as { start: string }).start);
      expect(a.idempotency_key).toBe(JSON.stringify(["default", a.key, "burst", "1m", start]));
    }
  }

  test("each bursting key and window alerts once in Postgres, Redis, Kafka and the webhook, with its triggering event; quiet keys never", async () => {
    const first = await post(stream);
    expect(first.duplicates).toBe(4 + 2); // hot-2's second four, hot-1's first two
    // The same stream again: every event a duplicate, no alert fires twice.
    const again = await post(stream);
    expect(again.accepted).toBe(0);
    await target.restart();
    // After a restart: the same stream once more, and a new burst.
    expect((await post(stream)).accepted).toBe(0);
    await post(burst(keys.hot3, "h3", W1, 5));
    await checkSinks("after a restart");
    // The live API lists the same alerts.
    const listed = (await (await target.fetch(`/v1/actors/${encodeURIComponent(keys.hot2)}/alerts`)).json()) as { alerts: Array<{ event_id: string }> };
    expect(listed.alerts.map((a) => a.event_id)).toEqual([`${run}-h2-4`]);
  }, 240_000);
});

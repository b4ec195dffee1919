import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { consumeAll, createTopic, ensureServices, kafkaClient } from "../support/kafka.ts";
import { preparePostgres } from "../support/postgres.ts";
import { localSinkEnv, REDIS_FRONT } from "../support/sink-env.ts";
import { BUN_SERVER, processTarget, WORKERD_SERVER } from "../support/targets.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";
import { until } from "../support/sink-faults.ts";

// Issue 11: one event followed from the edge to every sink by its correlation ID, on the real local
// services (scripts/services.sh): Kafka through the REST front, Redis through the Upstash front,
// Postgres through the Neon WebSocket proxy, and a webhook receiver in this process.
const run = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });
let pool: Pool;

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres(); // npm run migrate's statements: adds request_id to an older processed_events
}, 300_000);

afterAll(async () => {
  await pool?.end();
  const admin = kafkaClient("keyflow-correlation-cleanup").admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${run}-`));
  if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => undefined);
  await admin.disconnect();
});


/** The webhook delivery that carries event `eventId`: its headers and that record. */
function webhookDelivery(receiver: WebhookReceiver, eventId: string, timeoutMs = 30_000) {
  return new Promise<{ headers: Headers; record: Record<string, unknown> }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no webhook delivery of ${eventId} within ${timeoutMs} ms`)), timeoutMs);
    receiver.onDelivery = (headers, records) => {
      const record = records.find((r) => r.event_id === eventId);
      if (!record) return;
      clearTimeout(timer);
      resolve({ headers, record });
    };
  });
}

const HOSTS = [
  ["Bun server", "bun", BUN_SERVER],
  ["Workers (workerd, Durable Objects)", "workerd", WORKERD_SERVER],
] as const;

for (const [label, short, cmd] of HOSTS) {
  describe(`correlation IDs in every sink: ${label}`, () => {
    const names = `${run}-${short}`;
    let receiver: WebhookReceiver;
    let target: ReturnType<typeof processTarget>;
    beforeAll(async () => {
      receiver = startWebhookReceiver();
      // Made now, not on the first produce: the consumer below may subscribe before the sink delivers.
      await createTopic(`${names}.events`, 1);
      target = processTarget(cmd, {
        ...localSinkEnv(names),
        KEYFLOW_WEBHOOK_URL: receiver.url,
        KEYFLOW_WEBHOOK_SECRET: receiver.secret,
        KEYFLOW_SINK_MAX_DELAY: "20ms",
        // No window closes during the test: every delivery holds events only.
        KEYFLOW_WINDOWS: "1h",
        KEYFLOW_IDLE_TIMEOUT: "1h",
      });
      await target.start();
    }, 120_000);
    afterAll(async () => {
      await target?.stop();
      receiver?.stop();
    });

    test("an x-request-id, or a traceparent's trace id, is in the Kafka header and value, the Postgres column, the Redis field and the webhook header and body", async () => {
      // Starts with a letter: the Upstash client reads an all-digit field back as a number.
      const trace = `ab${[...crypto.getRandomValues(new Uint8Array(15))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
      const cases: Array<{ key: string; id: string; headers: Record<string, string>; want: string }> = [
        // Quotes and a semicolon: printable, so kept as the client sent it, and only ever data.
        { key: `${names}-a`, id: `${names}-e1`, headers: { "x-request-id": `req-${names}-'";1` }, want: `req-${names}-'";1` },
        { key: `${names}-b`, id: `${names}-e2`, headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` }, want: trace },
      ];
      // One at a time: a webhook delivery carries the x-request-id header only when all its records share one.
      for (const c of cases) {
        const delivered = webhookDelivery(receiver, c.id);
        const res = await target.fetch("/v1/events", {
          method: "POST",
          headers: { "content-type": "application/json", ...c.headers },
          body: JSON.stringify({ event_id: c.id, event_type: "purchase", key: c.key, value: 1 }),
        });
        expect(res.status).toBe(202);
        expect(res.headers.get("x-request-id")).toBe(c.want);
        const { headers, record } = await delivered;
        expect(headers.get("x-request-id")).toBe(c.want);
        expect(record.request_id).toBe(c.want);
      }

      const messages = await consumeAll(`${names}.events`, cases.length, 60_000);
      for (const c of cases) {
        const message = messages.find((m) => JSON.parse(m.value!.toString()).event_id === c.id)!;
        expect(message.headers["request-id"]?.toString()).toBe(c.want);
        expect(JSON.parse(message.value!.toString()).request_id).toBe(c.want);
      }

      for (const c of cases) {
        // Found by its ID alone, as an operator following it would.
        const rows = await until(`${c.id} in processed_events`, 30_000, async () => {
          const r = await pool.query(
            `SELECT p.actor_key, p.event_id, r.payload->>'request_id' AS payload_request_id
             FROM processed_events p JOIN raw_events r USING (tenant, actor_key, event_id) WHERE p.request_id = $1`,
            [c.want],
          );
          return r.rows.length ? r.rows : undefined;
        });
        expect(rows).toEqual([{ actor_key: c.key, event_id: c.id, payload_request_id: c.want }]);

        const entries = await until(`${c.id} in its Redis stream`, 30_000, async () => {
          const found = (await redis.xrange(`${names}:events:${c.key}`, "-", "+")) as Record<string, Record<string, unknown>>;
          return Object.keys(found).length ? Object.values(found) : undefined;
        });
        expect(entries.map((e) => [String(e.event_id), String(e.request_id)])).toEqual([[c.id, c.want]]);
      }
    }, 180_000);
  });
}

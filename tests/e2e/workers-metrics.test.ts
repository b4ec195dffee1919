/**
 * GET /metrics and /ready on workerd (local wrangler): the Worker's isolate and each key's Durable
 * Object report to the MetricsHub object, and the scrape shows their sums under the self-hosted
 * names, accepted by promtool, and kept (not doubled) across a restart.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { processTarget, WORKERD_SERVER } from "../support/targets.ts";
import { bearer, TEST_KEY_LINES } from "../support/api-keys.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";

let target: ReturnType<typeof processTarget>;
let receiver: WebhookReceiver;
beforeAll(async () => {
  receiver = startWebhookReceiver();
  target = processTarget(WORKERD_SERVER, {
    KEYFLOW_API_KEYS: TEST_KEY_LINES,
    KEYFLOW_WEBHOOK_URL: receiver.url,
    KEYFLOW_WEBHOOK_SECRET: receiver.secret,
    KEYFLOW_WINDOWS: "1m,1h",
    KEYFLOW_SINK_MAX_DELAY: "50ms",
    // One failed delivery opens a key's breaker; /ready answers 503 a second after.
    KEYFLOW_BREAKER_THRESHOLD: "1",
    KEYFLOW_READY_SINK_DOWN_AFTER: "1s",
    // Each request also goes to Analytics Engine (locally accepted, not queryable): it must not get in the way.
    KEYFLOW_TEST_ANALYTICS: "keyflow_test",
  });
  await target.start();
}, 120_000);
afterAll(async () => {
  await target?.stop();
  receiver?.stop();
});

const post = (body: unknown) =>
  target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json", ...bearer("all") }, body: JSON.stringify(body) });
const scrape = async () => (await target.fetch("/metrics", { headers: bearer("metrics") })).text();

/** Scrapes until `done` holds for the text, or `ms` pass; returns the last text. */
async function scrapeUntil(done: (text: string) => boolean, ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms;
  let text = await scrape();
  while (!done(text) && Date.now() < deadline) {
    await Bun.sleep(100);
    text = await scrape();
  }
  return text;
}

const value = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};
const ACCEPTED = 'keyflow_events_total{tenant="tenant-a",type="purchase",outcome="accepted"}';
const DELIVERED = 'keyflow_sink_delivered_total{sink="webhook"}';

test("the hub's sums of the isolate's and the objects' reports, under the self-hosted names; promtool accepts them; /ready reports the sink", async () => {
  const run = Date.now().toString(36);
  const ts = Date.now() - 3_600_000;
  const keys = ["alice", "bob", "carol"].map((k) => `${k}-${run}`);
  const batch = keys.map((key, i) => ({ event_id: `${run}-${i}`, event_type: "purchase", key, value: i, timestamp: ts }));
  expect(await (await post(batch)).json()).toMatchObject({ accepted: 3, duplicates: 0 });
  expect((await post(batch[0])).status).toBe(200); // a duplicate
  expect((await post({ event_type: "BAD", key: keys[0] })).status).toBe(400);
  expect((await post({ event_id: `${run}-r`, event_type: "refund", key: keys[1], timestamp: ts })).status).toBe(202);

  expect((await target.fetch("/metrics")).status).toBe(401);
  expect((await target.fetch("/metrics", { headers: bearer("all") })).status).toBe(403);
  const res = await target.fetch("/metrics", { headers: bearer("metrics") });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");

  // The isolate's counts: sent by the scrape itself, before it reads the hub.
  const text = await res.text();
  expect(value(text, ACCEPTED)).toBe(3);
  expect(value(text, 'keyflow_events_total{tenant="tenant-a",type="purchase",outcome="duplicate"}')).toBe(1);
  expect(value(text, 'keyflow_events_total{tenant="tenant-a",type="_invalid",outcome="rejected"}')).toBe(1);
  expect(value(text, 'keyflow_events_total{tenant="tenant-a",type="refund",outcome="accepted"}')).toBe(1);
  expect(value(text, 'keyflow_http_requests_total{route="/v1/events",method="POST",status="202"}')).toBe(1);
  expect(value(text, 'keyflow_ingest_duration_seconds_count{tenant="tenant-a"}')).toBe(4);

  // The objects' deliveries: reported after their alarms delivered to the webhook.
  const after = await scrapeUntil((t) => (value(t, DELIVERED) ?? 0) >= 4 && value(t, 'keyflow_sink_backlog_records{sink="webhook"}') === 0);
  expect(value(after, DELIVERED)).toBeGreaterThanOrEqual(4);
  expect(value(after, 'keyflow_sink_attempts_total{sink="webhook"}')).toBeGreaterThanOrEqual(1);
  expect(value(after, 'keyflow_sink_backlog_records{sink="webhook"}')).toBe(0);
  expect(value(after, 'keyflow_sink_breaker_state{sink="webhook",state="closed"}')).toBeGreaterThanOrEqual(1);
  expect(value(after, "keyflow_dead_letters")).toBe(0);
  for (const key of keys) expect(after).not.toContain(key); // never an actor key

  const check = Bun.spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(after) });
  const said = check.stdout.toString() + check.stderr.toString();
  expect(said, said).not.toMatch(/error|problem/i);
  expect(check.exitCode).toBe(0);

  const ready = await target.fetch("/ready", { headers: bearer("metrics") });
  expect(ready.status).toBe(200);
  const body = (await ready.json()) as any;
  expect(body.status).toBe("ready");
  expect(body.sinks).toEqual([expect.objectContaining({ sink: "webhook", status: "ok", last_error: null, down_for_s: 0 })]);
  expect(body.sinks[0].latency_ms).toBeNumber();
  // A caller without the metrics scope gets the verdict only.
  expect(await (await target.fetch("/ready")).json()).toEqual({ status: "ready" });

}, 120_000);

test("a record the sink refuses: dead-lettered, counted and held; after a restart the hub still has the totals and the dead letter", async () => {
  const key = `refused-${Date.now().toString(36)}`;
  expect((await post({ event_id: `${key}-1`, event_type: "purchase", key, properties: { refuse: true } })).status).toBe(202);
  const text = await scrapeUntil((t) => value(t, "keyflow_dead_letters") === 1);
  expect(value(text, 'keyflow_sink_dead_lettered_total{sink="webhook"}')).toBe(1);
  expect(value(text, "keyflow_dead_letters")).toBe(1);

  // Stored, not only in memory: after a restart the same, neither lost nor counted again.
  await target.restart();
  const restarted = await scrape();
  expect(value(restarted, ACCEPTED)).toBe(value(text, ACCEPTED));
  expect(value(restarted, 'keyflow_sink_dead_lettered_total{sink="webhook"}')).toBe(1);
  expect(value(restarted, "keyflow_dead_letters")).toBe(1);
  expect(value(restarted, DELIVERED)).toBeGreaterThanOrEqual(value(text, DELIVERED)!); // windows closing meanwhile add deliveries
}, 120_000);

test("a sink that stops answering: /ready shows it down with its error once a key's breaker opens, then answers 503", async () => {
  receiver.stop();
  const key = `down-${Date.now().toString(36)}`;
  expect((await post({ event_id: `${key}-1`, event_type: "purchase", key })).status).toBe(202);
  const deadline = Date.now() + 60_000;
  let res = await target.fetch("/ready", { headers: bearer("metrics") });
  while (res.status !== 503 && Date.now() < deadline) {
    await res.body?.cancel();
    await Bun.sleep(200);
    res = await target.fetch("/ready", { headers: bearer("metrics") });
  }
  expect(res.status).toBe(503);
  const body = (await res.json()) as any;
  expect(body.status).toBe("not_ready");
  expect(body.sinks[0]).toMatchObject({ sink: "webhook", status: "down" });
  expect(body.sinks[0].last_error).toBeString();
  expect(body.sinks[0].down_for_s).toBeGreaterThanOrEqual(1);
  const text = await scrape();
  expect(value(text, 'keyflow_sink_breaker_state{sink="webhook",state="open"}')).toBeGreaterThanOrEqual(1);
  expect(value(text, 'keyflow_sink_failures_total{sink="webhook"}')).toBeGreaterThanOrEqual(1);
  expect(value(text, 'keyflow_sink_backlog_records{sink="webhook"}')).toBeGreaterThanOrEqual(1);
}, 120_000);

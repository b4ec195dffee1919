/**
 * /metrics with the real Prometheus tools (Debian's prometheus package, installed by .ci/run):
 * promtool accepts the exposition, and a Prometheus server scraping a running Bun host with its
 * bearer key reads keyflow's counters back through its query API.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN_SERVER, processTarget, type Target } from "../support/targets.ts";
import { bearer, TEST_KEY_LINES, TEST_KEYS } from "../support/api-keys.ts";
import { freePort } from "../support/process.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";

let target: Target & { start(): Promise<void> };
let receiver: WebhookReceiver;
let url = "";
beforeAll(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  receiver = startWebhookReceiver();
  target = processTarget(BUN_SERVER, { KEYFLOW_API_KEYS: TEST_KEY_LINES, KEYFLOW_WEBHOOK_URL: receiver.url, KEYFLOW_WEBHOOK_SECRET: receiver.secret });
  await target.start();
});
afterAll(async () => {
  await target?.stop();
  receiver?.stop();
});

const post = (body: unknown) =>
  target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json", ...bearer("all") }, body: JSON.stringify(body) });

test("GET /metrics needs the metrics scope, and promtool check metrics accepts what it serves", async () => {
  const ts = Date.now() - 3_600_000;
  expect((await post({ event_id: "m1", event_type: "purchase", key: "alice", value: 5, timestamp: ts })).status).toBe(202);
  expect((await post({ event_id: "m1", event_type: "purchase", key: "alice", value: 5, timestamp: ts })).status).toBe(200);
  expect((await post({ event_type: "BAD", key: "alice" })).status).toBe(400);
  expect((await target.fetch("/metrics")).status).toBe(401);
  expect((await target.fetch("/metrics", { headers: bearer("all") })).status).toBe(403);
  const res = await target.fetch("/metrics", { headers: bearer("metrics") });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  const text = await res.text();
  expect(text).toContain('keyflow_events_total{tenant="tenant-a",type="purchase",outcome="accepted"} 1');
  expect(text).toContain('keyflow_events_total{tenant="tenant-a",type="purchase",outcome="duplicate"} 1');
  expect(text).toContain('keyflow_events_total{tenant="tenant-a",type="_invalid",outcome="rejected"} 1');
  expect(text).toContain('keyflow_http_requests_total{route="/v1/events",method="POST",status="202"} 1');
  expect(text).toMatch(/keyflow_ingest_duration_seconds_count\{tenant="tenant-a"\} 3/);
  expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
  expect(text).toMatch(/^keyflow_commit_duration_seconds_count\{checkpoints="false"\} [1-9]/m);
  expect(text).not.toContain("alice"); // never an actor key
  // The webhook sink's deliveries: counted, with their durations, once the receiver has the event.
  const deadline = Date.now() + 30_000;
  while (!receiver.received.has("m1") && Date.now() < deadline) await Bun.sleep(20);
  const after = await (await target.fetch("/metrics", { headers: bearer("metrics") })).text();
  expect(after).toMatch(/^keyflow_sink_delivered_total\{sink="webhook"\} [1-9]/m);
  expect(after).toMatch(/^keyflow_sink_delivery_duration_seconds_count\{sink="webhook"\} [1-9]/m);
  expect(after).toContain('keyflow_sink_breaker_state{sink="webhook",state="closed"} 1');
  const check = Bun.spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(after) });
  const said = check.stdout.toString() + check.stderr.toString();
  expect(said, said).not.toMatch(/error|problem/i);
  expect(check.exitCode).toBe(0);
});

test("a real Prometheus server scrapes the host with its bearer key and answers a query for keyflow's counters", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keyflow-prom-"));
  const hostPort = new URL((target as unknown as { url?: string }).url ?? (await serverUrl())).host;
  writeFileSync(join(dir, "key"), TEST_KEYS.metrics);
  writeFileSync(
    join(dir, "prometheus.yml"),
    [
      "global: { scrape_interval: 1s, evaluation_interval: 1s }",
      "scrape_configs:",
      "  - job_name: keyflow",
      "    authorization: { type: Bearer, credentials_file: " + join(dir, "key") + " }",
      `    static_configs: [{ targets: ["${hostPort}"] }]`,
    ].join("\n"),
  );
  const promPort = new URL(url).port;
  const prom = Bun.spawn(
    ["prometheus", `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${promPort}`],
    { stdout: "pipe", stderr: "pipe" },
  );
  try {
    const deadline = Date.now() + 60_000;
    let value: string | undefined;
    while (Date.now() < deadline) {
      const q = encodeURIComponent('sum(keyflow_events_total{outcome="accepted"})');
      const answer = await fetch(`${url}/api/v1/query?query=${q}`).then((r) => r.json() as Promise<any>).catch(() => undefined);
      value = answer?.data?.result?.[0]?.value?.[1];
      if (value !== undefined && Number(value) >= 1) break;
      await Bun.sleep(250);
    }
    expect(Number(value)).toBeGreaterThanOrEqual(1);
    const up = await fetch(`${url}/api/v1/query?query=up`).then((r) => r.json() as Promise<any>);
    expect(up.data.result[0].value[1]).toBe("1");
  } finally {
    prom.kill();
    await prom.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}, 90_000);

test("docs/grafana-dashboard.json: every query is valid PromQL (promtool check rules) and names only metrics the server serves", async () => {
  const dashboard = JSON.parse(await Bun.file(join(import.meta.dir, "../../docs/grafana-dashboard.json")).text());
  const exprs: string[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
  expect(exprs.length).toBeGreaterThanOrEqual(10);
  const dir = mkdtempSync(join(tmpdir(), "keyflow-rules-"));
  try {
    const rules = ["groups:", "  - name: dashboard", "    rules:", ...exprs.flatMap((e, i) => [`      - record: keyflow:dashboard_${i}`, `        expr: ${JSON.stringify(e)}`])];
    writeFileSync(join(dir, "rules.yml"), rules.join("\n"));
    const check = Bun.spawnSync(["promtool", "check", "rules", join(dir, "rules.yml")]);
    expect(check.exitCode, check.stdout.toString() + check.stderr.toString()).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const served = await (await target.fetch("/metrics", { headers: bearer("metrics") })).text();
  const families = new Set([...served.matchAll(/^# TYPE (\S+) (\S+)/gm)].flatMap((m) => (m[2] === "histogram" ? [`${m[1]}_bucket`, `${m[1]}_count`, `${m[1]}_sum`] : [m[1]!])));
  for (const expr of exprs) {
    for (const [name] of expr.matchAll(/\b(?:keyflow|process)_[a-z_]+/g)) expect(families.has(name), `${name} in ${expr}`).toBe(true);
  }
});

async function serverUrl(): Promise<string> {
  // processTarget keeps its URL private: find it from a request's answer of the health route.
  const res = await target.fetch("/health");
  return res.url;
}

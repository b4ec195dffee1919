/**
 * GET /dashboard in a real headless Chromium (Debian's chromium, driven by playwright-core) against
 * a real Bun server: the page loads only from this server, asks for a key, and its live numbers,
 * top keys and an actor's window chart change as events are posted. Saves a screenshot to
 * $KEYFLOW_ARTIFACTS (or a temp dir) and prints its path. .ci/run installs chromium.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { chromium, type Browser, type Page } from "playwright-core";
import { BUN_SERVER, CONTRACT_ENV, spawnServer, tempDir, type ServerProcess } from "../support/targets.ts";
import { bearer, TEST_KEY_LINES } from "../support/api-keys.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";
import { keyLine } from "../../src/auth/api-keys.ts";

const CHROMIUM = process.env.KEYFLOW_CHROMIUM ?? "/usr/bin/chromium";
/** An operator's key for the page: reads tenant-a and the metrics. */
const DASHBOARD_KEY = "kf_test_dashboard_0123456789abcdefghij";
const DASHBOARD_KEY_LINE = keyLine({ tenant: "tenant-a", scopes: ["read", "metrics"], sha256Hex: createHash("sha256").update(DASHBOARD_KEY).digest("hex") });
const WAIT = { timeout: 30_000, polling: 100 };

let browser: Browser;
let receiver: WebhookReceiver;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set KEYFLOW_CHROMIUM`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  receiver = startWebhookReceiver();
});
afterAll(async () => {
  await browser?.close();
  receiver?.stop();
});

async function server(env: Record<string, string>): Promise<ServerProcess & { remove(): void }> {
  const dir = tempDir("dashboard");
  const started = await spawnServer(BUN_SERVER, { ...CONTRACT_ENV, PORT: "0", HOST: "127.0.0.1", KEYFLOW_DATA_DIR: dir.path, ...env });
  return { ...started, remove: dir.remove };
}

/** A page that records console errors, uncaught exceptions and any request to another origin. */
async function watchedPage(origin: string) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
  const errors: string[] = [];
  const foreign: string[] = [];
  page.on("console", (m) => {
    // A fetch answered 401 (before the key) or 404 (an actor with no events yet) is reported by Chromium
    // as a failed resource load; the page handles both. Anything else is an error.
    if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of 40[14]\b/.test(m.text())) errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  page.on("request", (r) => {
    if (new URL(r.url()).origin !== origin) foreign.push(r.url());
  });
  return { page, errors, foreign };
}

const numberIn = (page: Page, id: string) => page.$eval(`#${id}`, (el) => Number((el.textContent ?? "").replace(/,/g, "")) || 0);

test("/dashboard: asks for a key, then its numbers, top keys and an actor's windows follow posted events; nothing loads from elsewhere", async () => {
  const host = await server({
    KEYFLOW_API_KEYS: `${TEST_KEY_LINES}\n${DASHBOARD_KEY_LINE}`,
    KEYFLOW_WEBHOOK_URL: receiver.url,
    KEYFLOW_WEBHOOK_SECRET: receiver.secret,
  });
  const origin = new URL(host.url).origin;
  const { page, errors, foreign } = await watchedPage(origin);
  const post = (body: unknown) =>
    fetch(`${host.url}/v1/events`, { method: "POST", headers: { "content-type": "application/json", ...bearer("all") }, body: JSON.stringify(body) });
  try {
    const res = await page.goto(`${host.url}/dashboard`);
    expect(res!.status()).toBe(200);
    expect(res!.headers()["content-security-policy"]).toContain("script-src 'self'");
    await page.waitForFunction(() => document.getElementById("status")!.textContent!.includes("API key"), undefined, WAIT);

    await page.fill("#api-key", DASHBOARD_KEY);
    await page.click("#key-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("status")!.textContent!.startsWith("live"), undefined, WAIT);
    expect(await page.evaluate(() => sessionStorage.getItem("keyflow.dashboard.key"))).toBe(DASHBOARD_KEY);
    await page.fill("#actor-key", "dash-alice");
    await page.click("#actor-form button[type=submit]");
    const acceptedBefore = await numberIn(page, "n-accepted");

    // Events for three keys (one of them markup, which must show as text), a duplicate and an invalid one.
    const now = Date.now();
    const hostile = '<img src=x onerror="document.title=1">';
    const events = [
      ...Array.from({ length: 12 }, (_, i) => ({ event_id: `a${i}`, event_type: "view", key: "dash-alice", value: i, timestamp: now - i * 1000 })),
      ...Array.from({ length: 5 }, (_, i) => ({ event_id: `b${i}`, event_type: "click", key: "dash-bob", timestamp: now })),
      ...Array.from({ length: 3 }, (_, i) => ({ event_id: `h${i}`, event_type: "view", key: hostile, timestamp: now })),
      { event_id: "a0", event_type: "view", key: "dash-alice", value: 0, timestamp: now },
      { event_type: "NOT VALID", key: "dash-alice" },
    ];
    const batch = await post(events);
    expect(batch.status).toBe(200);
    expect(((await batch.json()) as { accepted: number }).accepted).toBe(20);

    await Promise.all([
      page.waitForFunction((before) => Number(document.getElementById("n-accepted")!.textContent!.replace(/,/g, "")) >= before + 20, acceptedBefore, WAIT),
      // The ingest latency of the interval that saw the batch, from the histogram's buckets.
      page.waitForFunction(() => /^\d[\d.,]* m?s$/.test(document.getElementById("n-p99")!.textContent!), undefined, WAIT),
      page.waitForFunction(() => document.querySelector("#top-keys tbody tr td")?.textContent === "dash-alice", undefined, WAIT),
      page.waitForFunction(() => Number(document.getElementById("chart-windows")!.dataset.points ?? 0) > 0, undefined, WAIT),
      page.waitForFunction(() => Number(document.getElementById("chart-events")!.dataset.points ?? 0) >= 2, undefined, WAIT),
      page.waitForFunction(() => document.querySelector("#sinks tbody td")?.textContent === "webhook", undefined, WAIT),
    ]);
    expect(await page.$$eval("#sinks tbody tr", (rows) => rows.map((r) => r.children[1]!.textContent))).toEqual(["ok"]);

    const topKeys = await page.$$eval("#top-keys tbody tr", (rows) => rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)));
    expect(topKeys.slice(0, 3)).toEqual([
      ["dash-alice", "12", "0"],
      ["dash-bob", "5", "0"],
      [hostile, "3", "0"],
    ]);
    expect(await page.$$eval("#top-keys img", (imgs) => imgs.length)).toBe(0);
    expect(await page.title()).toBe("keyflow dashboard");
    const actorStatus = await page.textContent("#actor-status");
    expect(actorStatus).toMatch(/^dash-alice: [1-9]\d* windows of /);
    expect(actorStatus).toMatch(/live|polling/);

    // One more event: the counter moves again, and the actor's chart takes it (live, or at its next poll).
    const windowEvents = () => page.$eval("#chart-windows", (el) => Number((el as HTMLElement).dataset.events));
    const shownBefore = await windowEvents();
    expect(shownBefore).toBeGreaterThan(0);
    expect((await post({ event_id: "a-next", event_type: "view", key: "dash-alice", value: 100, timestamp: Date.now() })).status).toBe(202);
    await page.waitForFunction((before) => Number(document.getElementById("n-accepted")!.textContent!.replace(/,/g, "")) >= before + 21, acceptedBefore, WAIT);
    await page.waitForFunction((before) => Number(document.getElementById("chart-windows")!.dataset.events) > before, shownBefore, WAIT);

    const dir = process.env.KEYFLOW_ARTIFACTS ?? mkdtempSync(join(tmpdir(), "keyflow-dashboard-"));
    mkdirSync(dir, { recursive: true });
    const shot = join(dir, "dashboard.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`dashboard screenshot: ${shot}`);

    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
  } finally {
    await page.close();
    await host.stop();
    host.remove();
  }
}, 120_000);

test("/dashboard on an open server (loopback, no keys) works without a key; without a live view it polls the windows", async () => {
  const host = await server({});
  const { page, errors, foreign } = await watchedPage(new URL(host.url).origin);
  // A host without GET /v1/actors/:key/live (404): the page polls /windows instead.
  await page.route("**/v1/actors/*/live", (route) => route.fulfill({ status: 404, contentType: "application/json", body: '{"error":{"code":"not_found"}}' }));
  try {
    await page.goto(`${host.url}/dashboard`);
    await page.waitForFunction(() => document.getElementById("status")!.textContent!.startsWith("live"), undefined, WAIT);
    await page.fill("#actor-key", "open-key");
    await page.click("#actor-form button[type=submit]");
    const res = await fetch(`${host.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ event_id: "o1", event_type: "view", key: "open-key", timestamp: Date.now() }),
    });
    expect(res.status).toBe(202);
    await page.waitForFunction(() => document.querySelector("#top-keys tbody tr td")?.textContent === "open-key", undefined, WAIT);
    await page.waitForFunction(() => Number(document.getElementById("n-accepted")!.textContent) >= 1, undefined, WAIT);
    await page.waitForFunction(() => Number(document.getElementById("chart-windows")!.dataset.events) >= 1, undefined, WAIT);
    // The status follows the next poll (the one before the event may still say "no events yet").
    await page.waitForFunction(() => / · polling$/.test(document.getElementById("actor-status")!.textContent ?? ""), undefined, WAIT);
    expect(await page.textContent("#actor-status")).toMatch(/^open-key: [1-9]\d* windows of .* · polling$/);
    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
  } finally {
    await page.close();
    await host.stop();
    host.remove();
  }
}, 60_000);

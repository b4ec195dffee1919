/**
 * keyflow/client against a real Bun server (`bun src/runtimes/bun.ts`, API keys on): thousands of
 * events in small batches arrive exactly once; through a proxy that refuses requests, loses
 * answers after the server applied them and cuts bodies mid-way, while the server itself is
 * restarted mid-stream, every event is still counted exactly once; the typed reads and the live
 * stream return what was sent. Last, the client bundled for browsers in a real headless Chromium:
 * hiding the page, and leaving it, sends what waited with keepalive fetches under the 64 KiB budget.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { createClient, KeyflowError, type ClientOptions, type DeliveryProblem, type LiveMessage } from "../../src/client/index.ts";
import { BUN_SERVER, processTarget, ROOT } from "../support/targets.ts";
import { TEST_KEY_LINES, TEST_KEYS } from "../support/api-keys.ts";
import { startFlakyProxy, type Fault } from "../support/flaky-proxy.ts";

const target = processTarget(BUN_SERVER, { KEYFLOW_API_KEYS: TEST_KEY_LINES, KEYFLOW_LOG_LEVEL: "warn" });
beforeAll(async () => {
  await target.start();
}, 60_000);
afterAll(async () => {
  await target.stop();
});

const KEY = TEST_KEYS.all;

function client(options: Partial<ClientOptions> = {}) {
  const problems: DeliveryProblem[] = [];
  const c = createClient({ url: target.url, key: KEY, onError: (p) => problems.push(p), ...options });
  return { client: c, problems };
}

/** Polls `condition` until it holds (the wait is for the server and the network; what is checked is exact). */
async function eventually(condition: () => boolean | Promise<boolean>, what: string, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${limitMs} ms`);
    await Bun.sleep(10);
  }
}
const waitFor = (condition: () => boolean, what: string) => eventually(condition, what);

/** The server's own count of a key's events, read with the client. */
async function totals(c: ReturnType<typeof createClient>, key: string) {
  return (await c.actor(key)).totals;
}

describe("keyflow/client against a real Bun server", () => {
  test("2,000 events in batches of 50 arrive exactly once", async () => {
    const { client: c, problems } = client({ maxBatchEvents: 50 });
    const keys = ["bulk-a", "bulk-b", "bulk-c", "bulk-d"];
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) ids.add(c.track({ event_type: i % 3 ? "view" : "purchase", key: keys[i % 4]!, value: i % 10, properties: { i } }));
    expect(ids.size).toBe(2000);
    const report = await c.flush();
    expect(report).toEqual({ ok: true, delivered: 2000, rejected: [], failed: [], dropped: [] });
    expect(problems).toEqual([]);
    expect(c.stats()).toMatchObject({ tracked: 2000, delivered: 2000, accepted: 2000, duplicates: 0, requests: 40, retries: 0 });
    for (const key of keys) expect(await totals(c, key)).toMatchObject({ events: 500, duplicates: 0 });
    await c.close();
  }, 60_000);

  test("a server that fails and recovers mid-stream (refusals, lost answers, cut bodies, a restart): nothing lost, nothing doubled", async () => {
    // Requests 3–4 refused (Retry-After: 1); 6 and 10–12 applied with the answer lost; 8 and 14 applied with the body cut.
    const faults: Record<number, Fault> = { 3: "refuse", 4: "refuse", 6: "lose-answer", 8: "cut-body", 10: "lose-answer", 11: "lose-answer", 12: "lose-answer", 14: "cut-body" };
    const proxy = startFlakyProxy(
      () => target.url,
      (n) => faults[n] ?? "pass",
    );
    let restart: Promise<void> | undefined;
    try {
      const { client: c, problems } = client({ url: proxy.url, maxBatchEvents: 40, retryBaseMs: 50, retryMaxMs: 500, maxRetries: 400 });
      const keys = ["flaky-a", "flaky-b", "flaky-c"];
      const ids: string[] = [];
      for (let chunk = 0; chunk < 30; chunk++) {
        for (let i = 0; i < 100; i++) ids.push(c.track({ event_type: "tick", key: keys[(chunk * 100 + i) % 3]!, properties: { chunk, i } }));
        // Meanwhile the server is restarted, once the faults above are behind (the proxy answers 502 while it is down).
        if (!restart && proxy.log.length >= 16) restart = target.restart();
        await waitFor(() => c.stats().buffered < 400, "the client catching up");
      }
      await waitFor(() => restart !== undefined || proxy.log.length >= 16, "the restart point");
      restart ??= target.restart();
      const report = await c.flush();
      await restart;
      expect(problems).toEqual([]);
      expect(report.ok).toBe(true);
      const stats = c.stats();
      expect(stats).toMatchObject({ tracked: 3000, delivered: 3000, rejected: 0, failed: 0, dropped: 0, buffered: 0, inFlight: 0 });
      // Each event was acknowledged once, as accepted or (after a lost answer) as a duplicate.
      expect(stats.accepted + stats.duplicates).toBe(3000);
      expect(stats.duplicates).toBeGreaterThan(0);
      expect(stats.retries).toBeGreaterThan(0);

      // The server counted every event exactly once.
      const direct = createClient({ url: target.url, key: KEY });
      let events = 0;
      let duplicates = 0;
      for (const key of keys) {
        const t = await totals(direct, key);
        expect(t.events).toBe(1000);
        events += t.events;
        duplicates += t.duplicates;
      }
      expect(events).toBe(3000);
      // Every further copy the server got was counted as a duplicate, never as an event: each one the
      // client was told of, and each one the proxy saw answered (a lost answer retried three times is three).
      const copies = [...proxy.forwardedTimes.values()].reduce((sum, times) => sum + times - 1, 0);
      expect(duplicates).toBeGreaterThanOrEqual(stats.duplicates);
      expect(duplicates).toBeGreaterThanOrEqual(copies);
      expect(new Set(proxy.forwardedTimes.keys())).toEqual(new Set(ids));

      // The faults did happen, and were survived as designed.
      const log = proxy.log;
      for (const n of Object.keys(faults).map(Number)) expect(log[n]!.fault).toBe(faults[n]!);
      expect(log.filter((l) => l.fault === "lose-answer" && l.forwarded).length).toBe(4);
      expect(log.filter((l) => l.status === 502 && !l.forwarded && l.fault === "pass").length, "requests while the server was down").toBeGreaterThan(0);
      // A refusal's Retry-After: 1 was honoured: the same batch came back no sooner than a second later.
      for (const n of [3, 4]) {
        const next = log.find((l) => l.n > n && l.ids[0] === log[n]!.ids[0])!;
        expect(next.at - log[n]!.at).toBeGreaterThanOrEqual(950);
      }
      // A retried batch carries the same IDs: a lost answer's batch came back as it was.
      const lost = log[6]!;
      expect(log.some((l) => l.n > 6 && l.ids.join() === lost.ids.join())).toBe(true);
      await c.close();
    } finally {
      await restart?.catch(() => undefined);
      proxy.stop();
    }
  }, 180_000);

  test("typed reads: the actor, its windows, the late log, alerts; typed errors", async () => {
    const { client: c } = client({ flushIntervalMs: 50 });
    const now = Date.now();
    const onTime = c.track({ event_type: "purchase", key: "reader", value: 12.5, timestamp: new Date(now) });
    c.track({ event_type: "view", key: "reader", timestamp: now });
    expect((await c.flush()).delivered).toBe(2);
    // An hour back: its 1s and 1m windows closed long ago (the watermark is now): late.
    const lateId = c.track({ event_type: "purchase", key: "reader", value: 1, timestamp: new Date(now - 3_600_000) });
    expect((await c.flush()).ok).toBe(true);
    expect(c.stats().late).toBe(1);

    const actor = await c.actor("reader");
    expect(actor.key).toBe("reader");
    expect(actor.totals).toEqual({ events: 3, duplicates: 0, late: 1, by_type: { purchase: 2, view: 1 } });
    expect(actor.last_event_at).toBe(new Date(now).toISOString());
    expect(actor.late_log_size).toBe(1);
    expect(Array.isArray(actor.open_windows)).toBe(true);

    const minute = await c.windows("reader", { size: "1m", from: now - 60_000, to: new Date(now + 60_000) });
    const current = minute.find((w) => Date.parse(w.start) <= now && now < Date.parse(w.end))!;
    expect(current).toMatchObject({ size: "1m", shape: "tumbling", count: 2, sum: 12.5, min: 12.5, max: 12.5, avg: 12.5, closed: false });
    expect(current.by_type?.purchase?.count).toBe(1);
    const purchases = await c.windows("reader", { size: "1m", type: "purchase", limit: 5 });
    expect(purchases.every((w) => w.type === "purchase")).toBe(true);

    const late = await c.late("reader");
    expect(late.map((l) => [l.event_id, l.event_type, l.value])).toEqual([[lateId, "purchase", 1]]);
    expect(late[0]!.missed_windows.length).toBeGreaterThan(0);
    expect(await c.alerts("reader")).toEqual([]);
    void onTime;

    const missing = await c.actor("nobody-here").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(KeyflowError);
    expect([(missing as KeyflowError).status, (missing as KeyflowError).code]).toEqual([404, "actor_not_found"]);
    expect((missing as KeyflowError).requestId).toBeString();
    const badQuery = (await c.windows("reader", { size: "7m" }).catch((e: unknown) => e)) as KeyflowError;
    expect([badQuery.status, badQuery.code]).toEqual([400, "invalid_query"]);
    expect(badQuery.fieldErrors[0]!.field).toBe("size");

    // A wrong key: reads throw 401, events are reported rejected (not retried).
    const { client: stranger, problems } = client({ key: "kf_nobody_0123456789abcdefghij" });
    const unauthorized = (await stranger.actor("reader").catch((e: unknown) => e)) as KeyflowError;
    expect([unauthorized.status, unauthorized.code]).toEqual([401, "unauthorized"]);
    stranger.track({ event_type: "t", key: "reader" });
    const refused = await stranger.flush();
    expect(refused.rejected.map((p) => p.error.code)).toEqual(["unauthorized"]);
    expect(problems.map((p) => p.kind)).toEqual(["rejected"]);
    expect(stranger.stats().requests).toBe(1);
    await c.close();
  }, 60_000);

  test("live(): yields the typed record of an event tracked after the stream opened", async () => {
    const { client: c } = client();
    const abort = new AbortController();
    const seen: LiveMessage[] = [];
    let opened = false;
    const reading = (async () => {
      for await (const m of c.live("watched/key", { signal: abort.signal, onOpen: () => (opened = true) })) {
        seen.push(m);
        if (m.type === "window") break;
      }
    })();
    await waitFor(() => opened, "the live stream open");
    const id = c.track({ event_type: "signup", key: "watched/key", value: 3, properties: { plan: "pro" } });
    await c.flush();
    await waitFor(() => seen.some((m) => m.type === "window"), "a window record");
    abort.abort();
    await reading;
    const event = seen.find((m) => m.type === "event");
    if (event?.type !== "event") throw new Error(`no event record: ${JSON.stringify(seen)}`);
    expect(event.record).toMatchObject({ kind: "event", tenant: "tenant-a", key: "watched/key", event_id: id, event_type: "signup", value: 3, properties: { plan: "pro" }, late: false });
    expect(event.id).toMatch(/^[a-z0-9-]+\.\d+$/);
    const window = seen.find((m) => m.type === "window");
    if (window?.type !== "window") throw new Error("no window record");
    expect(window.record).toMatchObject({ kind: "window", key: "watched/key", count: 1, sum: 3 });
    await c.close();
  }, 60_000);
});


const CHROMIUM = process.env.KEYFLOW_CHROMIUM ?? "/usr/bin/chromium";

/** A page that tracks `n` events of `pad` bytes with the bundled client, recording each fetch's keepalive flag and body size. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>keyflow client</title>
<script type="module">
import { createClient } from "/client.js";
const sent = [];
const realFetch = window.fetch.bind(window);
window.fetch = (url, init) => (sent.push({ keepalive: init?.keepalive === true, bytes: new TextEncoder().encode(init?.body ?? "").length }), realFetch(url, init));
const params = new URLSearchParams(location.search);
// Nothing is due by size or time: only the page being hidden sends.
const client = createClient({ url: location.origin, key: params.get("key"), flushIntervalMs: 3600000, maxBatchEvents: 10000 });
const pad = "x".repeat(Number(params.get("pad")));
const ids = Array.from({ length: Number(params.get("n")) }, (_, i) => client.track({ event_type: "page_view", key: params.get("actor"), properties: { i, pad } }));
Object.assign(window, { keyflowSent: sent, keyflowIds: ids, keyflowClient: client, keyflowReady: true });
</script>`;

describe.skipIf(!existsSync(CHROMIUM))("keyflow/client in headless Chromium (page hide, keepalive)", () => {
  let site: ReturnType<typeof Bun.serve> | undefined;
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  const forwarded: number[] = [];
  beforeAll(async () => {
    const build = await Bun.build({ entrypoints: [join(ROOT, "src/client/index.ts")], target: "browser", format: "esm" });
    if (!build.success) throw new Error(build.logs.join("\n"));
    const js = await build.outputs[0]!.text();
    // The page and the API on one origin: /v1/* is passed to the keyflow server.
    site = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        const url = new URL(request.url);
        if (url.pathname === "/") return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
        if (url.pathname === "/client.js") return new Response(js, { headers: { "content-type": "text/javascript; charset=utf-8" } });
        if (!url.pathname.startsWith("/v1/")) return new Response("not found", { status: 404 });
        const body = request.method === "POST" ? await request.text() : undefined;
        if (body !== undefined) forwarded.push(new TextEncoder().encode(body).length);
        const headers = new Headers(request.headers);
        for (const name of ["host", "origin", "referer"]) headers.delete(name);
        const answer = await fetch(target.url + url.pathname + url.search, { method: request.method, headers, body });
        return new Response(await answer.text(), { status: answer.status, headers: { "content-type": answer.headers.get("content-type") ?? "application/json" } });
      },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    site?.stop(true);
  });

  const pageUrl = (actor: string, n: number, pad: number) => `http://127.0.0.1:${site!.port}/?key=${KEY}&actor=${actor}&n=${n}&pad=${pad}`;

  test("the page hidden (visibilitychange): ~150 KB go in keepalive requests of at most 60 KiB, one after another, all delivered", async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(pageUrl("browser-hidden", 100, 1500));
    await page.waitForFunction(() => (window as unknown as { keyflowReady?: boolean }).keyflowReady === true);
    expect(await page.evaluate(() => (window as unknown as { keyflowSent: unknown[] }).keyflowSent.length)).toBe(0);
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    await page.waitForFunction(() => (window as unknown as { keyflowClient: { stats(): { delivered: number } } }).keyflowClient.stats().delivered === 100, undefined, { timeout: 30_000 });
    const sent = await page.evaluate(() => (window as unknown as { keyflowSent: Array<{ keepalive: boolean; bytes: number }> }).keyflowSent);
    expect(sent.length).toBeGreaterThanOrEqual(3);
    for (const s of sent) {
      expect(s.keepalive).toBe(true);
      expect(s.bytes).toBeLessThanOrEqual(60 * 1024);
    }
    expect(sent.reduce((sum, s) => sum + s.bytes, 0)).toBeGreaterThan(150_000);
    const { client: reader } = client();
    expect(await totals(reader, "browser-hidden")).toMatchObject({ events: 100, duplicates: 0 });
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  test("the page left (pagehide on navigation): the keepalive request outlives the page and its events arrive", async () => {
    const page = await browser!.newPage();
    await page.goto(pageUrl("browser-left", 30, 1000));
    await page.waitForFunction(() => (window as unknown as { keyflowReady?: boolean }).keyflowReady === true);
    const before = forwarded.length;
    await page.goto("about:blank");
    const { client: reader } = client();
    await eventually(async () => (await reader.actor("browser-left").catch(() => undefined))?.totals.events === 30, "the left page's events at the server");
    expect(await totals(reader, "browser-left")).toMatchObject({ events: 30, duplicates: 0 });
    // ~33 KB: one keepalive request.
    expect(forwarded.length - before).toBe(1);
    await page.close();
  }, 60_000);
});

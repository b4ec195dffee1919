import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SeededRandom } from "../support/fake-env.ts";
import { processTarget, ROOT, tempDir, WORKERD_SERVER, type Target } from "../support/targets.ts";
import { bearer, TEST_KEY_LINES } from "../support/api-keys.ts";
import { PAGE_SECURITY_HEADERS } from "../../src/http/assets.ts";

const json = async (res: Response) => (await res.json()) as any;
const post = (target: Target, body: unknown) =>
  target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

describe("Durable Object alarms (workerd)", () => {
  let target: ReturnType<typeof processTarget>;
  beforeAll(async () => {
    target = processTarget(WORKERD_SERVER, { KEYFLOW_WINDOWS: "2s,1h", KEYFLOW_ALLOWED_LATENESS: "1s", KEYFLOW_IDLE_TIMEOUT: "1s" });
    await target.start();
  });
  afterAll(() => target.stop());

  test("without API keys the Worker is open on this machine only: a request for a public hostname gets 401 naming the variable", async () => {
    const key = `open-${Date.now()}`;
    expect((await post(target, { event_id: "o1", event_type: "signup", user_id: key })).status).toBe(202);
    const deployed = await target.fetch(`/v1/actors/${key}`, { headers: { host: "keyflow.example.workers.dev" } });
    expect(deployed.status).toBe(401);
    const body = await json(deployed);
    expect(body.error.code).toBe("auth_not_configured");
    expect(body.error.message).toContain("wrangler secret put KEYFLOW_API_KEYS");
    const refused = await target.fetch("/v1/events", {
      method: "POST",
      headers: { host: "keyflow.example.workers.dev", "content-type": "application/json" },
      body: JSON.stringify({ event_id: "o2", event_type: "signup", user_id: key }),
    });
    expect(refused.status).toBe(401);
    expect((await target.fetch("/health", { headers: { host: "keyflow.example.workers.dev" } })).status).toBe(200);
    expect((await json(await target.fetch(`/v1/actors/${key}`))).totals.events).toBe(1);
  });

  test("live view over a hibernatable WebSocket: events and window updates as JSON frames; a reconnect resumes after its last id", async () => {
    const key = `socket-${Date.now()}`;
    const wsUrl = (query = "") => `${target.url.replace(/^http/, "ws")}/v1/actors/${key}/live${query}`;
    const open = (query = "") => {
      const ws = new WebSocket(wsUrl(query));
      const frames: any[] = [];
      ws.onmessage = (m) => frames.push(JSON.parse(String(m.data)));
      const opened = new Promise<void>((resolve, reject) => ((ws.onopen = () => resolve()), (ws.onerror = () => reject(new Error("socket failed")))));
      const until = async (done: (f: any) => boolean) => {
        const deadline = Date.now() + 20_000;
        while (!frames.some(done)) {
          if (Date.now() > deadline) throw new Error(`not seen within 20 s: ${JSON.stringify(frames)}`);
          await Bun.sleep(20);
        }
        return frames.find(done);
      };
      return { ws, frames, opened, until };
    };
    const first = open();
    await first.opened;
    expect((await post(target, [{ event_id: "s1", event_type: "purchase", user_id: key, value: 3 }])).status).toBe(200);
    const s1 = await first.until((f) => f.event === "event" && f.data.event_id === "s1");
    expect(s1.data).toMatchObject({ kind: "event", key, value: 3 });
    await first.until((f) => f.event === "window" && f.data.final === false && f.data.count === 1);
    const lastId = first.frames.at(-1).id;
    first.ws.close();
    expect((await post(target, [{ event_id: "s2", event_type: "purchase", user_id: key, value: 4 }])).status).toBe(200);
    const again = open(`?last_event_id=${encodeURIComponent(lastId)}`);
    await again.opened;
    await again.until((f) => f.event === "event" && f.data.event_id === "s2");
    expect(again.frames.filter((f) => f.event === "event").map((f) => f.data.event_id)).toEqual(["s2"]);
    expect(again.frames.some((f) => f.event === "gap")).toBe(false);
    again.ws.close();
  });

  test("the packaged pages are Static Assets: /dashboard, /docs and their scripts, with the pages' CSP from public/_headers", async () => {
    for (const [path, type] of [["/dashboard", "text/html"], ["/docs", "text/html"], ["/assets/dashboard.js", "javascript"], ["/assets/uPlot.iife.min.js", "javascript"], ["/assets/scalar.js", "javascript"]]) {
      const res = await target.fetch(path!);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toContain(type!);
      await res.arrayBuffer();
    }
    const page = await target.fetch("/dashboard");
    expect(page.headers.get("content-security-policy")).toBe(PAGE_SECURITY_HEADERS["content-security-policy"]!);
    expect(await page.text()).toContain("/assets/dashboard.js");
    expect((await json(await target.fetch("/openapi.json"))).openapi).toBe("3.1.0");
  });

  test("an alarm closes a window with no further traffic, also after eviction, woken by the alarm alone", async () => {
    const key = `alarm-${Date.now()}`;
    expect((await post(target, { event_id: "a1", event_type: "purchase", user_id: key, value: 7 })).status).toBe(202);
    // Stop the runtime at once: every actor is evicted, and only the persisted alarm can close the window.
    await target.restart();
    await Bun.sleep(5_000);
    const readAt = Date.now();
    const state = await json(await target.fetch(`/v1/actors/${key}`));
    const closed = state.recently_closed_windows.find((w: any) => w.size === "2s");
    expect(closed).toMatchObject({ count: 1, sum: 7, closed: true, closed_by: "idle" });
    // Reads never close windows: the window was closed by the alarm, before this first request.
    expect(Date.parse(closed.closed_at)).toBeLessThan(readAt);
    expect(state.open_windows.map((w: any) => w.size)).toEqual(["1h"]);
  });
});

describe("1,000 keys x 10 events on workerd", () => {
  let target: ReturnType<typeof processTarget>;
  beforeAll(async () => {
    target = processTarget(WORKERD_SERVER, { KEYFLOW_WINDOWS: "1m,1h" });
    await target.start();
  });
  afterAll(() => target.stop());

  test("per-key aggregates equal a ground truth computed here, before and after a restart", async () => {
    const random = new SeededRandom(2026);
    const base = Math.floor((Date.now() - 3 * 3_600_000) / 3_600_000) * 3_600_000;
    const keys = Array.from({ length: 1_000 }, (_, i) => `gt-${base}-${i}`);
    type Truth = { count: number; sum: number; min: number; max: number };
    const truth = new Map<string, Truth>();
    const perKey = keys.map((key) =>
      Array.from({ length: 10 }, (_, j) => {
        const ts = base + j * 30_000 + random.int(30_000);
        const value = Math.round(random.next() * 10_000) / 100;
        const id = `${key}:${j}`;
        const cell = `${key}|${Math.floor(ts / 60_000) * 60_000}`;
        const t = truth.get(cell) ?? { count: 0, sum: 0, min: Infinity, max: -Infinity };
        truth.set(cell, { count: t.count + 1, sum: t.sum + value, min: Math.min(t.min, value), max: Math.max(t.max, value) });
        return { event_id: id, event_type: j % 2 ? "purchase" : "refund", user_id: key, timestamp: ts, value };
      }),
    );
    // Interleave keys (each key's own events stay in time order) and send batches of 500.
    const stream = perKey.flatMap((events) => events.map((e, j) => ({ e, order: j * 1_000 + random.int(1_000) })));
    stream.sort((a, b) => a.order - b.order);
    const events = stream.map((s) => s.e);
    let stored = 0;
    for (let i = 0; i < events.length; i += 500) {
      // A 503 (local workerd restarting mid-request, as wrangler's proxy reports it) is retried as a
      // client would: a retry is safe, an event stored before the failure answers as a duplicate.
      let res = await post(target, events.slice(i, i + 500));
      for (let retry = 0; res.status === 503 && retry < 3; retry++) {
        await res.text();
        res = await post(target, events.slice(i, i + 500));
      }
      const body = await json(res);
      expect(res.status, JSON.stringify(body).slice(0, 500)).toBe(200);
      expect(body.rejected).toEqual([]);
      expect(body.late).toBe(0);
      stored += body.accepted + body.duplicates;
    }
    expect(stored).toBe(10_000);

    const check = async () => {
      let cells = 0;
      await pool(keys, 16, async (key) => {
        const { windows } = await json(await target.fetch(`/v1/actors/${encodeURIComponent(key)}/windows?size=1m`));
        for (const w of windows) {
          const t = truth.get(`${key}|${Date.parse(w.start)}`)!;
          expect({ count: w.count, min: w.min, max: w.max }).toEqual({ count: t.count, min: t.min, max: t.max });
          expect(w.sum).toBeCloseTo(t.sum, 6);
          cells++;
        }
        const hour = await json(await target.fetch(`/v1/actors/${encodeURIComponent(key)}/windows?size=1h`));
        expect(hour.windows).toHaveLength(1);
        expect(hour.windows[0].count).toBe(10);
      });
      expect(cells).toBe(truth.size);
    };
    await check();

    await target.restart();
    await check();
    // Every retry after the restart is a duplicate.
    const retry = await json(await post(target, events.slice(0, 500)));
    expect(retry).toMatchObject({ accepted: 0, duplicates: 500 });
  }, 180_000);
});

test("wrangler deploy --dry-run bundles the Worker cleanly", () => {
  const out = tempDir("dist");
  const run = Bun.spawnSync([join(ROOT, "node_modules/.bin/wrangler"), "deploy", "--dry-run", "--outdir", out.path], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
  const output = run.stdout.toString() + run.stderr.toString();
  expect(run.exitCode, output).toBe(0);
  expect(output).toContain("--dry-run: exiting now.");
  const bundle = join(out.path, "workers.js");
  expect(existsSync(bundle)).toBe(true);
  expect(readFileSync(bundle, "utf8")).toContain("KeyActor");
  out.remove();
}, 120_000);

describe("the Workers rate limiting binding (workerd)", () => {
  let target: ReturnType<typeof processTarget>;
  beforeAll(async () => {
    target = processTarget(WORKERD_SERVER, { KEYFLOW_API_KEYS: TEST_KEY_LINES, KEYFLOW_TEST_RATE_LIMIT: "3" });
    await target.start();
  });
  afterAll(() => target.stop());

  test("KEYFLOW_RATE_LIMITER, when declared, refuses a key's requests over its limit with 429, per API key, nothing applied", async () => {
    const key = `limited-${Date.now()}`;
    const send = (as: "ingest" | "read", id: string) =>
      target.fetch("/v1/events", {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(as) },
        body: JSON.stringify({ event_id: id, event_type: "signup", user_id: key }),
      });
    for (const id of ["l1", "l2", "l3"]) expect((await send("ingest", id)).status).toBe(202);
    const refused = await send("ingest", "l4");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("10");
    expect((await json(refused)).error).toMatchObject({ code: "rate_limited" });
    // Another key has its own counter: the read key still reads, and l4 was never applied.
    const state = await target.fetch(`/v1/actors/${key}`, { headers: bearer("read") });
    expect(state.status).toBe(200);
    expect((await json(state)).totals.events).toBe(3);
  });
});

/**
 * keyflow/client inside real workerd: a Worker tracks events through `withContext(ctx)` and answers
 * before they are sent; the invocation's waitUntil keeps it alive until they reach a real Bun
 * server. A second invocation sending the same event ids adds duplicates, never events.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { BUN_SERVER, processTarget, ROOT, spawnServer, type ServerProcess } from "../support/targets.ts";
import { TEST_KEY_LINES, TEST_KEYS } from "../support/api-keys.ts";

const server = processTarget(BUN_SERVER, { KEYFLOW_API_KEYS: TEST_KEY_LINES, KEYFLOW_LOG_LEVEL: "warn" });
let worker: ServerProcess | undefined;
const run = `cw-${Date.now().toString(36)}`;

beforeAll(async () => {
  await server.start();
  worker = await spawnServer(["node", join(ROOT, "tests/support/client-worker/host.mjs")], {
    PORT: "0",
    KEYFLOW_URL: server.url,
    KEYFLOW_API_KEY: TEST_KEYS.all,
  }, 60_000);
}, 90_000);

afterAll(async () => {
  await worker?.stop();
  await server.stop();
});

async function totals(key: string) {
  const res = await server.fetch(`/v1/actors/${encodeURIComponent(key)}`, { headers: { authorization: `Bearer ${TEST_KEYS.all}` } });
  if (res.status === 404) return { events: 0, duplicates: 0 };
  expect(res.status).toBe(200);
  return ((await res.json()) as { totals: { events: number; duplicates: number } }).totals;
}

async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(100);
  }
}

test("events tracked in a Worker reach the server after the response, through ctx.waitUntil; a retried id is a duplicate", async () => {
  const key = `${run}-user`;
  const first = await fetch(`${worker!.url}/track?key=${key}&n=120&run=${run}`);
  expect(first.status).toBe(200);
  const answer = (await first.json()) as { tracked: number; buffered: number };
  expect(answer.tracked).toBe(120);
  // The response left with events still in the client's buffer: only waitUntil can deliver them.
  expect(answer.buffered).toBeGreaterThan(0);
  await until("120 events on the server", 30_000, async () => (await totals(key)).events === 120);

  // The same 120 ids and one new one: the server counts 120 duplicates and 121 events.
  const second = await fetch(`${worker!.url}/track?key=${key}&n=121&run=${run}`);
  expect(second.status).toBe(200);
  await until("121 events and 120 duplicates", 30_000, async () => {
    const t = await totals(key);
    return t.events === 121 && t.duplicates === 120;
  });
  const final = await totals(key);
  expect(final).toMatchObject({ events: 121, duplicates: 120 });
}, 90_000);

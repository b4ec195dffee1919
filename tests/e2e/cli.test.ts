/**
 * The keyflow command (bin/keyflow) as a subprocess against a real Bun server: inspect, dlq list
 * and replay, keys create, tail receiving an event posted after it started, and errors that exit
 * non-zero with the server's message naming the field.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseApiKeys } from "../../src/auth/api-keys.ts";
import { bearer, TEST_KEY_LINES, TEST_KEYS } from "../support/api-keys.ts";
import { eventually, KEYFLOW_BIN, runKeyflow, startKeyflow } from "../support/cli-process.ts";
import { BUN_SERVER, CONTRACT_ENV, spawnServer, tempDir, type ServerProcess } from "../support/targets.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";
import { PG_URL } from "../support/postgres.ts";

/** A key that means something in a URL, a shell and a terminal: the CLI must send it as data. */
const KEY = `user/1 ?a=b#c%2F é ${Date.now()}`;

let server: ServerProcess;
let receiver: WebhookReceiver;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  receiver = startWebhookReceiver();
  receiver.refusing = true;
  dir = tempDir("cli");
  server = await spawnServer(BUN_SERVER, {
    ...CONTRACT_ENV,
    PORT: "0",
    HOST: "127.0.0.1",
    KEYFLOW_DATA_DIR: dir.path,
    KEYFLOW_API_KEYS: TEST_KEY_LINES,
    KEYFLOW_WEBHOOK_URL: receiver.url,
    KEYFLOW_WEBHOOK_SECRET: receiver.secret,
    KEYFLOW_LOG_LEVEL: "warn",
  });
});

afterAll(async () => {
  await server?.stop();
  receiver?.stop();
  dir?.remove();
});

/** The environment a user's shell would give the command: the server and a key, nothing of the test runner. */
const env = (key: keyof typeof TEST_KEYS | null = "all"): Record<string, string> => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? "/tmp",
  KEYFLOW_URL: server.url,
  ...(key ? { KEYFLOW_API_KEY: TEST_KEYS[key] } : {}),
});
const keyflow = (args: string[], key: keyof typeof TEST_KEYS | null = "all") => runKeyflow(KEYFLOW_BIN, args, { env: env(key) });

async function post(events: unknown[]) {
  const response = await fetch(`${server.url}/v1/events`, { method: "POST", headers: { ...bearer("ingest"), "content-type": "application/json" }, body: JSON.stringify(events) });
  expect(response.status).toBe(200);
  return await response.json();
}

const event = (id: string, value: number, properties: Record<string, unknown> = {}) => ({ event_id: id, event_type: "purchase", key: KEY, value, timestamp: Date.now(), properties });

describe("inspect and dlq", () => {
  let deadId: number;

  beforeAll(async () => {
    expect(await post([event("ok-1", 5), event("ok-2", 7), event("refused-1", 11, { refuse: true })])).toMatchObject({ accepted: 3, rejected: [] });
    const body = await eventually(
      "the refused event dead-lettered",
      async (): Promise<any> => (await fetch(`${server.url}/v1/actors/${encodeURIComponent(KEY)}/dlq`, { headers: bearer("admin") })).json(),
      (b: any) => b.dead_letters?.length === 1,
    );
    deadId = body.dead_letters[0].id;
  });

  test("inspect --json: the key's state, windows, late log, alerts, outbox and dead letters", async () => {
    const r = await keyflow(["inspect", KEY, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.actor).toMatchObject({ key: KEY, totals: { events: 3, by_type: { purchase: 3 } } });
    expect(body.windows.length).toBeGreaterThan(0);
    expect(body.windows.find((w: any) => w.size === "1h")).toMatchObject({ count: 3, sum: 23 });
    expect(body.late).toEqual([]);
    expect(body.alerts).toEqual([]);
    expect(body.outbox).toMatchObject({ dead_letters: 1 });
    expect(body.dead_letters.map((d: any) => d.record.event_id)).toEqual(["refused-1"]);
  });

  test("inspect, readable: the key quoted, its totals, and the dead letter", async () => {
    const r = await keyflow(["inspect", KEY]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`key ${JSON.stringify(KEY)}`);
    expect(r.stdout).toContain("events 3 (duplicates 0, late 0); by type: purchase 3");
    expect(r.stdout).toContain(`#${deadId} webhook event`);
  });

  test("inspect with a read-only key leaves out the outbox and dead letters", async () => {
    const r = await keyflow(["inspect", KEY, "--json"], "read");
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.actor.totals.events).toBe(3);
    expect([body.outbox, body.dead_letters]).toEqual([null, null]);
  });

  test("dlq list --json is the server's list", async () => {
    const r = await keyflow(["dlq", "list", KEY, "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.key).toBe(KEY);
    expect(body.dead_letters).toHaveLength(1);
    expect(body.dead_letters[0]).toMatchObject({ id: deadId, sink: "webhook", record: { kind: "event", event_id: "refused-1", key: KEY } });
  });

  test("dlq replay of an unknown sink exits 1 with the server's message naming the field", async () => {
    const r = await keyflow(["dlq", "replay", KEY, "--sink", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('keyflow dlq: sink "nope" is not enabled; enabled: webhook (HTTP 400 invalid_query)');
    expect(r.stderr).toContain("  sink: must be one of webhook");
  });

  test("dlq replay --ids sends the dead letter again", async () => {
    receiver.refusing = false;
    const r = await keyflow(["dlq", "replay", KEY, "--sink", "webhook", "--ids", String(deadId)]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`replayed 1 dead letter of ${JSON.stringify(KEY)}\n`);
    await eventually("the replayed event delivered", () => receiver.received.has("refused-1"), (v) => v);
    const after = JSON.parse((await keyflow(["dlq", "list", KEY, "--json"])).stdout);
    expect(after.dead_letters).toEqual([]);
  });
});

describe("errors", () => {
  test("a key with no events: exit 1 and the server's message", async () => {
    const r = await keyflow(["inspect", `never-${Date.now()}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no events have been accepted for key");
    expect(r.stderr).toContain("(HTTP 404 actor_not_found)");
  });

  test("no API key: exit 1 with the 401", async () => {
    const r = await keyflow(["inspect", KEY], null);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("HTTP 401");
  });

  test("dlq with a read-only key: exit 1 with the 403", async () => {
    const r = await keyflow(["dlq", "list", KEY], "read");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("HTTP 403");
  });

  test("no server at the URL: exit 1 saying there was no answer", async () => {
    const r = await runKeyflow(KEYFLOW_BIN, ["inspect", KEY, "--url", "http://127.0.0.1:9"], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no answer");
  });

  test("a bad flag exits 2 naming it, before any request", async () => {
    const r = await keyflow(["dlq", "replay", KEY, "--ids", "1,two"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toStartWith("keyflow dlq: --ids must be comma-separated dead-letter ids");
  });
});

test("keys create prints a key and a KEYFLOW_API_KEYS line the server's parser accepts", async () => {
  const r = await keyflow(["keys", "create", "--tenant", "acme", "--scopes", "read,admin"]);
  expect(r.code).toBe(0);
  const key = /\n {2}(kf_\S+)\n/.exec(r.stdout)?.[1];
  const line = /line for KEYFLOW_API_KEYS:\n {2}(\S+)/.exec(r.stdout)?.[1];
  expect(key).toMatch(/^kf_/);
  const parsed = parseApiKeys(line!);
  expect(parsed.problems).toEqual([]);
  expect(parsed.keys).toHaveLength(1);
});

test("tail prints an event posted after it started, as one JSON line, and stops on Ctrl-C", async () => {
  const tailKey = `tail/${Date.now()} "x"`;
  const tail = startKeyflow(KEYFLOW_BIN, ["tail", tailKey], env("read"));
  await eventually("tail following the key", () => tail.stderr(), (s) => s.includes("following"), 20_000);
  await post([{ event_id: "live-1", event_type: "purchase", key: tailKey, value: 3, timestamp: Date.now() }]);
  const lines = await eventually(
    "the event printed by tail",
    () => tail.stdout().split("\n").filter(Boolean),
    (l) => l.some((line) => line.includes('"live-1"')),
    20_000,
  );
  const records = lines.map((line) => JSON.parse(line));
  expect(records.find((r) => r.kind === "event")).toMatchObject({ kind: "event", event_id: "live-1", key: tailKey, value: 3 });
  expect(await tail.interrupt()).toBe(0);
  // Window updates arrive with the event's commit: every line is a record with a kind.
  for (const r of records) expect(["event", "window", "alert"]).toContain(r.kind);
});

describe("serve and migrate take their settings from the environment, and name a bad one", () => {
  test("serve on a public address without API keys exits 2 naming HOST and KEYFLOW_API_KEYS", async () => {
    const r = await runKeyflow(KEYFLOW_BIN, ["serve", "--host", "0.0.0.0", "--port", "0"], { env: { PATH: env().PATH!, HOME: env().HOME! }, limitMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("HOST=0.0.0.0");
    expect(r.stderr).toContain("KEYFLOW_API_KEYS");
  });

  test("migrate without a Postgres URL exits 2 naming KEYFLOW_POSTGRES_URL", async () => {
    const r = await runKeyflow(KEYFLOW_BIN, ["migrate"], { env: { PATH: env().PATH!, HOME: env().HOME! } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("KEYFLOW_POSTGRES_URL");
  });

  test("migrate against the local Postgres (postgres.js) is npm run migrate", async () => {
    const r = await runKeyflow(KEYFLOW_BIN, ["migrate"], { env: { PATH: env().PATH!, HOME: env().HOME!, KEYFLOW_POSTGRES_URL: PG_URL, KEYFLOW_POSTGRES_CLIENT: "native" } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("keyflow migrate: raw_events");
  });
});

/**
 * The single-file binary of `npm run build` (bun build --compile): built once into a temp dir, then
 * run from another empty temp dir with a clean environment (no node_modules, no Bun on PATH). It
 * prints its version, serves with embedded SQLite (events in, state out), keeps the state across a
 * SIGTERM and a restart on the same data dir, and serves the packaged pages and their assets.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bearer, TEST_KEY_LINES, TEST_KEYS } from "../support/api-keys.ts";
import { eventually, runKeyflow } from "../support/cli-process.ts";
import { BIN, freePort, ROOT } from "../support/process.ts";
import { tempDir } from "../support/targets.ts";
import { VERSION } from "../../src/version.ts";
import { KAFKA_BROKERS } from "../support/kafka.ts";
import { PG_URL } from "../support/postgres.ts";
import { REDIS_URL } from "../support/sink-env.ts";

const BUILD_TIMEOUT_MS = 180_000;

let build: ReturnType<typeof tempDir>;
let work: ReturnType<typeof tempDir>;
let binary: string;

/** `npm run build`'s own command, writing to `outfile` instead of dist/keyflow. */
function buildCommand(outfile: string): string[] {
  const script: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.build;
  const args = script.split(/\s+/);
  expect(args.slice(0, 3)).toEqual(["bun", "build", "--compile"]);
  expect(args.slice(-2)).toEqual(["--outfile", "dist/keyflow"]);
  return [join(BIN, "bun"), ...args.slice(1, -1), outfile];
}

beforeAll(async () => {
  build = tempDir("binary-build");
  work = tempDir("binary-run");
  const built = await runKeyflow(buildCommand(join(build.path, "keyflow")), [], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" }, limitMs: BUILD_TIMEOUT_MS });
  if (built.code !== 0) throw new Error(`npm run build failed:\n${built.stdout}\n${built.stderr}`);
  // Alone in an empty directory: nothing next to it to load.
  mkdirSync(join(work.path, "bin"));
  binary = join(work.path, "bin", "keyflow");
  copyFileSync(join(build.path, "keyflow"), binary);
  Bun.spawnSync(["chmod", "+x", binary]);
}, BUILD_TIMEOUT_MS);

afterAll(() => {
  build?.remove();
  work?.remove();
});

/** Only what a systemd unit would give it. */
const cleanEnv = (extra: Record<string, string> = {}): Record<string, string> => ({ PATH: "/usr/bin:/bin", HOME: work.path, ...extra });

/** `keyflow serve` from the binary, until its "listening on" line. */
async function serve(dataDir: string, extraEnv: Record<string, string> = {}) {
  const port = await freePort();
  const proc = Bun.spawn([binary, "serve", "--port", String(port), "--data-dir", dataDir], {
    cwd: work.path,
    env: cleanEnv({ KEYFLOW_API_KEYS: TEST_KEY_LINES, KEYFLOW_LOG_LEVEL: "warn", KEYFLOW_WINDOWS: "1m,1h", ...extraEnv }),
    stdout: "pipe",
    stderr: "pipe",
  });
  let output = "";
  const decoder = new TextDecoder();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  const reading = Promise.all([collect(proc.stdout), collect(proc.stderr)]);
  await eventually("the binary listening", () => (proc.exitCode === null ? output : `exited: ${output}`), (o) => o.includes("listening on") || o.startsWith("exited"), 30_000);
  expect(output).toContain(`listening on http://127.0.0.1:${port}`);
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop(): Promise<number> {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      const code = await proc.exited;
      clearTimeout(timer);
      await reading;
      return code;
    },
  };
}

test("keyflow --version, with nothing installed", async () => {
  const r = await runKeyflow([binary], ["--version"], { env: cleanEnv(), cwd: work.path });
  expect(r).toEqual({ code: 0, stdout: `keyflow ${VERSION}\n`, stderr: "" });
});

test("keyflow with an unknown command exits 2 with the usage", async () => {
  const r = await runKeyflow([binary], ["nope"], { env: cleanEnv(), cwd: work.path });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("usage: keyflow <command>");
});

test("serve: events in, state out, durable across SIGTERM and a restart; pages and assets from inside the binary", async () => {
  const dataDir = join(work.path, "data");
  const key = "user/1 é";
  const path = `/v1/actors/${encodeURIComponent(key)}`;
  let server = await serve(dataDir);
  const events = [1, 2, 3].map((n) => ({ event_id: `e${n}`, event_type: "purchase", key, value: n * 10, timestamp: Date.now() }));
  const posted = await fetch(`${server.url}/v1/events`, { method: "POST", headers: { ...bearer("ingest"), "content-type": "application/json" }, body: JSON.stringify(events) });
  expect(await posted.json()).toMatchObject({ accepted: 3, rejected: [] });
  // The binary's own client commands against the binary's server: inspect, and backfill (the engine is in the file).
  const inspected = await runKeyflow([binary], ["inspect", key, "--json", "--url", server.url, "--api-key", TEST_KEYS.read], { env: cleanEnv(), cwd: work.path });
  expect(inspected.code).toBe(0);
  expect(JSON.parse(inspected.stdout).actor.totals.events).toBe(3);
  const file = join(work.path, "history.ndjson");
  writeFileSync(file, [4, 5].map((n) => JSON.stringify({ event_id: `e${n}`, event_type: "purchase", key, value: n * 10, timestamp: Date.now() })).join("\n"));
  const backfilled = await runKeyflow([binary], ["backfill", file, "--json", "--no-progress", "--url", server.url, "--api-key", TEST_KEYS.ingest], { env: cleanEnv(), cwd: work.path });
  expect(backfilled.code).toBe(0);
  expect(JSON.parse(backfilled.stdout)).toMatchObject({ accepted: 2 });

  const before = (await (await fetch(server.url + path, { headers: bearer("read") })).json()) as any;
  expect(before).toMatchObject({ key, totals: { events: 5, by_type: { purchase: 5 } } });

  expect(await server.stop()).toBe(0);
  server = await serve(dataDir);
  try {
    const after = (await (await fetch(server.url + path, { headers: bearer("read") })).json()) as any;
    expect(after.totals).toEqual(before.totals);
    expect(after.open_windows).toEqual(before.open_windows);

    for (const page of ["/dashboard", "/docs"]) {
      const response = await fetch(server.url + page);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toStartWith("text/html");
      expect(await response.text()).toContain("<html");
    }
    for (const asset of ["dashboard.js", "uPlot.min.css"]) {
      const response = await fetch(`${server.url}/assets/${asset}`);
      expect(response.status).toBe(200);
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array(readFileSync(join(ROOT, "src/http/public/assets", asset))));
    }
    expect((await fetch(`${server.url}/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${server.url}/openapi.json`)).status).toBe(200);
  } finally {
    expect(await server.stop()).toBe(0);
  }
});

test("the native sink clients are in the binary: migrate with postgres.js, then deliver to Postgres, Redis (ioredis) and Kafka (kafkajs)", async () => {
  const run = `kfbin${Date.now()}`;
  const sinks = {
    KEYFLOW_POSTGRES_URL: PG_URL,
    KEYFLOW_POSTGRES_CLIENT: "native",
    KEYFLOW_REDIS_URL: REDIS_URL,
    KEYFLOW_REDIS_PREFIX: `${run}:`,
    KEYFLOW_KAFKA_BROKERS: KAFKA_BROKERS.join(","),
    KEYFLOW_KAFKA_TOPIC: `${run}.events`,
    KEYFLOW_KAFKA_WINDOWS_TOPIC: `${run}.windows`,
  };
  const migrated = await runKeyflow([binary], ["migrate"], { env: cleanEnv(sinks), cwd: work.path });
  expect(migrated.stderr).toBe("");
  expect(migrated.code).toBe(0);
  expect(migrated.stdout).toContain("keyflow migrate:");

  const server = await serve(join(work.path, "data-native"), sinks);
  try {
    for (const sink of ["kafka", "redis", "postgres"]) expect(server.output()).toMatch(new RegExp(`sinks: [a-z, ]*${sink}`));
    const key = `${run}-key`;
    const posted = await fetch(`${server.url}/v1/events`, {
      method: "POST",
      headers: { ...bearer("ingest"), "content-type": "application/json" },
      body: JSON.stringify({ event_id: `${run}-e1`, event_type: "purchase", key, value: 1, timestamp: Date.now() }),
    });
    expect(await posted.json()).toMatchObject({ status: "accepted" });
    const outbox = await eventually(
      "the event delivered to every sink",
      async (): Promise<any> => (await fetch(`${server.url}/v1/actors/${key}/outbox`, { headers: bearer("admin") })).json(),
      (o: any) => o.sinks?.length === 3 && o.sinks.every((s: any) => s.delivered >= 1),
      30_000,
    );
    expect(outbox.dead_letters).toBe(0);
  } finally {
    expect(await server.stop()).toBe(0);
  }
});

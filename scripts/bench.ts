// keyflow benchmarks: one command, one run, every number next to a baseline measured in the same run.
//   bun run bench                      # all sections (sinks section only when `npm run services` is up)
//   bun run bench --quick              # shorter runs
//   bun run bench --only core,http     # some sections: core, http, batch, workerd, sinks, memory
// Writes bench/results/latest.json and latest.md (git-ignored) and prints the table.
import { Database } from "bun:sqlite";
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Actor } from "../src/core/actor.ts";
import { DEFAULT_CONFIG } from "../src/core/config.ts";
import { DedupeIndex } from "../src/core/dedupe.ts";
import { spawnServer, BUN_SERVER, tempDir, WORKERD_SERVER } from "../tests/support/targets.ts";
import { benchEvents, coreRates } from "./bench-core.ts";
import { percentile, runLoad } from "./bench-load.ts";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, only: { type: "string" } } });
const QUICK = values.quick;
const ONLY = values.only?.split(",");
const want = (section: string) => !ONLY || ONLY.includes(section);
const SECONDS = QUICK ? 2 : 5;

interface Row {
  section: string;
  metric: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  target?: string;
  note?: string;
}
const rows: Row[] = [];
function record(row: Row) {
  rows.push(row);
  const ratio = row.baseline ? `  (${(row.value / row.baseline.value).toFixed(2)}x ${row.baseline.name})` : "";
  console.log(`  ${row.metric.padEnd(52)} ${fmt(row.value).padStart(12)} ${row.unit}${ratio}`);
}
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2));
const section = (name: string, title: string) => console.log(`\n[${name}] ${title}`);
const T0 = Date.now() - 3 * 3_600_000;

if (want("core")) {
  section("core", "actor core in memory: ingest + dedupe + windows (1m, 1h), pre-parsed events, 10,000 keys");
  const { baseline, rates } = coreRates(QUICK ? 300_000 : 1_000_000, 10_000, [100, 10]);
  for (const [per, rate] of rates) {
    record({
      section: "core", metric: `events/s, ${per} events per actor call`, value: rate, unit: "events/s",
      baseline: { name: "Set.add per id", value: baseline }, target: per === 100 ? ">= 2,000,000" : undefined,
    });
  }
}

if (want("http")) {
  section("http", `Bun host, single-event JSON requests, 32 connections, ${SECONDS}s each (SQLite, synchronous=full)`);
  const dir = tempDir("bench-http");
  const bare = await spawnServer(["bun", "scripts/bench-bare-server.ts"], { PORT: "0" });
  const keyflow = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path });
  let n = 0;
  const body = () => JSON.stringify({ event_id: `h${n++}`, event_type: "purchase", user_id: `u${n % 1000}`, timestamp: T0 + n, value: 1 });
  const base = await runLoad({ url: `${bare.url}/v1/events`, body, contentType: "application/json", concurrency: 32, seconds: SECONDS });
  const kf = await runLoad({ url: `${keyflow.url}/v1/events`, body, contentType: "application/json", concurrency: 32, seconds: SECONDS });
  if (kf.errors) console.log(`  keyflow errors: ${kf.errors}, statuses ${JSON.stringify(kf.statuses)}`);
  record({ section: "http", metric: "bare Bun.serve (parse JSON, 202): requests/s", value: base.rps, unit: "req/s" });
  record({ section: "http", metric: "keyflow single event: requests/s", value: kf.rps, unit: "req/s", baseline: { name: "bare", value: base.rps }, target: ">= 0.5x bare" });
  record({ section: "http", metric: "keyflow single event: p50 latency", value: percentile(kf.latencies, 50), unit: "ms" });
  record({ section: "http", metric: "keyflow single event: p99 latency", value: percentile(kf.latencies, 99), unit: "ms", baseline: { name: "bare p99", value: percentile(base.latencies, 99) }, target: "< 5 ms" });
  await bare.stop();
  await keyflow.stop();
  dir.remove();
}

if (want("batch")) {
  section("batch", `Bun host, 1,000-event NDJSON batches over 1,000 keys, 4 connections, ${SECONDS}s (durable)`);
  const dir = tempDir("bench-batch");
  const keyflow = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path });
  let n = 0;
  const body = () => {
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++, n++) lines.push(JSON.stringify({ event_id: `b${n}`, event_type: "purchase", user_id: `u${n % 1000}`, timestamp: T0 + Math.floor(n / 1000), value: n % 100 }));
    return lines.join("\n");
  };
  // Baseline: one SQLite row per event, in transactions of 1,000 rows, same durability.
  const db = new Database(`${dir.path}/rows.db`, { create: true });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE seen (k TEXT, id TEXT, PRIMARY KEY (k, id)) WITHOUT ROWID");
  const insert = db.prepare("INSERT OR IGNORE INTO seen (k, id) VALUES (?, ?)");
  let rowsDone = 0;
  const until = performance.now() + SECONDS * 1000;
  while (performance.now() < until) {
    db.transaction(() => {
      for (let i = 0; i < 1000; i++, rowsDone++) insert.run(`u${rowsDone % 1000}`, `r${rowsDone}`);
    })();
  }
  const rowRate = rowsDone / SECONDS;
  db.close();
  const kf = await runLoad({ url: `${keyflow.url}/v1/events`, body, contentType: "application/x-ndjson", concurrency: 4, seconds: SECONDS });
  record({ section: "batch", metric: "keyflow batch ingest: events/s", value: kf.rps * 1000, unit: "events/s", baseline: { name: "1 SQLite row/event", value: rowRate }, target: ">= 500,000" });
  record({ section: "batch", metric: "keyflow batch ingest: p99 per request", value: percentile(kf.latencies, 99), unit: "ms" });
  await keyflow.stop();
  dir.remove();
}

if (want("workerd")) {
  section("workerd", `Worker + Durable Objects in local workerd (wrangler's programmatic API), ${SECONDS}s each`);
  const dir = tempDir("bench-workerd");
  const worker = await spawnServer(WORKERD_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path });
  const bare = await spawnServer(["bun", "scripts/bench-bare-server.ts"], { PORT: "0" });
  let n = 0;
  // 32 keys, each Durable Object created before the clock starts: local workerd creates a SQLite
  // file per new object, which is not what a warm deployment pays per request.
  const single = () => JSON.stringify({ event_id: `w${n++}`, event_type: "purchase", user_id: `u${n % 32}`, timestamp: T0 + n, value: 1 });
  for (let i = 0; i < 64; i++) await fetch(`${worker.url}/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: single() });
  const base = await runLoad({ url: `${bare.url}/v1/events`, body: single, contentType: "application/json", concurrency: 32, seconds: SECONDS });
  const one = await runLoad({ url: `${worker.url}/v1/events`, body: single, contentType: "application/json", concurrency: 32, seconds: SECONDS });
  record({ section: "workerd", metric: "single event, 32 warm keys: requests/s", value: one.rps, unit: "req/s", baseline: { name: "bare Bun", value: base.rps } });
  record({ section: "workerd", metric: "single event: p99 latency", value: percentile(one.latencies, 99), unit: "ms" });
  const batch = () => {
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++, n++) lines.push(JSON.stringify({ event_id: `w${n}`, event_type: "purchase", user_id: `u${n % 32}`, timestamp: T0 + Math.floor(n / 32), value: 1 }));
    return lines.join("\n");
  };
  const many = await runLoad({ url: `${worker.url}/v1/events`, body: batch, contentType: "application/x-ndjson", concurrency: 4, seconds: SECONDS });
  record({ section: "workerd", metric: "1,000-event batches over 32 keys: events/s", value: many.rps * 1000, unit: "events/s" });
  await worker.stop();
  await bare.stop();
  dir.remove();
}

if (want("sinks")) {
  section("sinks", "end to end: ingest -> visible in Redis, Postgres and Kafka (local services)");
  const { sinkLatency } = await import("./bench-sinks.ts");
  const result = await sinkLatency(QUICK ? 100 : 300);
  if (!result) console.log("  skipped: run `npm run services` first");
  else for (const [sink, lat] of Object.entries(result) as Array<[string, number[]]>) {
    record({ section: "sinks", metric: `${sink}: p50 ingest -> visible`, value: percentile(lat, 50), unit: "ms" });
    record({ section: "sinks", metric: `${sink}: p99 ingest -> visible`, value: percentile(lat, 99), unit: "ms", target: sink === "redis" ? "< 50 ms" : undefined });
  }
}

if (want("memory")) {
  section("memory", "heap bytes per dedupe ID and per active actor");
  const heap = () => {
    Bun.gc(true);
    return process.memoryUsage().heapUsed;
  };
  const ids: string[] = JSON.parse(JSON.stringify(Array.from({ length: 1_000_000 }, (_, i) => `evt-${i}-${(i * 2654435761) % 1e9}`)));
  let before = heap();
  const index = new DedupeIndex({ horizon: 7 * 86_400_000, maxIds: 1_000_000 });
  for (const id of ids) index.addIfNew(id, 0);
  const perId = (heap() - before) / ids.length;
  record({ section: "memory", metric: "dedupe index: bytes per ID (ID strings excluded)", value: perId, unit: "bytes", note: "IDs of ~20 characters" });
  const list = benchEvents(10_000, 10_000);
  before = heap();
  const actors = list.map((e) => {
    const a = new Actor(e.key, DEFAULT_CONFIG);
    a.ingest([e], Date.now());
    return a;
  });
  record({ section: "memory", metric: "active actor with one event (1m + 1h windows)", value: (heap() - before) / actors.length, unit: "bytes" });
  if (index.size !== ids.length) throw new Error("dedupe index lost IDs");
}

mkdirSync("bench/results", { recursive: true });
const stamp = new Date().toISOString();
writeFileSync("bench/results/latest.json", JSON.stringify({ at: stamp, quick: QUICK, rows }, null, 2));
const table = [
  `# keyflow bench (${stamp}${QUICK ? ", quick" : ""})`,
  "",
  "| section | metric | value | baseline (same run) | ratio | target |",
  "|---|---|---:|---|---:|---|",
  ...rows.map((r) =>
    `| ${r.section} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)}` : ""} | ${r.baseline ? `${(r.value / r.baseline.value).toFixed(2)}x` : ""} | ${r.target ?? ""} |`,
  ),
].join("\n");
writeFileSync("bench/results/latest.md", `${table}\n`);
console.log(`\n${table}\n\nwrote bench/results/latest.json and latest.md`);

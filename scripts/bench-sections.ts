// The sections of `bun run bench`, each measured next to a baseline taken in the same run. The
// benchmark script runs them long; tests/bench runs them short and checks only their ratios.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { Actor } from "../src/actor/actor.ts";
import { DEFAULT_CONFIG } from "../src/settings/config.ts";
import { DedupeIndex } from "../src/actor/dedupe.ts";
import type { Event } from "../src/actor/event.ts";
import { BUN_SERVER, spawnServer, tempDir, WORKERD_SERVER, type ServerProcess } from "../tests/support/targets.ts";
import { benchEvents, coreRates } from "./bench-core.ts";
import { analyticsRates, type AnalyticsVariant } from "./bench-analytics.ts";
import { hasWrk, percentile, runLoad, runWrk, type LoadResult } from "./bench-load.ts";

/** `keyflow backfill` end to end (scripts/bench-backfill.ts). */
export { backfillSection } from "./bench-backfill.ts";
/** 1,000,000 keys on one Bun server within 2 GiB RSS (scripts/bench-keys.ts). */
export { keysSection } from "./bench-keys.ts";

export interface Row {
  /** Stable name, the key of bench/baseline.json. */
  id: string;
  section: string;
  metric: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** Whether a larger value is better (throughput) or a smaller one (latency, bytes). */
  better?: "higher" | "lower";
  target?: string;
  note?: string;
}

/** The ratio to the baseline, oriented so that larger is always better; what regression checks use. */
export function score(row: Row): number | undefined {
  if (!row.baseline) return undefined;
  return row.better === "lower" ? row.baseline.value / row.value : row.value / row.baseline.value;
}

const T0 = Date.now() - 3 * 3_600_000;

export function coreSection(events: number): Row[] {
  // One event per call is how single-event traffic calls the core (issue 14: >= 1 M/s).
  const { baseline, rates } = coreRates(events, 10_000, [100, 10, 1]);
  return [...rates].map(([per, rate]) => ({
    id: `core.per_call_${per}`,
    section: "core",
    metric: `events/s, ${per} events per actor call`,
    value: rate,
    unit: "events/s",
    baseline: { name: "Set.add per id", value: baseline },
    target: per === 100 ? ">= 2,000,000" : per === 1 ? ">= 1,000,000" : undefined,
  }));
}

/**
 * Issue 12's analytics against tumbling windows only, in the actor core in memory (bench-analytics.ts):
 * KEYFLOW_WINDOWS 1m,1h alone, then with keyflow.config.json giving purchases sliding 10m and session
 * 30m windows and the Kafka Streams reference job's three rules (enrichment high_value, count per 1m
 * > 10, sum per 1h > 5000), then also a distinct count and percentiles. Ingest alone (as the core
 * section) and ingest plus closing every window (the whole job, as the kstreams section times it).
 * `keys`: benchEvents' stream gives each key events / keys events within 10 s; keep it at 100 (the
 * full run's and the Kafka Streams reference's) for ratios comparable with theirs.
 */
export function analyticsSection(events: number, keys: number, perCall: number[] = [100, 1], extrasPerCall: number[] = [100]): Row[] {
  const { rates, analyticsOutput } = analyticsRates(events, keys, perCall, extrasPerCall);
  const rows: Row[] = [];
  const what: Record<Exclude<AnalyticsVariant, "tumbling">, { prefix: string; label: string; note: string }> = {
    analytics: {
      prefix: "",
      label: "sliding + session, enrichment + 3 rules",
      note: 'purchase: windows 1m, 1h, sliding:10m, session:30m; enrich high_value when value > 1000; rules count_1m_over_10 (1m count > 10) and sum_1h_over_5000 (1h sum > 5000): the Kafka Streams analytics job\'s, but on purchases alone (a third of the events; its windows and rules take every event)',
    },
    extras: {
      prefix: "extras_",
      label: "+ distinct + p50/p99",
      note: "the analytics configuration plus, on purchase, distinct properties.product_id (exact up to 1000) and percentiles [50, 99]",
    },
  };
  for (const [timed, idPart, label, tumblingLabel] of [
    ["ingest", "", "ingest", "tumbling 1m, 1h only"],
    ["withClose", "closed_", "ingest+close", "tumbling only, ingest+close"],
  ] as const) {
    for (const variant of ["analytics", "extras"] as const) {
      for (const per of variant === "extras" ? extrasPerCall : perCall) {
        const base = rates.tumbling.get(per)![timed];
        const output = analyticsOutput.get(per);
        rows.push({
          id: `analytics.${what[variant].prefix}${idPart}per_call_${per}`,
          section: "analytics",
          metric: `${what[variant].label}, ${label}, ${per}/call`,
          value: rates[variant].get(per)![timed],
          unit: "events/s",
          baseline: { name: tumblingLabel, value: base },
          target: variant === "analytics" && timed === "withClose" ? ">= Kafka Streams' analytics/tumbling (0.06x in memory, kstreams section)" : undefined,
          note: `${events} events over ${keys} keys, ${per} per actor call, the same for both variants; ${what[variant].note}${variant === "analytics" && output ? `; ${output.alerts} alerts fired, ${output.closed} windows closed` : ""}`,
        });
      }
    }
  }
  return rows;
}

/**
 * `variants` also measures the same server with weaker durability (SQLite synchronous=normal: survives
 * a process crash, not a power loss) and with no storage, to show what the fsync of each commit costs.
 */
/**
 * Single JSON events, 32 connections, to a bare Bun.serve and to keyflow (durable, then the
 * variants). The load comes from wrk when it is installed (as issue 14's figures; `apt-get install
 * wrk`), else from the JavaScript client, which takes a core of its own and so caps the bare server
 * well below what it serves: its ratios read higher than wrk's.
 */
export async function httpSection(seconds: number, variants = false): Promise<Row[]> {
  const wrk = hasWrk();
  const load = wrk ? (url: string, shape?: EventShape) => wrkEvents(url, seconds, shape) : (url: string, shape?: EventShape) => jsEvents(url, seconds, shape);
  const by = wrk ? "wrk" : "JS client";
  const bare = await spawnServer(["bun", "scripts/bench-bare-server.ts"], { PORT: "0" });
  // `late`: 100 keys whose watermark the warm-up takes to now, three hours past the measured events: every one is late.
  const measureKeyflow = async (env: Record<string, string>, late = false) => {
    const dir = tempDir("bench-http");
    const keyflow = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path, ...env }, undefined, false);
    try {
      // warm: JIT, the first SQLite pages
      await load(keyflow.url, late ? { keys: 100, tsBase: Date.now() - 60_000 } : undefined);
      const result = await load(keyflow.url, late ? { keys: 100, tsBase: T0 } : undefined);
      failOnErrors("keyflow", result);
      return result;
    } finally {
      await keyflow.stop();
      dir.remove();
    }
  };
  try {
    await load(bare.url);
    const base = await load(bare.url);
    failOnErrors("bare", base);
    const kf = await measureKeyflow({});
    const baseline = { name: "bare", value: base.rps };
    const rows: Row[] = [
      { id: "http.bare_rps", section: "http", metric: `bare Bun.serve (parse JSON, 202): requests/s (${by})`, value: base.rps, unit: "req/s" },
      { id: "http.rps", section: "http", metric: "keyflow single event: requests/s", value: kf.rps, unit: "req/s", baseline, target: ">= 0.5x bare" },
      { id: "http.p50", section: "http", metric: "keyflow single event: p50 latency", value: kf.p50, unit: "ms" },
      { id: "http.p99", section: "http", metric: "keyflow single event: p99 latency", value: kf.p99, unit: "ms", baseline: { name: "bare p99", value: base.p99 }, better: "lower", target: "< 5 ms" },
    ];
    if (variants) {
      for (const [id, label, env, target] of [
        ["http.rps_sync_normal", "synchronous=normal", { KEYFLOW_SQLITE_SYNC: "normal" }, undefined],
        ["http.rps_memory", "storage in memory (not durable)", { KEYFLOW_STORAGE: "memory" }, ">= 0.7x bare"],
      ] as const) {
        const r = await measureKeyflow(env);
        rows.push({ id, section: "http", metric: `keyflow single event, ${label}: requests/s`, value: r.rps, unit: "req/s", baseline, target });
        rows.push({ id: `${id}_p99`, section: "http", metric: `keyflow single event, ${label}: p99`, value: r.p99, unit: "ms" });
      }
      // Late-only traffic fills each key's late log: a checkpoint that rewrote it whole stalled the loop (issue 14).
      const late = await measureKeyflow({}, true);
      rows.push({ id: "http.rps_late", section: "http", metric: "keyflow single event, every one late (100 keys): requests/s", value: late.rps, unit: "req/s", baseline: { name: "on time", value: kf.rps } });
      rows.push({ id: "http.p99_late", section: "http", metric: "keyflow single event, every one late (100 keys): p99", value: late.p99, unit: "ms", baseline: { name: "on time", value: kf.p99 }, better: "lower" });
    }
    return rows;
  } finally {
    await bare.stop();
  }
}

/** Throughput and latency percentiles of one single-event load. */
type EventLoad = { requests: number; rps: number; p50: number; p99: number; errors: number; firstError?: string };

/** A fresh event id prefix per load, so a server measured twice sees no duplicates. */
let loads = 0;

/** Which keys single events go to, and where their timestamps start (`T0` + one ms per event). */
type EventShape = { keys: number; tsBase: number };

async function wrkEvents(url: string, seconds: number, { keys, tsBase }: EventShape = { keys: 1000, tsBase: T0 }): Promise<EventLoad> {
  const prefix = `h${loads++}-`;
  const script = [
    "local n = 0",
    'wrk.method = "POST"',
    'wrk.headers["content-type"] = "application/json"',
    "request = function()",
    "  n = n + 1",
    `  return wrk.format(nil, "/v1/events", nil, string.format('{"event_id":"${prefix}%d","event_type":"purchase","user_id":"u%d","timestamp":%d,"value":1}', n, n % ${keys}, ${tsBase} + n))`,
    "end",
  ].join("\n");
  return runWrk({ url, script, connections: 32, seconds });
}

async function jsEvents(url: string, seconds: number, { keys, tsBase }: EventShape = { keys: 1000, tsBase: T0 }): Promise<EventLoad> {
  const prefix = `h${loads++}-`;
  let n = 0;
  const body = () => JSON.stringify({ event_id: `${prefix}${n++}`, event_type: "purchase", user_id: `u${n % keys}`, timestamp: tsBase + n, value: 1 });
  const r = await runLoad({ url: `${url}/v1/events`, body, contentType: "application/json", concurrency: 32, seconds });
  return { ...r, p50: percentile(r.latencies, 50), p99: percentile(r.latencies, 99) };
}

type Side = { env: Record<string, string>; headers?: Record<string, string> };
type Measured = LoadResult & { cpuUsPerRequest: number };

/**
 * Single events to two servers of the same build, differing in `env`, in alternating rounds so that
 * the machine's drift hits both alike; the median round of each side by throughput and by the
 * server's own CPU time per request (/proc/<pid>/stat: the load generator, which shares the cores,
 * does not count there).
 */
async function compareServers(seconds: number, rounds: number, what: string, base: Side, other: Side): Promise<{ base: Measured; other: Measured; baseCpu: Measured; otherCpu: Measured }> {
  let n = 0;
  const body = () => JSON.stringify({ event_id: `a${n++}`, event_type: "purchase", user_id: `u${n % 1000}`, timestamp: T0 + n, value: 1 });
  const dirs = [tempDir("bench-a"), tempDir("bench-b")];
  const servers = [
    await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dirs[0]!.path, ...base.env }, undefined, false),
    await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dirs[1]!.path, ...other.env }, undefined, false),
  ];
  const measure = async (server: ServerProcess, headers?: Record<string, string>): Promise<Measured> => {
    const cpuBefore = cpuSeconds(server.proc.pid);
    const result = await runLoad({ url: `${server.url}/v1/events`, body, contentType: "application/json", concurrency: 32, seconds, headers });
    return { ...result, cpuUsPerRequest: ((cpuSeconds(server.proc.pid) - cpuBefore) * 1e6) / result.requests };
  };
  try {
    await measure(servers[0]!, base.headers);
    await measure(servers[1]!, other.headers);
    const runs: Measured[][] = [[], []];
    for (let round = 0; round < rounds; round++) {
      runs[0]!.push(await measure(servers[0]!, base.headers));
      runs[1]!.push(await measure(servers[1]!, other.headers));
    }
    failOnErrors(what, ...runs[0]!, ...runs[1]!);
    const median = (rs: Measured[], by: (r: Measured) => number) => [...rs].sort((a, b) => by(a) - by(b))[Math.floor(rs.length / 2)]!;
    return {
      base: median(runs[0]!, (r) => r.rps),
      other: median(runs[1]!, (r) => r.rps),
      baseCpu: median(runs[0]!, (r) => r.cpuUsPerRequest),
      otherCpu: median(runs[1]!, (r) => r.cpuUsPerRequest),
    };
  } finally {
    for (const server of servers) await server.stop();
    for (const d of dirs) d.remove();
  }
}

/** What API keys cost ingest: a server with ten keys (three tenants), sent a key, against no keys. */
export async function authSection(seconds: number, rounds: number): Promise<Row[]> {
  const keys = Array.from({ length: 10 }, (_, i) => `kf_bench_${i}_${"x".repeat(32)}`);
  const lines = keys.map((k, i) => `tenant-${i % 3}:ingest,read:${createHash("sha256").update(k).digest("hex")}`).join(" ");
  const r = await compareServers(seconds, rounds, "keyflow with keys", { env: {} }, { env: { KEYFLOW_API_KEYS: lines }, headers: { authorization: `Bearer ${keys[7]}` } });
  return [
    {
      id: "auth.rps", section: "auth", metric: "single event with an API key (10 keys configured): requests/s", value: r.other.rps, unit: "req/s",
      baseline: { name: "no keys", value: r.base.rps }, target: ">= 0.95x",
    },
    { id: "auth.p99", section: "auth", metric: "single event with an API key: p99", value: percentile(r.other.latencies, 99), unit: "ms",
      baseline: { name: "no keys p99", value: percentile(r.base.latencies, 99) }, better: "lower" },
    { id: "auth.cpu", section: "auth", metric: "single event with an API key: server CPU per request", value: r.otherCpu.cpuUsPerRequest, unit: "us",
      baseline: { name: "no keys", value: r.baseCpu.cpuUsPerRequest }, better: "lower" },
  ];
}

/** What operating costs ingest: metrics on and a log line per request (the defaults) against both off. */
export async function opsSection(seconds: number, rounds: number): Promise<Row[]> {
  const off = { KEYFLOW_METRICS: "off", KEYFLOW_LOG_LEVEL: "warn" };
  const r = await compareServers(seconds, rounds, "keyflow with metrics and logs", { env: off }, { env: {} });
  return [
    {
      id: "ops.rps", section: "ops", metric: "single event, metrics and request logs on: requests/s", value: r.other.rps, unit: "req/s",
      baseline: { name: "both off", value: r.base.rps }, target: ">= 0.9x",
    },
    { id: "ops.cpu", section: "ops", metric: "single event, metrics and request logs on: server CPU per request", value: r.otherCpu.cpuUsPerRequest, unit: "us",
      baseline: { name: "both off", value: r.baseCpu.cpuUsPerRequest }, better: "lower" },
  ];
}

/** utime + stime of a process, in seconds (Linux /proc; clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function batchSection(seconds: number): Promise<Row[]> {
  const dir = tempDir("bench-batch");
  const keyflow = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path }, undefined, false);
  try {
    let n = 0;
    const body = () => {
      const lines: string[] = [];
      for (let i = 0; i < 1000; i++, n++) lines.push(JSON.stringify({ event_id: `b${n}`, event_type: "purchase", user_id: `u${n % 1000}`, timestamp: T0 + Math.floor(n / 1000), value: n % 100 }));
      return lines.join("\n");
    };
    const load = (s: number) => runLoad({ url: `${keyflow.url}/v1/events`, body, contentType: "application/x-ndjson", concurrency: 4, seconds: s });
    await load(Math.min(1, seconds));
    const rowRate = sqliteRowRate(dir.path, seconds);
    const kf = await load(seconds);
    failOnErrors("keyflow", kf);
    return [
      {
        id: "batch.events_per_s", section: "batch", metric: "keyflow batch ingest: events/s", value: kf.rps * 1000, unit: "events/s",
        baseline: { name: "1 SQLite row/event", value: rowRate }, target: ">= 500,000",
      },
      { id: "batch.p99", section: "batch", metric: "keyflow batch ingest: p99 per request", value: percentile(kf.latencies, 99), unit: "ms" },
    ];
  } finally {
    await keyflow.stop();
    dir.remove();
  }
}

/** A measurement over failed requests is no measurement. */
function failOnErrors(name: string, ...results: Array<Pick<LoadResult, "errors" | "requests" | "firstError"> & { statuses?: Record<number, number> }>): void {
  for (const r of results) {
    if (r.errors) throw new Error(`${name}: ${r.errors} of ${r.requests} requests failed (${r.firstError ?? JSON.stringify(r.statuses)})`);
  }
}

/** Baseline of the batch section: one SQLite row per event id, 1,000 rows per transaction, same durability. */
function sqliteRowRate(dir: string, seconds: number): number {
  const db = new Database(`${dir}/rows.db`, { create: true });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE seen (k TEXT, id TEXT, PRIMARY KEY (k, id)) WITHOUT ROWID");
  const insert = db.prepare("INSERT OR IGNORE INTO seen (k, id) VALUES (?, ?)");
  let rows = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    db.transaction(() => {
      for (let i = 0; i < 1000; i++, rows++) insert.run(`u${rows % 1000}`, `r${rows}`);
    })();
  }
  const rate = rows / ((performance.now() - start) / 1000);
  db.close();
  return rate;
}

export async function workerdSection(seconds: number): Promise<Row[]> {
  const dir = tempDir("bench-workerd");
  const worker = await spawnServer(WORKERD_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path });
  const bare = await spawnServer(["bun", "scripts/bench-bare-server.ts"], { PORT: "0" });
  try {
    let n = 0;
    // 32 keys, each Durable Object created before the clock starts: local workerd creates a SQLite
    // file per new object, which is not what a warm deployment pays per request.
    const single = () => JSON.stringify({ event_id: `w${n++}`, event_type: "purchase", user_id: `u${n % 32}`, timestamp: T0 + n, value: 1 });
    for (let i = 0; i < 64; i++) await fetch(`${worker.url}/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: single() });
    const base = await runLoad({ url: `${bare.url}/v1/events`, body: single, contentType: "application/json", concurrency: 32, seconds });
    const one = await runLoad({ url: `${worker.url}/v1/events`, body: single, contentType: "application/json", concurrency: 32, seconds });
    const batch = () => {
      const lines: string[] = [];
      for (let i = 0; i < 1000; i++, n++) lines.push(JSON.stringify({ event_id: `w${n}`, event_type: "purchase", user_id: `u${n % 32}`, timestamp: T0 + Math.floor(n / 32), value: 1 }));
      return lines.join("\n");
    };
    const many = await runLoad({ url: `${worker.url}/v1/events`, body: batch, contentType: "application/x-ndjson", concurrency: 4, seconds });
    failOnErrors("workerd", one, many);
    return [
      {
        id: "workerd.rps", section: "workerd", metric: "single event, 32 warm keys: requests/s", value: one.rps, unit: "req/s",
        baseline: { name: "bare Bun", value: base.rps },
      },
      { id: "workerd.p50", section: "workerd", metric: "single event: p50 latency", value: percentile(one.latencies, 50), unit: "ms" },
      { id: "workerd.p99", section: "workerd", metric: "single event: p99 latency", value: percentile(one.latencies, 99), unit: "ms" },
      { id: "workerd.batch", section: "workerd", metric: "1,000-event batches over 32 keys: events/s", value: many.rps * 1000, unit: "events/s" },
      { id: "workerd.batch_p99", section: "workerd", metric: "1,000-event batches: p99 per request", value: percentile(many.latencies, 99), unit: "ms" },
    ];
  } finally {
    await worker.stop();
    await bare.stop();
    dir.remove();
  }
}

/**
 * What turning the sinks on costs the Bun host, and how fast and how soon the accepted events reach
 * Redis, Postgres and Kafka (scripts/bench-sinks.ts has the method). `size` is the bench's: 100 for
 * --quick and 300 for a full run (any number up to 100 picks the quick preset), or the options
 * themselves (the quick preset where left out). Null when the local services are not running.
 */
export async function sinksSection(size: number | Partial<Omit<import("./bench-sinks.ts").SinksBenchOptions, "log">> = 300): Promise<Row[] | null> {
  const { sinksBench, SINKS_PRESETS, SINK_NAMES, NATIVE_SINK_NAMES } = await import("./bench-sinks.ts");
  const { benchKafkaNative } = await import("./bench-kafka-native.ts");
  const preset = typeof size === "number" ? (size <= 100 ? SINKS_PRESETS.quick : SINKS_PRESETS.full) : { ...SINKS_PRESETS.quick, ...size };
  const r = await sinksBench({ ...preset, log: (line) => console.log(`  .. ${line}`) });
  if (!r) return null;
  const drainTarget = { redis: ">= 60,000", postgres: ">= 30,000", kafka: ">= 60,000" } as const;
  const rows: Row[] = [
    {
      id: "sinks.ingest", section: "sinks", metric: "ingest, Redis + Postgres + Kafka on: events/s", value: r.on.eventsPerS, unit: "events/s",
      baseline: { name: "sinks off", value: r.off.eventsPerS }, target: ">= 0.8x",
    },
    {
      id: "sinks.disk", section: "sinks", metric: "disk bytes written per event, sinks on", value: r.on.bytesPerEvent, unit: "bytes",
      baseline: { name: "sinks off", value: r.off.bytesPerEvent }, better: "lower", target: "<= 1.5x off",
      note: "write_bytes of the server process from the timed ingest's start until 2 s without writes after it (and after the drain)",
    },
  ];
  for (const sink of SINK_NAMES) {
    const d = r.drain[sink];
    rows.push({
      id: `sinks.${sink}.drain`, section: "sinks", metric: `${sink}: drain, ingest start -> last event visible`, value: d.eventsPerS, unit: "events/s",
      baseline: { name: "direct, same client", value: r.direct[sink].eventsPerS }, target: drainTarget[sink],
      note: d.timedOut ? `timed out after ${d.seconds.toFixed(0)} s: ${d.landed} of ${d.expected} landed` : `${d.expected} events in ${d.seconds.toFixed(1)} s`,
    });
  }
  for (const sink of NATIVE_SINK_NAMES) {
    const d = r.native.drain[sink];
    rows.push({
      id: `sinks.${sink}.drain_native`, section: "sinks", metric: `${sink}, native client: drain, ingest start -> last event visible`, value: d.eventsPerS,
      unit: "events/s", baseline: { name: "direct, HTTP client (as the drain rows)", value: r.direct[sink].eventsPerS }, target: drainTarget[sink],
      note: `${sink === "redis" ? "ioredis (redis://)" : "postgres.js (postgres://)"} in the same run (the HTTP client: ${Math.round(r.drain[sink].eventsPerS).toLocaleString("en-US")} events/s); ` +
        (d.timedOut ? `timed out after ${d.seconds.toFixed(0)} s: ${d.landed} of ${d.expected} landed` : `${d.expected} events in ${d.seconds.toFixed(1)} s`),
    });
  }
  const kafka = await benchKafkaNative({ ingestSeconds: preset === SINKS_PRESETS.full ? 5 : 2, drainTimeoutMs: 120_000, log: (line) => console.log(`  .. ${line}`) });
  rows.push({
    id: "sinks.kafka.drain_native", section: "sinks", metric: "kafka, native transactional producer: drain, ingest start -> last event visible", value: kafka.native.eventsPerS,
    unit: "events/s", baseline: { name: "the REST bridge, same load, same run", value: kafka.rest.eventsPerS }, target: drainTarget.kafka,
    note: `kafkajs, exactly once for read_committed (KEYFLOW_KAFKA_BROKERS); only Kafka on, 1,000-event batches; ${kafka.native.landed} events in ${kafka.native.seconds.toFixed(1)} s` +
      (kafka.native.timedOut || kafka.rest.timedOut ? " (a drain timed out)" : ""),
  });
  if (r.sameRate) {
    rows.push({
      id: "sinks.disk_same_rate", section: "sinks", metric: `disk bytes per event at ${r.sameRate.eventsPerS.toLocaleString("en-US")} events/s offered, sinks on`,
      value: r.sameRate.on, unit: "bytes", baseline: { name: "sinks off, same rate", value: r.sameRate.off }, better: "lower", target: "<= 1.5x off",
      note: "open loop at the same rate for both, so the per-second cost of checkpoints is spread over as many events",
    });
  }
  for (const sink of SINK_NAMES) {
    const alone = r.alone[sink];
    if (!alone) continue;
    rows.push({
      id: `sinks.${sink}.drain_alone`, section: "sinks", metric: `${sink} alone: drain, ingest start -> last event visible`, value: alone.eventsPerS,
      unit: "events/s", baseline: { name: "direct, same client", value: r.direct[sink].eventsPerS }, target: drainTarget[sink],
      note: "only this sink on: keyflow's delivery without the other sinks' services on the same two cores",
    });
  }
  for (const sink of SINK_NAMES) {
    rows.push({
      id: `sinks.${sink}.direct_serial`, section: "sinks", metric: `${sink}: direct writes, one batch of 500 in flight`,
      value: r.directSerial[sink].eventsPerS, unit: "events/s", note: "what one batch in flight per sink allows",
    });
  }
  for (const sink of SINK_NAMES) {
    for (const p of [50, 99]) {
      rows.push({
        id: `sinks.${sink}.p${p}`, section: "sinks", metric: `${sink}: p${p} ingest -> visible at ${r.latency.offeredPerS.toLocaleString("en-US")} events/s`,
        value: percentile(r.latency.keyflow[sink], p), unit: "ms",
        baseline: { name: "direct write -> visible", value: percentile(r.latency.direct[sink], p) }, better: "lower",
        target: p === 99 ? "< 50 ms" : undefined,
      });
    }
  }
  return rows;
}

/** memorySection in a fresh Bun process, so that what earlier sections left on the heap does not count. */
export function memorySectionApart(ids: number): Row[] {
  const script = `import { memorySection } from "./scripts/bench-sections.ts"; console.log(JSON.stringify(memorySection(${ids})));`;
  const run = Bun.spawnSync([process.execPath, "-e", script], { cwd: join(import.meta.dir, ".."), stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`the memory section failed: ${run.stderr.toString()}`);
  return JSON.parse(run.stdout.toString().trim().split("\n").at(-1)!) as Row[];
}

export function memorySection(ids: number): Row[] {
  const heap = () => {
    Bun.gc(true);
    return process.memoryUsage().heapUsed;
  };
  // Actors first, while the heap is small: next to the million IDs below the figure reads ~15% higher.
  const list = benchEvents(20_000, 20_000);
  // Idle (issue 14): one event taken, its 1m and 1h windows open, checkpointed (rows drained), nothing in flight.
  const perActor = (sinks: string[]) => {
    const config = { ...DEFAULT_CONFIG, sinks };
    const idle = (e: Event) => {
      const a = new Actor(e.key, config);
      a.ingest([e], Date.now());
      a.drainWrites();
      a.outbox.markDurable();
      for (const sink of sinks) a.outbox.ack(sink, a.outbox.nextN);
      a.drainWrites();
      return a;
    };
    // Warmed up first: the code the first actors compile is heap too, but no actor's.
    list.slice(0, 1_000).map(idle);
    const start = heap();
    const actors = list.map(idle);
    return (heap() - start) / actors.length;
  };
  const idleActor = perActor([]);
  const idleActorWithSink = perActor(["redis"]);
  const strings: string[] = JSON.parse(JSON.stringify(Array.from({ length: ids }, (_, i) => `evt-${i}-${(i * 2654435761) % 1e9}`)));
  let before = heap();
  const bare = new Set<string>();
  for (const id of strings) bare.add(id);
  const perBareId = (heap() - before) / ids;
  before = heap();
  const index = new DedupeIndex({ horizon: 7 * 86_400_000, maxIds: ids });
  for (const id of strings) index.addIfNew(id, 0);
  const perId = (heap() - before) / ids;
  if (index.size !== ids || bare.size !== ids) throw new Error("an ID went missing");
  return [
    {
      id: "memory.dedupe_id", section: "memory", metric: "dedupe index: bytes per ID (ID strings excluded)", value: perId, unit: "bytes",
      baseline: { name: "bare Set<string>", value: perBareId }, better: "lower", target: "<= 64", note: "IDs of ~20 characters",
    },
    { id: "memory.actor", section: "memory", metric: "idle actor: 1 event, 1m + 1h windows open, checkpointed", value: idleActor, unit: "bytes", target: "<= 2,048 (2 KB)" },
    { id: "memory.actor_sink", section: "memory", metric: "the same with one sink (its record delivered)", value: idleActorWithSink, unit: "bytes" },
  ];
}

/**
 * Kafka Streams 4.1.1 running keyflow's job as a reference point (issue 12; scripts/kstreams/ has the
 * job and how it mirrors keyflow's): the tumbling-only job and the analytics job (plus sliding and
 * session windows and three rules), in TopologyTestDriver with in-memory and with RocksDB stores,
 * and as a KafkaStreams app on the local broker when `npm run services` is up. The stream is
 * benchEvents' over `keys` keys. No baselines: these are the numbers keyflow's own rows stand next to.
 * Prints why and returns no rows when java or mvn is missing.
 */
export async function kafkaStreamsReference(events: number, keys = 10_000): Promise<Row[]> {
  const { kstreamsMissing, runKStreams } = await import("./kstreams.ts");
  const missing = kstreamsMissing();
  if (missing) {
    console.log(`  skipped: ${missing}`);
    return [];
  }
  const r = await runKStreams({ events, keys, log: (line) => console.log(`  .. ${line}`) });
  const where = { inmemory: "TopologyTestDriver, in-memory stores", rocksdb: "TopologyTestDriver, RocksDB stores", broker: "app on the local broker, RocksDB + changelogs" };
  const job = { tumbling: "dedupe + tumbling 1m, 1h", analytics: "dedupe + tumbling + sliding 10m + session 30m + 3 rules" };
  const rows: Row[] = [];
  for (const variant of ["tumbling_inmemory", "analytics_inmemory", "tumbling_rocksdb", "analytics_rocksdb", "tumbling_broker", "analytics_broker"] as const) {
    const value = r[variant];
    if (value === undefined) continue;
    const [name, store] = variant.split("_") as [keyof typeof job, keyof typeof where];
    rows.push({
      id: `kstreams.${variant}`, section: "kstreams", metric: `Kafka Streams ${job[name]} (${where[store]})`, value, unit: "events/s",
      note: `${r.events} events over ${r.keys} keys; ${r.jvm}`,
    });
  }
  if (r.broker) console.log(`  .. broker variants: ${r.broker}`);
  return rows;
}

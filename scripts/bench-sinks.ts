// The `sinks` section of `bun run bench`: what turning the sinks on costs the Bun host, and how fast
// and how soon what it accepts reaches Redis, Postgres and Kafka, each next to a baseline measured
// in the same run (issue 9). Every phase uses names of its own (a unique run prefix), so the keys,
// streams, rows and topics it counts are new; they are removed at the end.
//
//  1. ingest: the same load (1,000-event NDJSON requests over 1,000 keys, 4 clients) against a fresh
//     durable Bun host with the sinks off, then against another with Redis + Postgres + Kafka on.
//  2. disk: /proc/<server pid>/io write_bytes per accepted event, from the start of the timed ingest
//     until the server has written nothing for 2 s after it (with sinks: after every sink has every
//     event), so checkpoints and delivery-driven commits are counted.
//  3. drain: per sink, events accepted in the sinks-on ingest / time from the ingest start until the
//     last of them is visible (polled every 100 ms). Then the same ingest once more with the native
//     clients (redis://: ioredis, postgres://: postgres.js; Kafka as before): their drains.
//  4. direct: the same rows written by this process with the same client and the simplest code
//     (tests/support/direct-writes.ts: one Postgres statement, one Redis pipeline of XADD, one REST
//     v2 binary produce), batches of 500, 4 in flight: the drain rows' baselines.
//  5. latency: ingest -> visible at an offered 1,000 events/s (open loop, 100 requests/s of 10
//     events over 50 keys) through a fresh host with all three sinks, then the same schedule written
//     straight to the sinks (the baseline), watched by the same probes: Redis XREAD BLOCK, a kafkajs
//     consumer, Postgres polled every 2 ms.
import { neonConfig, Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import type { Admin, Consumer } from "kafkajs";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect } from "node:net";
import type { EventRecord } from "../src/actor/outbox.ts";
import { directKafka, directPostgres, directRedis, type DirectWrite } from "../tests/support/direct-writes.ts";
import { kafkaClient, uniqueTopic } from "../tests/support/kafka.ts";
import { localSinkEnv, REDIS_FRONT, type ClientKind } from "../tests/support/sink-env.ts";
import { BUN_SERVER, spawnServer, tempDir, type ServerProcess } from "../tests/support/targets.ts";
import { percentile, runLoad, type LoadResult } from "./bench-load.ts";
import { parseRedisUrl, RespConnection, RespError, type Reply } from "./fronts/resp.ts";

export type SinkName = "redis" | "postgres" | "kafka";
export const SINK_NAMES: SinkName[] = ["redis", "postgres", "kafka"];
/** The sinks with a native client beside the HTTP one. */
export type NativeSinkName = "redis" | "postgres";
export const NATIVE_SINK_NAMES: NativeSinkName[] = ["redis", "postgres"];

export interface SinksBenchOptions {
  /** Timed ingest per server (sinks off, sinks on). */
  ingestSeconds: number;
  /** Untimed ingest before it (JIT, actors, sink connections); with sinks, drained before the clock starts. */
  warmSeconds: number;
  /** Events each direct baseline writes. */
  directEvents: number;
  /** Measured seconds of each latency pass (after `latencyWarmSeconds` not measured). */
  latencySeconds: number;
  latencyWarmSeconds: number;
  /** How long the sinks get to take everything before the drain is reported as it stands. */
  drainTimeoutMs: number;
  /** Also each sink alone, and disk bytes at the same offered rate with sinks on and off. */
  extended?: boolean;
  log: (line: string) => void;
}

export const SINKS_PRESETS = {
  quick: { ingestSeconds: 2, warmSeconds: 0.5, directEvents: 20_000, latencySeconds: 3, latencyWarmSeconds: 1, drainTimeoutMs: 120_000, extended: true },
  full: { ingestSeconds: 5, warmSeconds: 1, directEvents: 60_000, latencySeconds: 10, latencyWarmSeconds: 1, drainTimeoutMs: 120_000, extended: true },
} satisfies Record<string, Omit<SinksBenchOptions, "log">>;

export interface IngestPhase {
  eventsPerS: number;
  accepted: number;
  p99Ms: number;
  bytesWritten: number;
  bytesPerEvent: number;
  /** Seconds from the ingest start to the end of the disk window. */
  diskWindowS: number;
}

export interface Drain {
  expected: number;
  landed: number;
  /** From the ingest start to the poll that saw the last event (or to the timeout). */
  seconds: number;
  eventsPerS: number;
  timedOut: boolean;
}

export interface DirectRate {
  events: number;
  seconds: number;
  eventsPerS: number;
}

export interface SinksBenchResult {
  off: IngestPhase;
  on: IngestPhase;
  drain: Record<SinkName, Drain>;
  /** Each sink's drain with only that sink on (extended runs). */
  alone: Partial<Record<SinkName, Drain>>;
  /** Disk bytes per event at one offered rate, sinks on and off (extended runs). */
  sameRate?: { eventsPerS: number; off: number; on: number };
  /** Batches of 500, four in flight: the drain rows' baselines. */
  direct: Record<SinkName, DirectRate>;
  /** One batch of 500 in flight, as the host's delivery loop sends. */
  directSerial: Record<SinkName, DirectRate>;
  latency: { offeredPerS: number; keyflow: Record<SinkName, number[]>; direct: Record<SinkName, number[]> };
  /** The sinks-on ingest with the native Redis and Postgres clients (the self-hosted server's redis:// and postgres://). */
  native: { on: IngestPhase; drain: Record<NativeSinkName, Drain> };
  /** Where the CPU went during the sinks-on ingest and drain (diagnostic lines). */
  cpu: string[];
}

const SERVICES = [6379, 5432, 8079, 6543, 8082, 9092];
const KEYS = 1000;
const EVENTS_PER_REQUEST = 1000;
const T0 = Date.now() - 3 * 3_600_000;

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.end(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Null when the local services are not running. */
export async function sinksBench(options: SinksBenchOptions): Promise<SinksBenchResult | null> {
  for (const port of SERVICES) if (!(await portOpen(port))) return null;
  const opts = options;
  const { preparePostgres, PG_URL } = await import("../tests/support/postgres.ts");
  const pool = await preparePostgres();
  const redisConn = await RespConnection.open(parseRedisUrl("redis://127.0.0.1:6379"));
  const admin = kafkaClient("keyflow-bench-admin").admin();
  await admin.connect();
  const base = uniqueTopic("bench-sinks");
  const topics: string[] = [];
  const ctx: Ctx = { opts, pool, pgUrl: PG_URL, redisConn, admin, topics };
  try {
    opts.log(`run prefix ${base}; ingest ${opts.ingestSeconds}s per server, 1,000-event NDJSON over ${KEYS} keys, 4 clients`);
    const off = await ingestPhase(ctx, `${base}-off`, []);
    opts.log(`sinks off: ${fmt(off.phase.eventsPerS)} events/s, ${off.phase.bytesPerEvent.toFixed(0)} bytes written/event`);
    const on = await ingestPhase(ctx, `${base}-on`, SINK_NAMES);
    opts.log(`sinks on: ${fmt(on.phase.eventsPerS)} events/s, ${on.phase.bytesPerEvent.toFixed(0)} bytes written/event`);
    const native = await ingestPhase(ctx, `${base}-nat`, SINK_NAMES, "native");
    opts.log(`sinks on, native Redis and Postgres clients: ${fmt(native.phase.eventsPerS)} events/s; drains ${NATIVE_SINK_NAMES.map((s) => `${s} ${fmt(native.drain![s].eventsPerS)}`).join(", ")} events/s`);
    const direct = {} as SinksBenchResult["direct"];
    const directSerial = {} as SinksBenchResult["directSerial"];
    for (const sink of SINK_NAMES) {
      direct[sink] = await directDrain(ctx, `${base}-d${sink[0]}`, sink, opts.directEvents, 4);
      directSerial[sink] = await directDrain(ctx, `${base}-s${sink[0]}`, sink, Math.round(opts.directEvents / 2), 1);
    }
    const alone = {} as SinksBenchResult["alone"];
    if (opts.extended) {
      // Each sink on its own: keyflow's delivery against the same client writing directly, without
      // the other two sinks' services competing for the same two cores.
      for (const sink of SINK_NAMES) alone[sink] = (await ingestPhase(ctx, `${base}-a${sink[0]}`, [sink])).drain![sink];
    }
    const sameRate = opts.extended ? await sameRateDisk(ctx, base, Math.max(5_000, Math.round((on.phase.eventsPerS * 0.8) / 1_000) * 1_000)) : undefined;
    const latency = await latencyPhase(ctx, `${base}-lat`);
    return {
      off: off.phase, on: on.phase, drain: on.drain!, alone, sameRate, direct, directSerial, latency,
      native: { on: native.phase, drain: { redis: native.drain!.redis, postgres: native.drain!.postgres } },
      cpu: [...off.cpu, ...on.cpu, ...native.cpu],
    };
  } finally {
    await cleanUp(ctx, base).catch((error) => opts.log(`clean-up failed: ${(error as Error).message}`));
    redisConn.close();
    await admin.disconnect();
    await pool.end();
  }
}

interface Ctx {
  opts: SinksBenchOptions;
  pool: Pool;
  pgUrl: string;
  redisConn: RespConnection;
  admin: Admin;
  topics: string[];
}

// ------------------------------------------------------------------ ingest, disk, drain

/** 1,000-event NDJSON bodies; each request carries one event for every key, ids unique to the run. */
function ndjsonBodies(run: string) {
  let n = 0;
  return {
    body() {
      const lines: string[] = [];
      for (let i = 0; i < EVENTS_PER_REQUEST; i++, n++) {
        lines.push(
          JSON.stringify({ event_id: `${run}-${n}`, event_type: "purchase", user_id: `${run}-u${n % KEYS}`, timestamp: T0 + Math.floor(n / KEYS), value: n % 100 }),
        );
      }
      return lines.join("\n");
    },
    get sent() {
      return n;
    },
  };
}

/** A measurement over failed requests is no measurement. */
function failOnErrors(name: string, r: LoadResult): void {
  if (r.errors) throw new Error(`${name}: ${r.errors} of ${r.requests} requests failed (${r.firstError ?? JSON.stringify(r.statuses)})`);
}

/** The sink variables of `run` for these sinks only, reached with the `kind` of clients. */
function sinkEnv(run: string, sinkSet: readonly SinkName[], kind: ClientKind = "http"): Record<string, string> {
  const of: Record<SinkName, RegExp> = { redis: /REDIS/, postgres: /POSTGRES|NEON/, kafka: /KAFKA/ };
  return Object.fromEntries(Object.entries(localSinkEnv(run, kind)).filter(([name]) => sinkSet.some((sink) => of[sink].test(name))));
}

async function ingestPhase(
  ctx: Ctx,
  run: string,
  sinkSet: readonly SinkName[],
  kind: ClientKind = "http",
): Promise<{ phase: IngestPhase; drain?: Record<SinkName, Drain>; cpu: string[] }> {
  const { opts } = ctx;
  const sinks = sinkSet.length > 0;
  const label = (!sinks ? "sinks off" : sinkSet.length === SINK_NAMES.length ? "sinks on" : `${sinkSet.join(" + ")} alone`) + (kind === "native" ? " (native clients)" : "");
  if (sinkSet.includes("kafka")) await createTopics(ctx, `${run}.events`, `${run}.windows`);
  const dir = tempDir(sinks ? "bench-sinks-on" : "bench-sinks-off");
  const server = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path, ...sinkEnv(run, sinkSet, kind) }, undefined, false);
  try {
    const pid = serverPid(server);
    const gen = ndjsonBodies(run);
    const load = (seconds: number) =>
      runLoad({ url: `${server.url}/v1/events`, body: gen.body, contentType: "application/x-ndjson", concurrency: 4, seconds });
    failOnErrors(`${label} warm-up`, await load(opts.warmSeconds));
    const counter = sinks ? drainCounter(ctx, run, sinkSet) : undefined;
    if (counter) {
      const warm = await counter.until(gen.sent, performance.now(), opts.drainTimeoutMs, "the warm-up");
      const short = sinkSet.filter((s) => warm[s].timedOut);
      if (short.length) throw new Error(`${label}: the warm-up's ${fmt(gen.sent)} events did not reach ${short.join(", ")}`);
    }
    await diskIdle(pid, opts, `${label}: waiting for the server's disk writes to stop before the timed ingest`);
    const before = readIo(pid);
    const warmSent = gen.sent;
    const cpu0 = cpuTicks(pid);
    const start = performance.now();
    const result = await load(opts.ingestSeconds);
    failOnErrors(label, result);
    const accepted = gen.sent - warmSent;
    if (accepted !== result.requests * EVENTS_PER_REQUEST) throw new Error(`${label}: sent ${accepted} events in ${result.requests} requests`);
    const cpu1 = cpuTicks(pid);
    const ingested = readIo(pid);
    const cpu = [`CPU during the ${label} ingest (${secs(cpu1.at - start)}): ${cpuLine(cpu0, cpu1)}`];
    let drain: Record<SinkName, Drain> | undefined;
    let drained = ingested;
    if (counter) {
      drain = await counter.until(gen.sent, start, opts.drainTimeoutMs, `the ${fmt(accepted)} events of the timed ingest`, warmSent);
      const cpu2 = cpuTicks(pid);
      drained = readIo(pid);
      cpu.push(`CPU during the drain after the ingest (${secs(cpu2.at - cpu1.at)}): ${cpuLine(cpu1, cpu2)}`);
    }
    for (const line of cpu) opts.log(line);
    if (sinks) opts.log(`${label}: ${await sinkHealth(server.url, `${run}-u0`)}`);
    await diskIdle(pid, opts, `${label}: waiting for the server's disk writes to stop (checkpoints, cursor commits)`);
    const after = readIo(pid);
    const bytesWritten = after.write_bytes - before.write_bytes;
    const perEvent = (a: { write_bytes: number }, b: { write_bytes: number }) => `${((b.write_bytes - a.write_bytes) / accepted).toFixed(0)}`;
    opts.log(
      `${label}: disk bytes per event written during the ingest ${perEvent(before, ingested)}${counter ? `, during the drain after it ${perEvent(ingested, drained)}` : ""}, until 2 s idle ${perEvent(drained, after)}` +
        (after.cancelled_write_bytes > before.cancelled_write_bytes ? ` (cancelled: ${perEvent({ write_bytes: before.cancelled_write_bytes }, { write_bytes: after.cancelled_write_bytes })})` : ""),
    );
    if (counter) {
      // The completion check above relies on per-key order (the last event of every key); count them all once.
      if (sinkSet.includes("postgres")) {
        const exact = await counter.exactPostgres();
        if (exact !== gen.sent) opts.log(`postgres holds ${fmt(exact)} of the ${fmt(gen.sent)} events sent (warm-up included)`);
        drain!.postgres.landed = Math.min(drain!.postgres.landed, exact - warmSent);
      }
    }
    return {
      phase: {
        eventsPerS: result.rps * EVENTS_PER_REQUEST,
        accepted,
        p99Ms: percentile(result.latencies, 99),
        bytesWritten,
        bytesPerEvent: bytesWritten / accepted,
        diskWindowS: (performance.now() - start) / 1000,
      },
      drain,
      cpu,
    };
  } finally {
    await server.stop();
    dir.remove();
  }
}

/** Requests of 1,000 events sent at a fixed rate (open loop: a slow answer does not slow the sending). */
async function steadyIngest(url: string, body: () => string, eventsPerS: number, seconds: number): Promise<number> {
  const intervalMs = (1000 * EVENTS_PER_REQUEST) / eventsPerS;
  const start = performance.now();
  const sent: Array<Promise<void>> = [];
  let failures = 0;
  for (let k = 0; k * intervalMs < seconds * 1000; k++) {
    const wait = start + k * intervalMs - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    sent.push(
      fetch(url, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: body() }).then(async (res) => {
        await res.arrayBuffer();
        if (res.status !== 200) failures++;
      }),
    );
  }
  await Promise.all(sent);
  if (failures) throw new Error(`${failures} of ${sent.length} requests failed at ${fmt(eventsPerS)} events/s`);
  return sent.length * EVENTS_PER_REQUEST;
}

/**
 * Disk bytes per event with the sinks on and off at the same offered rate: per second a host
 * checkpoints each busy actor about once whatever the rate, so bytes per event at the two
 * closed-loop rates (which differ several times) mix what the sinks add with how fast events came.
 */
async function sameRateDisk(ctx: Ctx, base: string, eventsPerS: number): Promise<{ eventsPerS: number; off: number; on: number }> {
  const perEvent: Record<"off" | "on", number> = { off: 0, on: 0 };
  for (const mode of ["off", "on"] as const) {
    const run = `${base}-r${mode}`;
    const sinkSet = mode === "on" ? SINK_NAMES : [];
    if (mode === "on") await createTopics(ctx, `${run}.events`, `${run}.windows`);
    const dir = tempDir(`bench-rate-${mode}`);
    const server = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path, ...sinkEnv(run, sinkSet) }, undefined, false);
    try {
      const pid = serverPid(server);
      const gen = ndjsonBodies(run);
      const url = `${server.url}/v1/events`;
      const counter = mode === "on" ? drainCounter(ctx, run) : undefined;
      await steadyIngest(url, gen.body, eventsPerS, ctx.opts.warmSeconds);
      await counter?.until(gen.sent, performance.now(), ctx.opts.drainTimeoutMs, `the same-rate warm-up (${mode})`);
      await diskIdle(pid, ctx.opts, `same rate, sinks ${mode}: waiting for disk writes to stop before the timed ingest`);
      const before = readIo(pid);
      const from = gen.sent;
      const events = await steadyIngest(url, gen.body, eventsPerS, ctx.opts.ingestSeconds);
      await counter?.until(gen.sent, performance.now(), ctx.opts.drainTimeoutMs, `the same-rate ingest (${mode})`, from);
      await diskIdle(pid, ctx.opts, `same rate, sinks ${mode}: waiting for disk writes to stop`);
      perEvent[mode] = (readIo(pid).write_bytes - before.write_bytes) / events;
      ctx.opts.log(`same rate ${fmt(eventsPerS)} events/s, sinks ${mode}: ${perEvent[mode].toFixed(0)} bytes written per event`);
    } finally {
      await server.stop();
      dir.remove();
    }
  }
  return { eventsPerS, ...perEvent };
}

/** The delivery channels' counters as one key's outbox view shows them: failures and breaker trips explain a slow drain. */
async function sinkHealth(url: string, key: string): Promise<string> {
  const res = await fetch(`${url}/v1/actors/${encodeURIComponent(key)}/outbox`);
  const view = (await res.json()) as { sinks?: Array<Record<string, unknown>> };
  return (view.sinks ?? [])
    .map((s) => `${s.sink} ${s.attempts} requests, ${s.transient_failures} transient failures, breaker opened ${s.breaker_opened}x${s.last_error ? ` (last: ${String(s.last_error).slice(0, 80)})` : ""}`)
    .join("; ");
}

/** The pid whose /proc/<pid>/io is read: spawnServer's process must be bun itself, not a wrapper. */
function serverPid(server: ServerProcess): number {
  const pid = server.proc.pid;
  const exe = readlinkSync(`/proc/${pid}/exe`);
  if (!/\bbun(\.exe)?$/.test(exe)) throw new Error(`server pid ${pid} runs ${exe}, not bun: its /proc io would not be the server's`);
  return pid;
}

function readIo(pid: number): { write_bytes: number; cancelled_write_bytes: number } {
  const io: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/io`, "utf8").split("\n")) {
    const [k, v] = line.split(": ");
    if (k && v) io[k] = Number(v);
  }
  if (io.write_bytes === undefined) throw new Error(`/proc/${pid}/io has no write_bytes`);
  return { write_bytes: io.write_bytes, cancelled_write_bytes: io.cancelled_write_bytes ?? 0 };
}

/** Waits until the process's write_bytes stood still for 2 s (checked every 200 ms, at most 30 s). */
async function diskIdle(pid: number, opts: SinksBenchOptions, what: string): Promise<void> {
  const quietMs = 2000;
  const start = performance.now();
  let last = readIo(pid).write_bytes;
  let since = start;
  let told = start;
  while (performance.now() - since < quietMs) {
    await Bun.sleep(200);
    const now = performance.now();
    const bytes = readIo(pid).write_bytes;
    if (bytes !== last) [last, since] = [bytes, now];
    if (now - start > 30_000) {
      opts.log(`${what}: still writing after 30 s, measuring as it stands`);
      return;
    }
    if (now - told > 5000) {
      opts.log(`${what} (${secs(now - start)})`);
      told = now;
    }
  }
}

/**
 * How many of the (actor_key $1[i], event_id $2[i]) pairs processed_events holds: a lookup by key and
 * id, which an index serves whether the table's key is event_id alone or (actor_key, event_id).
 */
const PRESENT = "SELECT count(*) FROM processed_events p JOIN unnest($1::text[], $2::text[]) AS u(k, id) ON p.tenant = 'default' AND p.actor_key = u.k AND p.event_id = u.id";

/** Counts what of a run reached each sink, cheaply enough to poll every 100 ms. */
function drainCounter(ctx: Ctx, run: string, sinks: readonly SinkName[] = SINK_NAMES) {
  const streams = Array.from({ length: KEYS }, (_, k) => `${run}:events:${run}-u${k}`);
  const topic = `${run}.events`;
  const count = {
    redis: async () => {
      const replies = await ctx.redisConn.send(streams.map((s) => ["XLEN", s]));
      return replies.reduce<number>((sum, r) => sum + (typeof r === "number" ? r : 0), 0);
    },
    kafka: async () => (await ctx.admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0),
    // Postgres: a count(*) over a growing run would cost the database more than the sink's writes, so
    // the last event of every key (the final request's 1,000 ids) says when it is done: per-key order
    // puts the rest before them (exactPostgres checks it). Progress: a sample of 1,000 ids.
    postgres: async (sent: number) => {
      const last = Array.from({ length: KEYS }, (_, k) => sent - KEYS + k);
      const sample = Array.from({ length: 1000 }, (_, i) => Math.floor((i * sent) / 1000));
      const keysOf = (ns: number[]) => ns.map((n) => `${run}-u${n % KEYS}`);
      const idsOf = (ns: number[]) => ns.map((n) => `${run}-${n}`);
      const { rows } = await ctx.pool.query(
        `SELECT (${PRESENT})::int AS last, (${PRESENT.replace("$1", "$3").replace("$2", "$4")})::int AS sample`,
        [keysOf(last), idsOf(last), keysOf(sample), idsOf(sample)],
      );
      const row = rows[0] as { last: number; sample: number };
      return row.last === KEYS ? sent : Math.min(sent - 1, Math.round((row.sample / 1000) * sent));
    },
  };
  return {
    /**
     * Polls until every sink holds `total` events, timing each from `start`; progress every 2 s.
     * Rates count the events after `from` (the warm-up's are already there).
     */
    async until(total: number, start: number, timeoutMs: number, what: string, from = 0): Promise<Record<SinkName, Drain>> {
      const result = {} as Record<SinkName, Drain>;
      const landed: Record<SinkName, number> = { redis: 0, postgres: 0, kafka: 0 };
      let told = performance.now();
      // When a sink finishes, where the others stood: the rate of the last one alone.
      let lastFinish: { ms: number; landed: Record<SinkName, number>; sinks: SinkName[] } | undefined;
      ctx.opts.log(`waiting for ${what} to reach ${sinks.join(", ")}`);
      while (sinks.some((s) => !result[s])) {
        const open = sinks.filter((s) => !result[s]);
        await Promise.all(
          open.map(async (sink) => {
            landed[sink] = sink === "postgres" ? await count.postgres(total) : await count[sink]();
            if (landed[sink] >= total) {
              const ms = performance.now() - start;
              result[sink] = { expected: total - from, landed: total - from, seconds: ms / 1000, eventsPerS: ((total - from) * 1000) / ms, timedOut: false };
            }
          }),
        );
        const finished = open.filter((s) => result[s]);
        const left = sinks.filter((s) => !result[s]);
        if (finished.length && left.length) {
          lastFinish = { ms: performance.now() - start, landed: { ...landed }, sinks: sinks.filter((s) => result[s]) };
        } else if (finished.length && lastFinish && open.length === 1) {
          const sink = open[0]!;
          const alone = ((total - lastFinish.landed[sink]) * 1000) / (result[sink].seconds * 1000 - lastFinish.ms);
          const shared = ((lastFinish.landed[sink] - from) * 1000) / lastFinish.ms;
          ctx.opts.log(
            `  ${sink}: ~${fmt(shared)} events/s until ${lastFinish.sinks.join(" and ")} finished at ${secs(lastFinish.ms)}, ~${fmt(alone)} events/s alone after`,
          );
        }
        const now = performance.now();
        if (now - start > timeoutMs) {
          for (const sink of sinks.filter((s) => !result[s])) {
            const got = Math.max(0, landed[sink] - from);
            result[sink] = { expected: total - from, landed: got, seconds: (now - start) / 1000, eventsPerS: (got * 1000) / (now - start), timedOut: true };
          }
          ctx.opts.log(`gave up after ${secs(now - start)}: ${sinks.map((s) => `${s} ${fmt(result[s].landed)} of ${fmt(total - from)}`).join(", ")}`);
          break;
        }
        if (now - told >= 2000) {
          told = now;
          const state = sinks.map((s) =>
            result[s] ? `${s} done at ${secs(result[s].seconds * 1000)}` : `${s} ${s === "postgres" ? "~" : ""}${fmt(Math.max(0, landed[s] - from))}`,
          );
          ctx.opts.log(`  ${secs(now - start)}: ${state.join(", ")} of ${fmt(total - from)}`);
        }
        if (sinks.some((s) => !result[s])) await Bun.sleep(100);
      }
      return result;
    },
    async exactPostgres(): Promise<number> {
      const { rows } = await ctx.pool.query("SELECT count(*)::int AS n FROM processed_events WHERE actor_key LIKE $1", [`${run}-u%`]);
      return (rows[0] as { n: number }).n;
    },
  };
}

// ------------------------------------------------------------------ CPU per process

interface Ticks {
  at: number;
  byLabel: Map<string, number>;
  busy: number;
  total: number;
}

const CLK_TCK = 100;

/** utime + stime of every process, summed by what it is (keyflow, postgres, the fronts, ...), and the machine's busy time. */
function cpuTicks(serverPid: number): Ticks {
  const byLabel = new Map<string, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]);
      if (!ticks) continue;
      const label = processLabel(Number(entry), serverPid, stat, () => readFileSync(`/proc/${entry}/cmdline`, "utf8"));
      byLabel.set(label, (byLabel.get(label) ?? 0) + ticks);
    } catch {
      // gone meanwhile
    }
  }
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { at: performance.now(), byLabel, busy: total - idle, total };
}

function processLabel(pid: number, serverPid: number, stat: string, cmdline: () => string): string {
  if (pid === serverPid) return "keyflow";
  if (pid === process.pid) return "bench client";
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  if (comm.startsWith("postgres")) return "postgres";
  if (comm.startsWith("redis-server")) return "redis";
  const cmd = cmdline();
  if (cmd.includes("upstash-redis.ts")) return "upstash front";
  if (cmd.includes("neon-wsproxy.ts")) return "neon ws proxy";
  if (cmd.includes("kafka-rest.ts") || cmd.includes("kafka-bridge")) return "kafka REST front";
  if (cmd.includes("kafka.Kafka")) return "kafka broker";
  if (cmd.includes("bun test")) return "other: bun test";
  if (comm.startsWith("kworker") || comm.startsWith("kdamond") || comm.startsWith("jbd2")) return "other: kernel";
  return `other: ${comm}`;
}

function cpuLine(a: Ticks, b: Ticks): string {
  const seconds = (b.at - a.at) / 1000;
  const used = [...b.byLabel].map(([label, t]) => [label, (t - (a.byLabel.get(label) ?? 0)) / CLK_TCK / seconds] as const);
  used.sort((x, y) => y[1] - x[1]);
  const cores = readFileSync("/proc/cpuinfo", "utf8").match(/^processor\s*:/gm)?.length ?? 0;
  const busy = ((b.busy - a.busy) / (b.total - a.total)) * cores;
  return `${used.filter(([, c]) => c >= 0.01).map(([l, c]) => `${l} ${c.toFixed(2)}`).join(", ")} (cores busy: ${busy.toFixed(2)} of ${cores})`;
}

// ------------------------------------------------------------------ writing the sinks directly

/** Events as the host's outbox holds them; the direct writers take the same records (tests/support/direct-writes.ts). */
type Rec = EventRecord;
type Writer = DirectWrite;

const directRedisClient = () => new Redis({ ...REDIS_FRONT, retry: false, enableTelemetry: false, enableAutoPipelining: false, readYourWrites: false });

/**
 * One write in flight; what arrives meanwhile goes out together as soon as it lands (up to 500
 * records), as the host's delivery loop sends, without its linger.
 */
function gathering(write: Writer): Writer {
  const queue: Array<{ recs: Rec[]; resolve(): void; reject(error: unknown): void }> = [];
  let busy = false;
  const kick = () => {
    if (busy || !queue.length) return;
    const taken: typeof queue = [];
    let size = 0;
    while (queue.length && (size === 0 || size + queue[0]!.recs.length <= 500)) {
      size += queue[0]!.recs.length;
      taken.push(queue.shift()!);
    }
    busy = true;
    write(taken.flatMap((t) => t.recs)).then(
      () => taken.forEach((t) => t.resolve()),
      (error) => taken.forEach((t) => t.reject(error)),
    ).finally(() => {
      busy = false;
      kick();
    });
  };
  return (recs) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ recs, resolve, reject });
      kick();
    });
}

function records(run: string, from: number, count: number, keys: number, keyName: (k: number) => string): Rec[] {
  const out: Rec[] = [];
  const now = Date.now();
  for (let n = from; n < from + count; n++) {
    out.push({ kind: "event", n, key: keyName(n % keys), id: `${run}-${n}`, type: "purchase", ts: T0 + Math.floor(n / keys), value: n % 100, receivedAt: now, late: false });
  }
  return out;
}

/**
 * Writes `events` rows over 1,000 keys straight to one sink with its client, in batches of 500,
 * `inFlight` at a time. Each writer owns its share of the keys and sends its batches in order, as
 * the host sends one key's records in order.
 */
async function directDrain(ctx: Ctx, run: string, sink: SinkName, events: number, inFlight: number): Promise<DirectRate> {
  const { opts } = ctx;
  let pool: Pool | undefined;
  let write: Writer;
  if (sink === "postgres") write = directPostgres((pool = new Pool({ connectionString: ctx.pgUrl, max: inFlight })));
  else if (sink === "redis") write = directRedis(directRedisClient(), `${run}:`);
  else {
    await createTopics(ctx, `${run}.events`);
    write = directKafka(`${run}.events`);
  }
  const writeAll = async (recs: Rec[]) => {
    const lanes = Array.from({ length: inFlight }, (_, w) => recs.filter((r) => (r.n % KEYS) % inFlight === w));
    await Promise.all(
      lanes.map(async (lane) => {
        for (let i = 0; i < lane.length; i += 500) await write(lane.slice(i, i + 500));
      }),
    );
  };
  try {
    const warm = 4000;
    await writeAll(records(run, 0, warm, KEYS, (k) => `${run}-u${k}`));
    const recs = records(run, warm, events, KEYS, (k) => `${run}-u${k}`);
    const cpu0 = cpuTicks(-1);
    const start = performance.now();
    await writeAll(recs);
    const seconds = (performance.now() - start) / 1000;
    const rate = { events, seconds, eventsPerS: events / seconds };
    opts.log(`direct ${sink}, ${inFlight} batch${inFlight > 1 ? "es" : ""} of 500 in flight: ${fmt(rate.eventsPerS)} events/s (${fmt(events)} events)`);
    opts.log(`  CPU meanwhile (${seconds.toFixed(1)} s): ${cpuLine(cpu0, cpuTicks(-1))}`);
    return rate;
  } finally {
    await pool?.end();
  }
}

// ------------------------------------------------------------------ ingest -> visible latency

const LATENCY_KEYS = 50;
const LATENCY_EVENTS_PER_REQUEST = 10;
const LATENCY_REQUESTS_PER_S = 100;

/** When each event was sent and when each sink first showed it. */
class Visibility {
  readonly sent = new Map<string, number>();
  readonly seen: Record<SinkName, Map<string, number>> = { redis: new Map(), postgres: new Map(), kafka: new Map() };
  /** Ids Postgres has not shown yet, with their keys (the poll asks only for these). */
  readonly pgPending = new Map<string, string>();

  track(id: string, key: string, at: number): void {
    this.sent.set(id, at);
    this.pgPending.set(id, key);
  }

  see(sink: SinkName, id: string, at: number): void {
    if (!this.seen[sink].has(id)) this.seen[sink].set(id, at);
  }

  missing(ids: string[]): Record<SinkName, number> {
    return Object.fromEntries(SINK_NAMES.map((s) => [s, ids.filter((id) => !this.seen[s].has(id)).length])) as Record<SinkName, number>;
  }

  latencies(ids: string[]): Record<SinkName, number[]> {
    return Object.fromEntries(
      SINK_NAMES.map((s) => [s, ids.map((id) => (this.seen[s].get(id) ?? Infinity) - this.sent.get(id)!)]),
    ) as Record<SinkName, number[]>;
  }
}

/**
 * Probes: Redis by XREAD BLOCK on the run's streams (answers the moment an entry lands), Kafka by a
 * consumer (each message's arrival time, by its event_id header), Postgres by asking every 2 ms
 * which pending ids are in processed_events (the error is the poll interval plus a round trip).
 */
async function startProbes(ctx: Ctx, run: string, vis: Visibility, streams: string[], topics: string[]) {
  let stopped = false;
  const redisConn = await RespConnection.open(parseRedisUrl("redis://127.0.0.1:6379"));
  const lastIds = streams.map(() => "0-0");
  const text = (r: Reply) => (r instanceof Uint8Array ? Buffer.from(r).toString("utf8") : String(r));
  const redisLoop = (async () => {
    while (!stopped) {
      const [reply] = await redisConn.send([["XREAD", "COUNT", "10000", "BLOCK", "100", "STREAMS", ...streams, ...lastIds]]);
      const at = performance.now();
      if (reply instanceof RespError) throw new Error(`XREAD: ${reply.message}`);
      if (!Array.isArray(reply)) continue;
      for (const stream of reply as Reply[][]) {
        const index = streams.indexOf(text(stream[0]!));
        for (const entry of stream[1] as Reply[][]) {
          lastIds[index] = text(entry[0]!);
          const fields = entry[1] as Reply[];
          for (let f = 0; f < fields.length; f += 2) if (text(fields[f]!) === "event_id") vis.see("redis", text(fields[f + 1]!), at);
        }
      }
    }
  })().catch((error) => ctx.opts.log(`the Redis probe failed: ${(error as Error).message}`));
  const pgLoop = (async () => {
    while (!stopped) {
      if (vis.pgPending.size) {
        const pending = [...vis.pgPending].slice(0, 2000);
        const { rows } = await ctx.pool.query(PRESENT.replace("count(*)", "p.event_id"), [pending.map(([, key]) => key), pending.map(([id]) => id)]);
        const at = performance.now();
        for (const { event_id } of rows as Array<{ event_id: string }>) {
          vis.see("postgres", event_id, at);
          vis.pgPending.delete(event_id);
        }
      }
      await Bun.sleep(2);
    }
  })().catch((error) => ctx.opts.log(`the Postgres probe failed: ${(error as Error).message}`));
  const consumer: Consumer = kafkaClient("keyflow-bench-probe").consumer({ groupId: `${run}-probe`, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1000 });
  await consumer.connect();
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.subscribe({ topics, fromBeginning: true });
  // No offset commits: kafkajs would commit after every batch, before its next fetch (+15 ms here).
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const at = performance.now();
      for (const message of batch.messages) {
        const id = message.headers?.event_id;
        if (id) vis.see("kafka", id.toString(), at);
      }
    },
  });
  await joined;
  await Bun.sleep(500); // partitions assigned, first fetches in flight
  return {
    async stop() {
      stopped = true;
      await Promise.all([redisLoop, pgLoop]);
      redisConn.close();
      await consumer.disconnect();
    },
  };
}

/**
 * Open loop: request i goes out at start + i x 10 ms whether or not earlier ones were answered.
 * Returns the ids sent after the warm-up (the measured ones).
 */
async function openLoop(
  run: string,
  vis: Visibility,
  warmSeconds: number,
  seconds: number,
  send: (batch: Rec[]) => Promise<void>,
): Promise<string[]> {
  const measured: string[] = [];
  const inFlight: Promise<void>[] = [];
  let firstError: unknown;
  const interval = 1000 / LATENCY_REQUESTS_PER_S;
  const total = Math.round((warmSeconds + seconds) * LATENCY_REQUESTS_PER_S);
  const warmRequests = Math.round(warmSeconds * LATENCY_REQUESTS_PER_S);
  const start = performance.now();
  for (let i = 0; i < total && firstError === undefined; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    const batch = records(run, i * LATENCY_EVENTS_PER_REQUEST, LATENCY_EVENTS_PER_REQUEST, LATENCY_KEYS, (k) => `${run}-k${k}`);
    const at = performance.now();
    if (i >= warmRequests) {
      for (const r of batch) {
        vis.track(r.id, r.key, at);
        measured.push(r.id);
      }
    }
    inFlight.push(send(batch).catch((error) => void (firstError ??= error)));
  }
  await Promise.all(inFlight);
  if (firstError !== undefined) throw firstError instanceof Error ? firstError : new Error(String(firstError));
  return measured;
}

async function waitVisible(ctx: Ctx, vis: Visibility, ids: string[], what: string): Promise<void> {
  const start = performance.now();
  for (;;) {
    const missing = vis.missing(ids);
    if (SINK_NAMES.every((s) => missing[s] === 0)) return;
    if (performance.now() - start > 15_000) {
      ctx.opts.log(`${what}: not visible after 15 s: ${SINK_NAMES.map((s) => `${s} ${missing[s]}`).join(", ")} of ${ids.length} (counted as infinite latency)`);
      return;
    }
    await Bun.sleep(50);
  }
}

async function latencyPhase(ctx: Ctx, run: string): Promise<SinksBenchResult["latency"]> {
  const { opts } = ctx;
  const directRun = `${run}-d`;
  await createTopics(ctx, `${run}.events`, `${run}.windows`, `${directRun}.events`);
  const streams = [run, directRun].flatMap((r) => Array.from({ length: LATENCY_KEYS }, (_, k) => `${r}:events:${r}-k${k}`));
  const vis = new Visibility();
  const probes = await startProbes(ctx, run, vis, streams, [`${run}.events`, `${directRun}.events`]);
  try {
    const rate = LATENCY_REQUESTS_PER_S * LATENCY_EVENTS_PER_REQUEST;
    opts.log(`latency: ${fmt(rate)} events/s offered (${LATENCY_REQUESTS_PER_S} requests/s of ${LATENCY_EVENTS_PER_REQUEST} over ${LATENCY_KEYS} keys), ${opts.latencyWarmSeconds}s warm-up + ${opts.latencySeconds}s, through keyflow`);
    const dir = tempDir("bench-sinks-latency");
    const server = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path, ...localSinkEnv(run) }, undefined, false);
    let keyflowIds: string[];
    try {
      const url = `${server.url}/v1/events`;
      keyflowIds = await openLoop(run, vis, opts.latencyWarmSeconds, opts.latencySeconds, async (batch) => {
        const body = batch.map((r) => JSON.stringify({ event_id: r.id, event_type: r.type, user_id: r.key, timestamp: r.ts, value: r.value })).join("\n");
        const res = await fetch(url, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body });
        await res.arrayBuffer();
        if (res.status >= 300) throw new Error(`latency: keyflow answered ${res.status}`);
      });
      await waitVisible(ctx, vis, keyflowIds, "keyflow");
    } finally {
      await server.stop();
      dir.remove();
    }
    opts.log(`latency: the same schedule written straight to the three sinks (one write in flight per sink, the next takes all that gathered meanwhile)`);
    const writers: Record<SinkName, Writer> = {
      redis: gathering(directRedis(directRedisClient(), `${directRun}:`)),
      postgres: gathering(directPostgres(ctx.pool)),
      kafka: gathering(directKafka(`${directRun}.events`)),
    };
    // When each write was acknowledged: visible minus acknowledged is what the probes add.
    const acked: Record<SinkName, number[]> = { redis: [], postgres: [], kafka: [] };
    const directIds = await openLoop(directRun, vis, opts.latencyWarmSeconds, opts.latencySeconds, (batch) => {
      const at = performance.now();
      return Promise.all(SINK_NAMES.map((s) => writers[s](batch).then(() => void acked[s].push(performance.now() - at)))).then(() => undefined);
    });
    await waitVisible(ctx, vis, directIds, "direct");
    const warm = opts.latencyWarmSeconds * LATENCY_REQUESTS_PER_S;
    opts.log(
      `direct writes acknowledged after (p50/p99): ${SINK_NAMES.map((s) => `${s} ${percentile(acked[s].slice(warm), 50).toFixed(1)}/${percentile(acked[s].slice(warm), 99).toFixed(1)} ms`).join(", ")}`,
    );
    return { offeredPerS: rate, keyflow: vis.latencies(keyflowIds), direct: vis.latencies(directIds) };
  } finally {
    await probes.stop();
  }
}

// ------------------------------------------------------------------ topics, clean-up

async function createTopics(ctx: Ctx, ...names: string[]): Promise<void> {
  await ctx.admin.createTopics({ topics: names.map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })), waitForLeaders: true });
  ctx.topics.push(...names);
}

/** Removes what the run wrote: its Postgres rows, Redis keys and Kafka topics. */
async function cleanUp(ctx: Ctx, base: string): Promise<void> {
  const start = performance.now();
  const like = `${base}%`;
  for (const table of ["raw_events", "processed_events", "window_aggregates"]) {
    await ctx.pool.query(`DELETE FROM ${table} WHERE actor_key LIKE $1`, [like]);
  }
  let cursor = "0";
  let keys = 0;
  do {
    const [reply] = await ctx.redisConn.send([["SCAN", cursor, "MATCH", `${base}*`, "COUNT", "1000"]]);
    const [next, found] = reply as [Uint8Array, Uint8Array[]];
    cursor = Buffer.from(next).toString();
    if (found.length) await ctx.redisConn.send([["UNLINK", ...found.map((k) => Buffer.from(k).toString())]]);
    keys += found.length;
  } while (cursor !== "0");
  await ctx.admin.deleteTopics({ topics: ctx.topics }).catch(() => undefined);
  ctx.opts.log(`removed the run's rows, ${fmt(keys)} Redis keys and ${ctx.topics.length} topics (${secs(performance.now() - start)})`);
}

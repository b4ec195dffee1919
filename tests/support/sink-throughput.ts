/**
 * Records/s of each sink's deliver() against the local services (npm run services), next to the same
 * client writing the same rows directly, in the same run:
 *
 *   bun tests/support/sink-throughput.ts [--base DIR] [--sinks postgres,redis,kafka] [--events N] [--repeat R] [--json]
 *
 * Synthetic event records over 1,000 keys, batches of 500 and 2,000, 1 and 4 batches in flight (each
 * in-flight batch has keys of its own, as the host sends them). `--base DIR` also measures the sinks
 * of another keyflow tree (e.g. `git archive HEAD src | tar -x -C DIR` with node_modules linked) in
 * the same run, so a change is measured against what it replaces. Every measurement writes fresh keys
 * (Postgres: in schemas of its own, dropped at the end; Redis streams and Kafka topics removed too).
 *
 *   direct = the same client, the simplest code that writes the same rows (tests/support/direct-writes.ts).
 */
import { neonConfig, Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import type { EventRecord, OutboxRecord } from "../../src/actor/outbox.ts";
import type { Sink } from "../../src/delivery/sink.ts";
import { directKafka, directPostgres, directRedis } from "./direct-writes.ts";
import { BRIDGE_URL, kafkaClient } from "./kafka.ts";
import { PG_URL, WSPROXY } from "./postgres.ts";
import { REDIS_FRONT } from "./sink-env.ts";
import { ROOT } from "./process.ts";

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const SINKS = (flag("sinks") ?? "postgres,redis,kafka").split(",");
const EVENTS = Number(flag("events") ?? 40_000);
const REPEAT = Number(flag("repeat") ?? 3);
const BASE = flag("base");
const KEYS = 1_000;
const CONFIGS = [
  { batch: 500, inFlight: 1 },
  { batch: 500, inFlight: 4 },
  { batch: 2_000, inFlight: 1 },
  { batch: 2_000, inFlight: 4 },
];
const run = `tp${Date.now().toString(36)}`;
const T0 = Date.now() - 3_600_000;

neonConfig.wsProxy = (host, port) => `${WSPROXY}?address=${host}:${port}`;
neonConfig.useSecureWebSocket = false;
neonConfig.pipelineConnect = false;

/** A connection string whose sessions use `schema` (the sinks name their tables without one). */
const pgUrlIn = (schema: string) => `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
const SCHEMAS = { base: `${run}_base`, current: `${run}_current`, direct: `${run}_direct` };

interface Writer {
  deliver(records: OutboxRecord[]): Promise<void>;
  close(): Promise<void>;
}

/** records per lane: lane j takes keys j, j + inFlight, …; each key's n counts up, as an outbox does. */
function workload(tag: string, batch: number, inFlight: number, events: number): OutboxRecord[][][] {
  const lanes: OutboxRecord[][][] = [];
  const perLane = Math.ceil(events / inFlight);
  for (let l = 0; l < inFlight; l++) {
    const keys = Array.from({ length: KEYS / inFlight }, (_, i) => `${tag}-k${l + i * inFlight}`);
    const next = new Map<string, number>();
    const records: EventRecord[] = [];
    for (let i = 0; i < perLane; i++) {
      const key = keys[i % keys.length]!;
      const n = next.get(key) ?? 0;
      next.set(key, n + 1);
      records.push({
        kind: "event", n, key, id: `${tag}-e${l}-${i}`, type: i % 3 ? "purchase" : "refund", ts: T0 + i * 10,
        value: (i % 1000) / 10, properties: { amount: (i % 1000) / 10, product: "Widget" }, receivedAt: T0 + i * 10 + 5, late: false,
      });
    }
    const batches: OutboxRecord[][] = [];
    for (let i = 0; i < records.length; i += batch) batches.push(records.slice(i, i + batch));
    lanes.push(batches);
  }
  return lanes;
}

async function sinkModule(root: string, sink: string): Promise<any> {
  return import(`${root}/src/sinks/${sink}/sink.ts`);
}

/** A sink of the tree at `root` (this one, or --base), writing names of its own. */
async function sinkWriter(root: string, sink: string, tag: string, schema: string): Promise<Writer> {
  const mod = await sinkModule(root, sink);
  let s: Sink;
  if (sink === "postgres") {
    s = new mod.PostgresSink({ url: pgUrlIn(schema), wsProxy: WSPROXY, wsProxyTls: false, poolPerDelivery: false, timeoutMs: 30_000 });
  } else if (sink === "redis") {
    s = new mod.RedisSink({ url: REDIS_FRONT.url, token: REDIS_FRONT.token, prefix: `${tag}:`, ttlSeconds: 604_800, streamMaxLen: 10_000 });
  } else {
    s = new mod.KafkaSink({ dialect: "v2", url: BRIDGE_URL, topic: `${tag}.events`, windowsTopic: `${tag}.windows`, headers: true, timeoutMs: 30_000 });
  }
  return { deliver: (r) => s.deliver(r), close: async () => void (await s.close?.()) };
}

/** The same client writing the same rows with the simplest code (tests/support/direct-writes.ts). */
function directWriter(sink: string, tag: string): Writer {
  if (sink === "postgres") {
    const pool = new Pool({ connectionString: pgUrlIn(SCHEMAS.direct), max: 8 });
    pool.on("error", () => undefined);
    const write = directPostgres(pool);
    return { deliver: (records) => write(records as EventRecord[]), close: () => pool.end() };
  }
  const write =
    sink === "redis"
      ? directRedis(new Redis({ ...REDIS_FRONT, enableTelemetry: false, retry: false, enableAutoPipelining: false, readYourWrites: false }), `${tag}:`)
      : directKafka(`${tag}.events`);
  return { deliver: (records) => write(records as EventRecord[]), close: async () => undefined };
}

async function measure(writer: Writer, lanes: OutboxRecord[][][]): Promise<number> {
  const total = lanes.reduce((n, l) => n + l.reduce((m, b) => m + b.length, 0), 0);
  const t0 = performance.now();
  await Promise.all(lanes.map(async (batches) => { for (const b of batches) await writer.deliver(b); }));
  return total / ((performance.now() - t0) / 1000);
}

async function warm(writer: Writer, tag: string): Promise<void> {
  const [batch] = workload(`${tag}w`, 200, 1, 200)[0]!;
  for (let attempt = 0; ; attempt++) {
    try {
      return await writer.deliver(batch!);
    } catch (error) {
      if (attempt >= 20) throw error; // a new Kafka topic may need a moment for its leaders
      await Bun.sleep(250);
    }
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

const admin = new Pool({ connectionString: PG_URL, max: 1 });
admin.on("error", () => undefined);
const impls: Array<{ name: string; root?: string; schema: string }> = [
  ...(BASE ? [{ name: "base", root: BASE, schema: SCHEMAS.base }] : []),
  { name: "current", root: ROOT.replace(/\/$/, ""), schema: SCHEMAS.current },
  { name: "direct", schema: SCHEMAS.direct },
];
const redisKeys: string[] = [];
const topics: string[] = [];
const results: Array<Record<string, unknown>> = [];
try {
  if (SINKS.includes("postgres")) {
    for (const impl of impls) {
      await admin.query(`CREATE SCHEMA ${impl.schema}`);
      const mod = await sinkModule(impl.root ?? ROOT.replace(/\/$/, ""), "postgres");
      const migrator = new mod.PostgresSink({ url: pgUrlIn(impl.schema), wsProxy: WSPROXY, wsProxyTls: false, poolPerDelivery: false, timeoutMs: 30_000 });
      await migrator.migrate();
      await migrator.close();
    }
  }
  for (const sink of SINKS) {
    for (const { batch, inFlight } of CONFIGS) {
      const rates: Record<string, number[]> = Object.fromEntries(impls.map((i) => [i.name, []]));
      for (let rep = 0; rep < REPEAT; rep++) {
        for (const impl of impls) {
          const tag = `${run}-${sink.slice(0, 2)}-${impl.name}-${batch}x${inFlight}-${rep}`;
          const writer = impl.root ? await sinkWriter(impl.root, sink, tag, impl.schema) : directWriter(sink, tag);
          if (sink === "kafka") topics.push(`${tag}.events`, `${tag}w.events`);
          await warm(writer, tag);
          const lanes = workload(tag, batch, inFlight, EVENTS);
          if (sink === "redis") {
            for (const lane of [...lanes, ...workload(`${tag}w`, 200, 1, 200)]) for (const b of lane) for (const r of b) redisKeys.push(`${tag}:events:${r.key}`);
          }
          Bun.gc(true);
          rates[impl.name]!.push(await measure(writer, lanes));
          await writer.close();
        }
      }
      const row: Record<string, unknown> = { sink, batch, inFlight };
      for (const impl of impls) row[impl.name] = Math.round(median(rates[impl.name]!));
      row.currentVsDirect = Number(((row.current as number) / (row.direct as number)).toFixed(2));
      if (BASE) row.currentVsBase = Number(((row.current as number) / (row.base as number)).toFixed(2));
      results.push(row);
      if (!args.includes("--json")) {
        console.log(
          `${sink.padEnd(8)} batch ${String(batch).padStart(5)} x${inFlight} in flight: ` +
            impls.map((i) => `${i.name} ${fmt(row[i.name] as number)}/s`).join(", ") +
            `  (current/direct ${row.currentVsDirect}${BASE ? `, current/base ${row.currentVsBase}` : ""}; runs: ` +
            impls.map((i) => rates[i.name]!.map(fmt).join(" ")).join(" | ") + ")",
        );
      }
    }
  }
  if (args.includes("--json")) console.log(JSON.stringify({ events: EVENTS, repeat: REPEAT, results }, null, 2));
} finally {
  if (SINKS.includes("postgres")) for (const impl of impls) await admin.query(`DROP SCHEMA IF EXISTS ${impl.schema} CASCADE`).catch(() => undefined);
  await admin.end();
  const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });
  const unique = [...new Set(redisKeys)];
  for (let i = 0; i < unique.length; i += 1000) await redis.del(...unique.slice(i, i + 1000));
  if (topics.length) {
    const kafka = kafkaClient("keyflow-throughput-admin").admin();
    await kafka.connect();
    const existing = new Set(await kafka.listTopics());
    // (The shared bridge's producer may auto-create them again, empty, when it refreshes its metadata.)
    const ours = topics.filter((t) => existing.has(t));
    for (let i = 0; i < ours.length; i += 20) {
      await kafka.deleteTopics({ topics: ours.slice(i, i + 20), timeout: 30_000 }).catch((e) => console.error(`deleting topics: ${e.message}`));
    }
    await kafka.disconnect();
  }
}

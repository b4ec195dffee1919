// `keyflow backfill` throughput: a generated NDJSON file into a local Bun host, next to the same host
// fed the same events as pre-built 1,000-event NDJSON bodies at full speed (what the batch path
// can take with no file reading, batching or bookkeeping on the client). Each side gets a fresh
// host, so both store every event as new.
//   bun scripts/bench-backfill.ts --events 1000000      # memory and durable SQLite storage
import { createWriteStream, readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { parseArgs } from "node:util";
import { backfill, parseBackfillArgs, type BackfillOptions, type Summary } from "../src/cli/backfill/index.ts";
import { BUN_SERVER, spawnServer, tempDir, type ServerProcess } from "../tests/support/targets.ts";
import type { Row } from "./bench-sections.ts";

const T0 = Date.now() - 3 * 3_600_000;
const BATCH = 1_000;
const CONCURRENCY = 4;

export type Storage = "memory" | "sqlite";

export interface BackfillBenchResult {
  storage: Storage;
  events: number;
  /** End to end: file on disk -> every event acknowledged. */
  backfillPerS: number;
  /** Pre-built bodies posted at full speed to a fresh host of the same storage. */
  prebuiltPerS: number;
  /** The host's CPU time over the backfill's wall time (1.0 = one core busy all along). */
  serverCpuShare: number;
  /** The same for the backfill itself (this process). */
  clientCpuShare: number;
}

/** Writes `events` events (1,000 keys) as NDJSON; returns the path. */
async function writeEvents(dir: string, events: number): Promise<string> {
  const path = join(dir, "events.ndjson");
  const out = createWriteStream(path);
  for (let start = 0; start < events; start += 10_000) {
    let chunk = "";
    for (let n = start; n < Math.min(events, start + 10_000); n++) {
      chunk += `${JSON.stringify({ event_id: `bf${n}`, event_type: "purchase", user_id: `u${n % 1000}`, timestamp: T0 + Math.floor(n / 100), value: n % 100, properties: { sku: `s${n % 50}` } })}\n`;
    }
    if (!out.write(chunk)) await new Promise((resolve) => out.once("drain", resolve));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return path;
}

/** utime + stime of a process, in seconds (Linux /proc; clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function withHost<T>(storage: Storage, run: (host: ServerProcess) => Promise<T>): Promise<T> {
  const dir = tempDir("bench-backfill-host");
  const host = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: dir.path, KEYFLOW_STORAGE: storage, KEYFLOW_LOG_LEVEL: "warn" });
  try {
    return await run(host);
  } finally {
    await host.stop();
    dir.remove();
  }
}

function prebuiltBodies(path: string): string[] {
  const lines = readFileSync(path, "utf8").split("\n");
  lines.pop();
  const bodies: string[] = [];
  for (let i = 0; i < lines.length; i += BATCH) bodies.push(lines.slice(i, i + BATCH).join("\n"));
  return bodies;
}

async function postPrebuilt(url: string, bodies: string[]): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < bodies.length) {
        const res = await fetch(`${url}/v1/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: bodies[next++]! });
        const answer = (await res.json()) as { rejected?: unknown[] };
        if (res.status !== 200 || answer.rejected?.length) throw new Error(`pre-built batch: HTTP ${res.status} ${JSON.stringify(answer).slice(0, 200)}`);
      }
    }),
  );
  return performance.now() - start;
}

async function runBackfillOnce(url: string, path: string): Promise<Summary> {
  const options = parseBackfillArgs([path, "--url", url, "--no-progress", "--batch-size", String(BATCH), "--concurrency", String(CONCURRENCY), "--restart", "--checkpoint", `${path}.cp`], {}) as BackfillOptions;
  let summary: Summary | undefined;
  const sink = new PassThrough().resume();
  const code = await backfill(options, { stdout: sink, stderr: sink, stdin: Readable.from([]), onSummary: (s) => (summary = s) });
  if (code !== 0 || !summary) throw new Error(`backfill exited ${code}: ${JSON.stringify(summary)?.slice(0, 500)}`);
  return summary;
}

export async function backfillBench(events: number, storages: Storage[] = ["memory", "sqlite"], log: (line: string) => void = () => {}): Promise<BackfillBenchResult[]> {
  const dir = tempDir("bench-backfill");
  try {
    const path = await writeEvents(dir.path, events);
    const results: BackfillBenchResult[] = [];
    for (const storage of storages) {
      // Built per storage and dropped before the backfill runs, so that its garbage is not the backfill's.
      // The backfill first: a host's removed data dir leaves disk writeback that would slow the next one's fsyncs.
      const { summary, cpu, clientCpu } = await withHost(storage, async (host) => {
        const before = cpuSeconds(host.proc.pid);
        const own = process.cpuUsage();
        const summary = await runBackfillOnce(host.url, path);
        const used = process.cpuUsage(own);
        return { summary, cpu: cpuSeconds(host.proc.pid) - before, clientCpu: (used.user + used.system) / 1e6 };
      });
      const prebuiltMs = await withHost(storage, (host) => postPrebuilt(host.url, prebuiltBodies(path)));
      Bun.gc(true);
      if (summary.accepted !== events) throw new Error(`backfill accepted ${summary.accepted} of ${events}`);
      const result = {
        storage, events, backfillPerS: (events * 1000) / summary.elapsed_ms, prebuiltPerS: (events * 1000) / prebuiltMs, serverCpuShare: cpu / (summary.elapsed_ms / 1000),
        clientCpuShare: clientCpu / (summary.elapsed_ms / 1000),
      };
      log(`${storage}: backfill ${Math.round(result.backfillPerS).toLocaleString("en-US")} events/s, pre-built bodies ${Math.round(result.prebuiltPerS).toLocaleString("en-US")} events/s, ratio ${(result.backfillPerS / result.prebuiltPerS).toFixed(2)}, CPU of one core: host ${(result.serverCpuShare * 100).toFixed(0)}%, backfill ${(result.clientCpuShare * 100).toFixed(0)}%`);
      results.push(result);
    }
    return results;
  } finally {
    dir.remove();
  }
}

/** The bench section: rows `backfill.memory` and `backfill.durable`, each against pre-built bodies to the same storage. */
export async function backfillSection(events: number): Promise<Row[]> {
  const results = await backfillBench(events);
  return results.map((r) => ({
    id: r.storage === "memory" ? "backfill.memory" : "backfill.durable",
    section: "backfill",
    metric: `keyflow backfill, ${r.storage === "memory" ? "storage in memory" : "durable SQLite"}: events/s`,
    value: r.backfillPerS,
    unit: "events/s",
    baseline: { name: "pre-built 1,000-event bodies", value: r.prebuiltPerS },
    target: ">= 150,000",
    note: `${r.events} events from an NDJSON file, batches of ${BATCH}, ${CONCURRENCY} in flight; CPU of one core during the backfill: host ${(r.serverCpuShare * 100).toFixed(0)}%, backfill ${(r.clientCpuShare * 100).toFixed(0)}%`,
  }));
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { events: { type: "string", default: "1000000" }, storage: { type: "string" } } });
  const events = Number(values.events);
  const storages = (values.storage?.split(",") ?? ["memory", "sqlite"]) as Storage[];
  console.log(`keyflow backfill: ${events.toLocaleString("en-US")} events, NDJSON file -> local Bun host (batches of ${BATCH}, ${CONCURRENCY} in flight)`);
  await backfillBench(events, storages, (line) => console.log(`  ${line}`));
}

// Issue 14's scale target: 1,000,000 distinct keys on one self-hosted Bun server (durable SQLite in a
// temp dir) within 2 GiB RSS, evicted actors reloading on demand. Events go in as NDJSON batches of
// 1,000, several in flight; a sample of keys is read back (most of them evicted by then) and must show
// exactly its one event. Peak RSS is the server's own VmHWM (Linux /proc). No baseline: it is a bound.
//   bun scripts/bench-keys.ts [keys] [maxActorsInMemory]    # standalone; `bun run bench --only keys` too
import { readFileSync } from "node:fs";
import { DEFAULT_CONFIG } from "../src/settings/config.ts";
import { BUN_SERVER, spawnServer, tempDir } from "../tests/support/targets.ts";
import type { Row } from "./bench-sections.ts";

const BATCH = 1_000;
const IN_FLIGHT = 4;
const SAMPLE = 1_000;
/** KEYFLOW_MAX_ACTORS_IN_MEMORY's default. */
export const DEFAULT_MAX_ACTORS = DEFAULT_CONFIG.maxActorsInMemory;

export interface KeysRun {
  keys: number;
  maxActorsInMemory: number;
  /** The server's peak resident set (VmHWM), in bytes. */
  peakRssBytes: number;
  /** Its resident set at the end (VmRSS), after the reads. */
  endRssBytes: number;
  /** Its resident set just after start, before any event. */
  startRssBytes: number;
  ingestSeconds: number;
  readSeconds: number;
  actorsInMemory: number;
}

/** Sends one event to each of `keys` keys, reads a sample back, and reports the server's memory. */
export async function runKeys(keys: number, maxActorsInMemory = DEFAULT_MAX_ACTORS): Promise<KeysRun> {
  const dir = tempDir("bench-keys");
  const server = await spawnServer(BUN_SERVER, {
    PORT: "0",
    KEYFLOW_DATA_DIR: dir.path,
    KEYFLOW_LOG_LEVEL: "warn",
    KEYFLOW_MAX_ACTORS_IN_MEMORY: String(maxActorsInMemory),
  });
  try {
    const pid = server.proc.pid;
    const startRssBytes = procStatus(pid, "VmRSS");
    const t0 = Date.now() - 3_600_000;
    const event = (n: number) => JSON.stringify({ event_id: `k${n}`, event_type: n % 3 ? "page_view" : "purchase", user_id: `user-${n}`, timestamp: t0 + (n % 3_000_000), value: n % 100 });
    let next = 0;
    const started = performance.now();
    const worker = async () => {
      while (next < keys) {
        const from = next;
        next = Math.min(keys, next + BATCH);
        const lines: string[] = [];
        for (let n = from; n < next; n++) lines.push(event(n));
        const res = await fetch(`${server.url}/v1/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: lines.join("\n") });
        const text = await res.text();
        if (res.status >= 300) throw new Error(`batch at ${from}: HTTP ${res.status} ${text.slice(0, 300)}`);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const ingestSeconds = (performance.now() - started) / 1000;

    // Keys spread over the whole range: all but the last maxActorsInMemory were evicted and reload here.
    const readStarted = performance.now();
    for (let i = 0; i < SAMPLE; i++) {
      const n = Math.floor((i * keys) / SAMPLE);
      const res = await fetch(`${server.url}/v1/actors/${encodeURIComponent(`user-${n}`)}`);
      const body = (await res.json()) as { totals?: { events: number; by_type: Record<string, number> }; dedupe_ids?: number };
      const type = n % 3 ? "page_view" : "purchase";
      if (res.status !== 200 || body.totals?.events !== 1 || body.totals.by_type[type] !== 1 || body.dedupe_ids !== 1) {
        throw new Error(`key user-${n} read back wrong: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      }
    }
    const readSeconds = (performance.now() - readStarted) / 1000;
    const health = (await (await fetch(`${server.url}/health`)).json()) as { runtime?: { actors_in_memory?: number } };
    const actorsInMemory = health.runtime?.actors_in_memory ?? -1;
    return {
      keys, maxActorsInMemory, startRssBytes, ingestSeconds, readSeconds, actorsInMemory,
      peakRssBytes: procStatus(pid, "VmHWM"),
      endRssBytes: procStatus(pid, "VmRSS"),
    };
  } finally {
    await server.stop();
    dir.remove();
  }
}

/** A memory figure of a live process from /proc/<pid>/status, in bytes. */
function procStatus(pid: number, field: "VmHWM" | "VmRSS"): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(line.split(/\s+/)[1]) * 1024;
}

/** The `keys` section: `keys` keys at the default bound of actors in memory, and with all of them in memory. */
export async function keysSection(keys: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const max of [DEFAULT_MAX_ACTORS, keys]) {
    const r = await runKeys(keys, max);
    const label = max === keys ? "all in memory" : `${max.toLocaleString("en-US")} in memory (default)`;
    const id = max === keys ? "keys.all_in_memory" : "keys.default";
    rows.push(
      { id: `${id}.peak_rss`, section: "keys", metric: `${keys.toLocaleString("en-US")} keys, ${label}: peak RSS`, value: r.peakRssBytes / 2 ** 20, unit: "MiB", target: "<= 2,048 MiB" },
      { id: `${id}.per_key`, section: "keys", metric: `${keys.toLocaleString("en-US")} keys, ${label}: peak RSS over start, per key`, value: (r.peakRssBytes - r.startRssBytes) / keys, unit: "bytes" },
      { id: `${id}.ingest_s`, section: "keys", metric: `${keys.toLocaleString("en-US")} keys, ${label}: ingest time`, value: r.ingestSeconds, unit: "s", note: `${Math.round(keys / r.ingestSeconds).toLocaleString("en-US")} keys/s; ${SAMPLE} keys read back in ${r.readSeconds.toFixed(1)} s` },
    );
  }
  return rows;
}

if (import.meta.main) {
  const keys = Number(process.argv[2] ?? 1_000_000);
  const max = Number(process.argv[3] ?? DEFAULT_MAX_ACTORS);
  const r = await runKeys(keys, max);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `${keys.toLocaleString("en-US")} keys, max ${max.toLocaleString("en-US")} actors in memory: peak RSS ${mib(r.peakRssBytes)} (start ${mib(r.startRssBytes)}, end ${mib(r.endRssBytes)}, ` +
      `${((r.peakRssBytes - r.startRssBytes) / keys).toFixed(0)} bytes/key over start), ingest ${r.ingestSeconds.toFixed(1)} s ` +
      `(${Math.round(keys / r.ingestSeconds).toLocaleString("en-US")} keys/s), ${SAMPLE} keys read back in ${r.readSeconds.toFixed(1)} s, ${r.actorsInMemory} actors in memory at the end`,
  );
}

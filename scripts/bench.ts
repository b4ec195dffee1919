// keyflow benchmark: durable ingest throughput of the core, the runtime on SQLite, and the HTTP
// server, each next to a baseline measured in the same run (this machine is noisy: read the ratios).
// Usage: bun run bench [--events N] [--keys K] [--batch B] [--seconds S]
import { Database } from "bun:sqlite";
import { parseArgs } from "node:util";
import { openBunSqlite } from "../src/adapter/bun/sqlite.ts";
import { Actor } from "../src/core/actor.ts";
import { DEFAULT_CONFIG } from "../src/core/config.ts";
import { normalizeEvent, type Event } from "../src/core/event.ts";
import { LocalRuntime } from "../src/core/runtime.ts";
import { MemoryKvStore, type KvStore } from "../src/core/storage.ts";
import { systemEnv, systemTimers } from "../src/host/system.ts";
import { spawnServer, BUN_SERVER, tempDir } from "../tests/support/targets.ts";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "200000" },
    keys: { type: "string", default: "1000" },
    batch: { type: "string", default: "1000" },
    seconds: { type: "string", default: "5" },
  },
});
const EVENTS = Number(values.events);
const KEYS = Number(values.keys);
const BATCH = Number(values.batch);
const HTTP_SECONDS = Number(values.seconds);
const T0 = Date.now() - 3_600_000;

function wireEvent(i: number) {
  return {
    event_id: `e${i}`,
    event_type: i % 3 ? "page_view" : "purchase",
    user_id: `user${i % KEYS}`,
    timestamp: T0 + i,
    properties: { amount: (i % 100) + 0.5 },
  };
}

const wire = Array.from({ length: EVENTS }, (_, i) => wireEvent(i));
const events: Event[] = wire.map((w) => {
  const r = normalizeEvent(w, DEFAULT_CONFIG, Date.now(), () => "x");
  if (!r.ok) throw new Error("bench event invalid");
  return r.event;
});

const results: Array<{ name: string; perSec: number; note: string }> = [];
function report(name: string, count: number, ms: number, note = "") {
  const perSec = (count / ms) * 1000;
  results.push({ name, perSec, note });
  console.log(`  ${name.padEnd(44)} ${Math.round(perSec).toLocaleString("en-US").padStart(12)} events/s  ${note}`);
}

console.log(`keyflow bench: ${EVENTS.toLocaleString("en-US")} events, ${KEYS} keys, batches of ${BATCH}`);

// 1. Validation alone (zod schema + normalization), per event.
{
  const start = performance.now();
  const now = Date.now();
  for (const w of wire) normalizeEvent(w, DEFAULT_CONFIG, now, () => "x");
  report("validate (normalizeEvent)", EVENTS, performance.now() - start);
}

// 2. The actor core in memory: dedupe + windows, no storage.
{
  const actors = new Map<string, Actor>();
  const start = performance.now();
  for (let i = 0; i < events.length; i += BATCH) {
    const byKey = new Map<string, Event[]>();
    for (const e of events.slice(i, i + BATCH)) (byKey.get(e.key) ?? byKey.set(e.key, []).get(e.key)!).push(e);
    for (const [key, list] of byKey) {
      let actor = actors.get(key);
      if (!actor) actors.set(key, (actor = new Actor(key, DEFAULT_CONFIG)));
      actor.ingest(list, Date.now());
    }
  }
  report("actor core, in memory (no storage)", EVENTS, performance.now() - start);
}

async function runtimeIngest(name: string, store: KvStore, note: string) {
  const runtime = new LocalRuntime({ store, config: DEFAULT_CONFIG, clock: systemEnv.clock, random: systemEnv.random, timers: systemTimers });
  const start = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < events.length; i += BATCH) {
    inflight.push(runtime.ingest(events.slice(i, i + BATCH)));
    if (inflight.length >= 8) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  const ms = performance.now() - start;
  report(name, EVENTS, ms, `${note}; ${runtime.stats.commits} commits, ${runtime.stats.rowsWritten} rows`);
  await runtime.close();
  store.close();
}

// 3. Runtime with group commit on memory and on SQLite (synchronous=full: one fsync per commit).
await runtimeIngest("runtime + memory store", new MemoryKvStore(), "group commit");
const dir = tempDir("bench");
await runtimeIngest("runtime + SQLite (durable, synchronous=full)", openBunSqlite(`${dir.path}/k.db`, "full"), "group commit");

// 4. Baseline: one SQLite row per event, batched in transactions of BATCH rows (same durability).
{
  const db = new Database(`${dir.path}/rows.db`, { create: true });
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
  db.exec("CREATE TABLE seen (k TEXT, id TEXT, PRIMARY KEY (k, id)) WITHOUT ROWID");
  const insert = db.prepare("INSERT OR IGNORE INTO seen (k, id) VALUES (?, ?)");
  const start = performance.now();
  for (let i = 0; i < events.length; i += BATCH) {
    db.transaction(() => {
      for (const e of events.slice(i, i + BATCH)) insert.run(e.key, e.id);
    })();
  }
  report("baseline: one SQLite row per event", EVENTS, performance.now() - start, "dedupe rows only, no aggregates");
  db.close();
}

// 5. End to end over HTTP: the Bun server, concurrent batch POSTs for a fixed time.
{
  const server = await spawnServer(BUN_SERVER, { PORT: "0", KEYFLOW_DATA_DIR: `${dir.path}/http` });
  const bodies: string[] = [];
  for (let i = 0; i < Math.min(EVENTS, 100 * BATCH); i += BATCH) bodies.push(JSON.stringify(wire.slice(i, i + BATCH)));
  let sent = 0;
  let next = 0;
  const deadline = performance.now() + HTTP_SECONDS * 1000;
  const start = performance.now();
  const worker = async () => {
    while (performance.now() < deadline) {
      const body = bodies[next++ % bodies.length]!;
      const res = await fetch(`${server.url}/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
      sent += BATCH;
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  report("HTTP: Bun server, JSON batches, 4 clients", sent, performance.now() - start, "includes parse + validation; repeats count as duplicates");
  await server.stop();
}
dir.remove();

const base = results.find((r) => r.name.startsWith("baseline"))!.perSec;
console.log("\nratios against the one-row-per-event baseline (same run):");
for (const r of results) console.log(`  ${r.name.padEnd(44)} ${(r.perSec / base).toFixed(2)}x`);

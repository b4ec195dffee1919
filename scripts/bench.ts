// keyflow benchmarks: one command, one run, every number next to a baseline measured in the same run.
//   bun run bench                      # all sections (sinks section only when `npm run services` is up)
//   bun run bench --quick              # shorter runs
//   bun run bench --only core,http     # some sections: core, analytics, http, auth, ops, batch, backfill, workerd, cost, sinks, memory, keys, kstreams
//   bun run bench --only kstreams      # Kafka Streams reference (java + mvn; not in --quick unless asked)
//   bun run bench --record             # also write the ratios to bench/baseline.json (for tests/bench)
// Writes bench/results/latest.json and latest.md (git-ignored) and prints the table.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { costSection, COST_PLAN, QUICK_COST_PLAN } from "./bench-cost.ts";
import { parseArgs } from "node:util";
import { analyticsSection, authSection, backfillSection, opsSection, batchSection, coreSection, httpSection, kafkaStreamsReference, keysSection, memorySectionApart, score, sinksSection, workerdSection, type Row } from "./bench-sections.ts";

const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, only: { type: "string" }, record: { type: "boolean", default: false } },
});
const QUICK = values.quick;
const ONLY = values.only?.split(",");
const SECONDS = QUICK ? 2 : 5;

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2));
const ratio = (r: Row) => (r.baseline ? `${(r.value / r.baseline.value).toFixed(2)}x` : "");

const sections: Array<[string, string, () => Row[] | null | Promise<Row[] | null>]> = [
  ["core", "actor core in memory: ingest + dedupe + windows (1m, 1h), pre-parsed events, 10,000 keys", () => coreSection(QUICK ? 300_000 : 1_000_000)],
  [
    "analytics", `actor core in memory: sliding 10m + session 30m windows, enrichment and 3 rules (and distinct + percentiles) vs tumbling 1m, 1h only, ${QUICK ? "100,000 events, 1,000" : "1,000,000 events, 10,000"} keys (100 each)`,
    () => analyticsSection(QUICK ? 100_000 : 1_000_000, QUICK ? 1_000 : 10_000),
  ],
  ["http", `Bun host, single-event JSON requests, 32 connections, ${SECONDS}s each (SQLite, synchronous=full)`, () => httpSection(SECONDS, true)],
  ["auth", `Bun host, single events with and without API keys, 32 connections, ${QUICK ? 3 : 7} alternating rounds of ${SECONDS}s`, () => authSection(SECONDS, QUICK ? 3 : 7)],
  ["ops", `Bun host, single events with metrics and request logs on and off, 32 connections, ${QUICK ? 3 : 7} alternating rounds of ${SECONDS}s`, () => opsSection(SECONDS, QUICK ? 3 : 7)],
  ["batch", `Bun host, 1,000-event NDJSON batches over 1,000 keys, 4 connections, ${SECONDS}s (durable)`, () => batchSection(SECONDS)],
  [
    "backfill", `keyflow backfill: a ${QUICK ? "200,000" : "1,000,000"}-event NDJSON file into a local Bun host (memory and durable) vs pre-built batch bodies to the same host`,
    () => backfillSection(QUICK ? 200_000 : 1_000_000),
  ],
  ["workerd", `Worker + Durable Objects in local workerd (wrangler's programmatic API), ${SECONDS}s each`, () => workerdSection(SECONDS)],
  ["cost", "US$ per million events on Cloudflare, counted in local workerd (keyflow_do_* counters): single events and batches of 10, 100, 1,000 per key", () => costSection(QUICK ? QUICK_COST_PLAN : COST_PLAN)],
  ["sinks", "end to end: ingest -> visible in Redis, Postgres and Kafka (local services)", () => sinksSection(QUICK ? 100 : 300)],
  // In a process of its own: after the other sections the same heap reads ~8% higher per actor.
  ["memory", "heap bytes per dedupe ID and per idle actor (a fresh process)", () => memorySectionApart(1_000_000)],
  [
    "keys", `${QUICK ? "100,000" : "1,000,000"} distinct keys, one event each, into a Bun host (durable, NDJSON batches of 1,000, 4 in flight): the server's peak RSS, at the default 10,000 actors in memory and with all in memory`,
    () => keysSection(QUICK ? 100_000 : 1_000_000),
  ],
  [
    "kstreams", `Kafka Streams 4.1.1 reference: keyflow's job (and with sliding + session windows and 3 rules), ${QUICK ? "300,000" : "1,000,000"} events, 10,000 keys`,
    () => (QUICK && !ONLY?.includes("kstreams") ? (console.log("  skipped in --quick (takes minutes; ask for it with --only kstreams)"), []) : kafkaStreamsReference(QUICK ? 300_000 : 1_000_000)),
  ],
];

const rows: Row[] = [];
for (const [name, title, run] of sections) {
  if (ONLY && !ONLY.includes(name)) continue;
  console.log(`\n[${name}] ${title}`);
  const result = await run();
  if (!result) {
    console.log("  skipped: run `npm run services` first");
    continue;
  }
  for (const row of result) {
    rows.push(row);
    const versus = row.baseline ? `  (${ratio(row)} ${row.baseline.name})` : "";
    console.log(`  ${row.metric.padEnd(52)} ${fmt(row.value).padStart(12)} ${row.unit}${versus}`);
  }
}

mkdirSync("bench/results", { recursive: true });
const stamp = new Date().toISOString();
writeFileSync("bench/results/latest.json", JSON.stringify({ at: stamp, quick: QUICK, rows }, null, 2));
const table = [
  `# keyflow bench (${stamp}${QUICK ? ", quick" : ""})`,
  "",
  "| section | metric | value | baseline (same run) | ratio | target |",
  "|---|---|---:|---|---:|---|",
  ...rows.map(
    (r) =>
      `| ${r.section} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)}` : ""} | ${ratio(r)} | ${r.target ?? ""} |`,
  ),
].join("\n");
writeFileSync("bench/results/latest.md", `${table}\n`);
console.log(`\n${table}\n\nwrote bench/results/latest.json and latest.md`);

if (values.record) {
  const path = "bench/baseline.json";
  const recorded = JSON.parse(readFileSync(path, "utf8"));
  for (const row of rows) {
    const s = score(row);
    if (s !== undefined) recorded.scores[row.id] = Number(s.toFixed(3));
  }
  recorded.recorded_at = stamp;
  writeFileSync(path, `${JSON.stringify(recorded, null, 2)}\n`);
  console.log(`recorded ${rows.filter((r) => r.baseline).length} ratios in ${path}`);
}

import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { BIN, ROOT } from "../support/process.ts";
import { BUN_SERVER, spawnServer, tempDir, type ServerProcess } from "../support/targets.ts";

// The load generator (scripts/load.ts) as a subprocess against the Bun server, judged by its JSON report
// and by reading the server's actors directly.

const dir = tempDir("load");
let server: ServerProcess;

beforeAll(async () => {
  server = await spawnServer(BUN_SERVER, { PORT: "0", HOST: "127.0.0.1", KEYFLOW_DATA_DIR: dir.path, KEYFLOW_STORAGE: "memory" });
}, 30_000);
afterAll(async () => {
  await server?.stop();
  dir.remove();
});

async function load(...args: string[]) {
  const proc = Bun.spawn([join(BIN, "bun"), "scripts/load.ts", "--url", server.url, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

async function loadJson(...args: string[]) {
  const run = await load(...args, "--json");
  let report;
  try {
    report = JSON.parse(run.stdout);
  } catch {
    throw new Error(`no JSON report (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
  return { ...run, report };
}

/** Sum of the server's own totals over the run's keys. */
async function serverTotals(runId: string, keys: number) {
  const sum = { events: 0, duplicates: 0, late: 0 };
  for (let k = 0; k < keys; k++) {
    const res = await fetch(`${server.url}/v1/actors/${encodeURIComponent(`${runId}-k${k}`)}`);
    if (res.status === 404) continue;
    const { totals } = (await res.json()) as { totals: typeof sum };
    sum.events += totals.events;
    sum.duplicates += totals.duplicates;
    sum.late += totals.late;
  }
  return sum;
}

const WORKLOAD = ["--events", "3000", "--keys", "30", "--dup-rate", "0.1", "--late-rate", "0.05", "--seed", "7"];
let singlePlanned: { planned_duplicates: number; planned_late: number } | undefined;

test("open loop, single-event requests: every event acknowledged, duplicates and late events as planned, verified", async () => {
  const { code, report, stderr } = await loadJson(...WORKLOAD, "--rate", "2000", "--batch", "1", "--run-id", "single");
  expect(code).toBe(0);
  expect(report.ok).toBe(true);
  expect(report.verification.passed).toBe(true);
  expect(report.verification.keys_checked).toBe(30);
  expect(report.verification.mismatch_count).toBe(0);
  expect(report.latency_ms.measured_from).toBe("scheduled send time");

  const { events, outcomes } = report;
  expect(events.sent).toBe(3000);
  expect(events.acked).toBe(3000);
  expect(outcomes.accepted + outcomes.duplicates).toBe(events.acked);
  expect(outcomes.duplicates).toBeGreaterThan(0);
  expect(outcomes.late).toBeGreaterThan(0);
  // Each planned duplicate and late event was answered as such, and nothing else was.
  expect(outcomes.duplicates).toBe(events.planned_duplicates);
  expect(outcomes.late).toBe(events.planned_late);
  expect(report.status_codes).toEqual({ "202": outcomes.accepted, "200": outcomes.duplicates });
  expect(report.requests).toEqual({ sent: 3000, ok: 3000 });
  expect(report.transport_errors).toBe(0);

  const { p50, p95, p99, max } = report.latency_ms;
  for (const v of [p50, p95, p99, max]) expect(typeof v).toBe("number");
  expect(p50).toBeLessThanOrEqual(p95);
  expect(p95).toBeLessThanOrEqual(p99);
  expect(p99).toBeLessThanOrEqual(max);
  // 3000 events at 2000/s take about 1.5 s on the open-loop schedule, not less.
  expect(report.duration_s).toBeGreaterThanOrEqual(1.4);
  expect(stderr).toMatch(/\[\s*1s\] sent \d+ +acked \d+ +errors 0 +\d+ events\/s +p99 [\d.]+ ms/);

  // The server agrees, read independently of the generator.
  expect(await serverTotals("single", 30)).toEqual({ events: outcomes.accepted, duplicates: outcomes.duplicates, late: outcomes.late });
  singlePlanned = events;
}, 20_000);

test("closed loop, NDJSON batches of 100: verified per key from batch counts; same seed, same workload", async () => {
  const { code, report } = await loadJson(...WORKLOAD, "--rate", "0", "--batch", "100", "--run-id", "batch");
  expect(code).toBe(0);
  expect(report.ok).toBe(true);
  expect(report.verification.passed).toBe(true);
  expect(report.verification.batch_mismatch_count).toBe(0);
  expect(report.latency_ms.measured_from).toBe("actual send time");
  expect(report.requests).toEqual({ sent: 30, ok: 30 });
  expect(report.status_codes).toEqual({ "200": 30 });
  const { events, outcomes } = report;
  expect(events.acked).toBe(3000);
  expect(outcomes.accepted + outcomes.duplicates).toBe(events.acked);
  expect(outcomes.duplicates).toBeGreaterThan(0);
  expect(outcomes.late).toBeGreaterThan(0);
  expect(outcomes.rejected).toBe(0);
  expect(typeof report.latency_ms.p99).toBe("number");
  // --seed 7 plans the same duplicates and late events whatever the rate and batch size.
  expect(singlePlanned).toBeDefined();
  expect(events.planned_duplicates).toBe(singlePlanned!.planned_duplicates);
  expect(events.planned_late).toBe(singlePlanned!.planned_late);
  expect(await serverTotals("batch", 30)).toEqual({ events: outcomes.accepted, duplicates: outcomes.duplicates, late: outcomes.late });
}, 20_000);

test("verification fails when the server's counts differ from the run's acknowledgements (run id reused)", async () => {
  const args = ["--events", "400", "--rate", "0", "--keys", "8", "--seed", "11", "--run-id", "reused"];
  const first = await loadJson(...args);
  expect(first.code).toBe(0);
  expect(first.report.verification.passed).toBe(true);

  // Same ids again: every event is a duplicate, so this run got nothing accepted, but each key holds
  // the first run's events.
  const second = await loadJson(...args);
  expect(second.code).toBe(1);
  expect(second.report.ok).toBe(false);
  expect(second.report.outcomes).toMatchObject({ accepted: 0, duplicates: 400 });
  expect(second.report.verification.passed).toBe(false);
  expect(second.report.verification.mismatch_count).toBe(8);
  const mismatches = second.report.verification.mismatches as Array<{ key: string; field: string; expected: string; actual: number }>;
  expect(mismatches.every((m) => m.field === "events" && m.expected === "0" && m.actual > 0)).toBe(true);
  expect(mismatches.reduce((n, m) => n + m.actual, 0)).toBe(400);

  // In batches the server's answer contradicts the prediction per batch; the text report says so.
  const batched = await load(...args, "--batch", "50");
  expect(batched.code).toBe(1);
  expect(batched.stdout).toContain("verification    FAILED");
  expect(batched.stdout).toContain('answered {"accepted":0,"duplicates":50,"late":0}, expected {"accepted":50,"duplicates":0,"late":0}');
}, 20_000);

test("--help prints usage with examples; bad options exit 2", async () => {
  const help = Bun.spawnSync([join(BIN, "bun"), "scripts/load.ts", "--help"], { cwd: ROOT });
  expect(help.exitCode).toBe(0);
  const text = help.stdout.toString();
  expect(text).toContain("--rate");
  expect(text).toContain("1 h + 2 min");
  expect(text).toContain("Examples:");
  const bad = await load("--dup-rate", "0.8", "--late-rate", "0.5");
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("--dup-rate + --late-rate");
}, 20_000);

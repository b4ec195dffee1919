import { expect, test } from "bun:test";
import { FAULT_KINDS, Counters } from "../../src/sim/faults.ts";
import { formatViolation, runSeed } from "../../src/sim/run.ts";

// The CI sweep: 200 seeds of the default workload on each host, each with its own swarm of faults,
// must all pass, and across them every kind of fault must have fired at least once.
const SEEDS = 200;

test(`simulator sweep, Durable Object host: ${SEEDS} seeds pass, and every fault kind fires`, async () => {
  const total = new Counters();
  const failures: string[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = await runSeed({ seed, traceTail: 0 });
    total.add(r.counters);
    if (!r.ok) failures.push(formatViolation(r));
  }
  expect(failures).toEqual([]);
  const silent = FAULT_KINDS.filter((k) => !(total.faults[k]! > 0));
  expect(silent).toEqual([]);
  // The paths the faults are meant to provoke were reached too.
  for (const path of ["alarm_retry", "ingest_during_delivery", "response_dropped", "backpressure", "dlq_permanent", "dlq_budget", "dlq_replayed", "bisect", "dedupe_reaccept", "late_accepted", "close_idle", "close_watermark", "closed_purged", "mirror_delivered", "alarm_stale_actor", "type_window_delivered", "session_retraction_delivered", "alert_delivered"]) {
    expect({ path, hits: total.paths[path]! > 0 }).toEqual({ path, hits: true });
  }
}, 120_000);

test(`simulator sweep, process host: ${SEEDS} seeds pass through crashes, failed commits, eviction and sink faults`, async () => {
  const total = new Counters();
  const failures: string[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = await runSeed({ seed, host: "process", traceTail: 0 });
    total.add(r.counters);
    if (!r.ok) failures.push(formatViolation(r));
  }
  expect(failures).toEqual([]);
  for (const fault of ["crash", "crash_mid_delivery", "crash_after_commit", "storage_fail", "sink_timeout", "sink_late_apply", "sink_permanent"]) {
    expect({ fault, fired: total.faults[fault]! > 0 }).toEqual({ fault, fired: true });
  }
  for (const path of ["process_restart", "journal_replayed", "actors_evicted", "commit_off_loop", "backpressure", "dlq_permanent", "dlq_replayed", "bisect", "close_idle", "close_watermark", "mirror_delivered", "type_window_delivered", "alert_delivered"]) {
    expect({ path, hits: total.paths[path]! > 0 }).toEqual({ path, hits: true });
  }
}, 120_000);

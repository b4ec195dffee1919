import type { Prng } from "./prng.ts";

/** Faults the simulator injects. Each seed turns a random subset on (swarm testing). */
export const FAULT_KINDS = [
  "crash", // an actor's instance dies at any point, losing all memory; storage and the alarm slot survive
  "crash_mid_delivery", // ... while an alarm's sink I/O is in flight (the response is lost, the request may land)
  "crash_after_commit", // ... after an ingest committed, before the reply: the client sees an error and retries
  "evict", // an idle instance is evicted (memory lost, storage kept); the next call is a cold start
  "storage_fail", // a commit throws; the host drops memory and the caller sees an error
  "sink_transient", // 5xx / 429 / connection refused, nothing applied
  "sink_partial", // a transient error naming its record: the records before it were applied
  "sink_timeout", // unknown outcome: applied (all, a prefix or nothing) yet reported as a timeout
  "sink_permanent", // a poison record refused for good (data-determined, so it is the same on every retry)
  "sink_slow", // a response that takes seconds
  "sink_outage", // the sink is down for a while (breaker territory)
  "sink_dup_ack", // a request processed twice by the sink (the ack arrives twice, the second one late)
  "sink_late_apply", // a timed-out request lands after the sender gave up, possibly after a retry succeeded
  "client_dup", // a producer sends an event it already sent (same id)
  "client_response_lost", // the reply to a successful request is lost: the client retries it
  "out_of_order", // event time behind the newest one, within the allowed lateness
  "late_event", // event time behind its windows' close (beyond allowed lateness)
  "clock_skew", // producers whose clocks run ahead or behind
  "burst", // many requests within milliseconds
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Code paths observed (not injected): coverage of what the faults provoked. */
export const PATH_KINDS = [
  "cold_start",
  "alarm_fired",
  "alarm_retry",
  "alarm_dropped",
  "alarm_fallback",
  "alarm_deferred",
  "alarm_stale_actor",
  "ingest_during_delivery",
  "backpressure",
  "response_dropped",
  "bisect",
  "dlq_permanent",
  "dlq_budget",
  "dedupe_reaccept",
  "late_accepted",
  "close_watermark",
  "close_idle",
  "closed_purged",
  "mirror_delivered",
  "dlq_replayed",
  "process_restart",
  "journal_replayed",
  "actors_evicted",
  "type_window_delivered",
  "session_retraction_delivered",
  "alert_delivered",
  "commit_off_loop",
] as const;
export type PathKind = (typeof PATH_KINDS)[number];

export class Counters {
  readonly faults: Record<string, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0]));
  readonly paths: Record<string, number> = Object.fromEntries(PATH_KINDS.map((k) => [k, 0]));

  fault(kind: FaultKind, n = 1): void {
    this.faults[kind]! += n;
  }

  path(kind: PathKind, n = 1): void {
    this.paths[kind]! += n;
  }

  add(other: Counters): void {
    for (const [k, v] of Object.entries(other.faults)) this.faults[k] = (this.faults[k] ?? 0) + v;
    for (const [k, v] of Object.entries(other.paths)) this.paths[k] = (this.paths[k] ?? 0) + v;
  }
}

/** Rates of the injected faults for one seed (0 = off). */
export interface FaultPlan {
  /** Mean time between crashes of one actor, ms. */
  crashMeanMs: number;
  /** Chance, per sink call, that the calling actor crashes while the call is in flight. */
  crashMidDelivery: number;
  crashAfterCommit: number;
  evictMeanMs: number;
  storageFail: number;
  responseLost: number;
  sink: SinkFaultPlan;
}

export interface SinkFaultPlan {
  transient: number;
  partial: number;
  timeout: number;
  slow: number;
  dupAck: number;
  lateApply: number;
  /** Mean time between outages of one sink, ms (0 = none). */
  outageMeanMs: number;
  outageMaxMs: number;
  /** Share of records a sink refuses permanently (by a hash of the record's identity). */
  poison: number;
  /** "batch": a poison record makes the sink refuse the whole batch (the channel bisects); "indexed": it names the record. */
  style: "batch" | "indexed";
}

export const NO_SINK_FAULTS: SinkFaultPlan = {
  transient: 0,
  partial: 0,
  timeout: 0,
  slow: 0,
  dupAck: 0,
  lateApply: 0,
  outageMeanMs: 0,
  outageMaxMs: 0,
  poison: 0,
  style: "batch",
};

/** Swarm testing: each fault is on for about half the seeds, at a random intensity. */
export function chooseFaults(prng: Prng): FaultPlan {
  const on = (p = 0.5) => prng.chance(p);
  const sink: SinkFaultPlan = {
    transient: on() ? prng.pick([0.02, 0.05, 0.15, 0.3]) : 0,
    partial: on() ? prng.pick([0.02, 0.05, 0.15]) : 0,
    timeout: on() ? prng.pick([0.02, 0.05, 0.15]) : 0,
    slow: on() ? prng.pick([0.01, 0.05, 0.2]) : 0,
    dupAck: on() ? prng.pick([0.02, 0.05, 0.2]) : 0,
    lateApply: 0,
    outageMeanMs: on(0.35) ? prng.pick([20_000, 60_000, 180_000]) : 0,
    outageMaxMs: prng.pick([5_000, 30_000, 120_000]),
    poison: on(0.4) ? prng.pick([0.005, 0.02, 0.05]) : 0,
    style: prng.chance(0.5) ? "batch" : "indexed",
  };
  sink.lateApply = sink.timeout > 0 && on() ? prng.pick([0.3, 0.7]) : 0;
  return {
    crashMeanMs: on() ? prng.pick([5_000, 20_000, 60_000]) : 0,
    crashMidDelivery: on(0.4) ? prng.pick([0.02, 0.05, 0.15]) : 0,
    crashAfterCommit: on(0.4) ? prng.pick([0.01, 0.03, 0.1]) : 0,
    evictMeanMs: on() ? prng.pick([3_000, 15_000, 60_000]) : 0,
    storageFail: on() ? prng.pick([0.01, 0.03, 0.08, 0.15]) : 0,
    responseLost: on(0.4) ? prng.pick([0.01, 0.05, 0.15]) : 0,
    sink,
  };
}

/** Short names of the faults a plan turns on (for the verbose summary). */
export function enabledFaults(plan: FaultPlan, workload: { dupRate: number; oooRate: number; lateRate: number; skewMs: number; burstRate: number }): string[] {
  const s = plan.sink;
  const on: Array<[string, boolean]> = [
    ["crash", plan.crashMeanMs > 0],
    ["crash_mid_delivery", plan.crashMidDelivery > 0],
    ["crash_after_commit", plan.crashAfterCommit > 0],
    ["evict", plan.evictMeanMs > 0],
    ["storage_fail", plan.storageFail > 0],
    ["client_response_lost", plan.responseLost > 0],
    ["sink_transient", s.transient > 0],
    ["sink_partial", s.partial > 0],
    ["sink_timeout", s.timeout > 0],
    ["sink_late_apply", s.lateApply > 0],
    ["sink_slow", s.slow > 0],
    ["sink_dup_ack", s.dupAck > 0],
    ["sink_outage", s.outageMeanMs > 0],
    [`sink_permanent(${s.style})`, s.poison > 0],
    ["client_dup", workload.dupRate > 0],
    ["out_of_order", workload.oooRate > 0],
    ["late_event", workload.lateRate > 0],
    ["clock_skew", workload.skewMs > 0],
    ["burst", workload.burstRate > 0],
  ];
  return on.filter(([, v]) => v).map(([k]) => k);
}

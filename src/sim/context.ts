import type { Actor, IngestOutcome } from "../core/actor.ts";
import type { Config } from "../core/config.ts";
import type { Event } from "../core/event.ts";
import type { OutboxRecord } from "../core/outbox.ts";
import type { Counters, FaultPlan } from "./faults.ts";
import type { TraceHash } from "./hash.ts";
import type { Prng } from "./prng.ts";
import type { Scheduler } from "./scheduler.ts";
import type { SimSink } from "./sinks.ts";

/** Deliberate defects, used by the tests to prove the checker can fail. */
export type Broken = "none" | "sink-drops-record" | "model-sum";

/** What the host and the sinks report to the checker (which compares against the ground-truth model). */
export interface Observer {
  /** An ingest call whose commit succeeded (the model applies the same events at the same time). */
  ingestCommitted(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[], now: number, actor: Actor): void;
  /** An alarm's tick() whose commit succeeded. */
  tickCommitted(key: string, now: number, actor: Actor): void;
  /** The client got a reply for these events (accepted or duplicate): they are acknowledged. */
  acknowledged(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[]): void;
  /** A sink applied a record (possibly again). */
  applied(sink: SimSink, record: OutboxRecord): void;
  /** Any live actor after a step: memory bounds. */
  inspect(actor: Actor): void;
  /** Records a violation (the first one is reported). */
  violation(message: string): void;
}

export interface SimContext {
  sched: Scheduler;
  prng: Prng;
  counters: Counters;
  /** False in the liveness phase: no more injected faults (poison records stay: they are data). */
  faultsOn: boolean;
  plan: FaultPlan;
  config: Config;
  trace: TraceHash;
  observer: Observer;
  broken: Broken;
}

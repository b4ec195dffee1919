import type { Actor, IngestOutcome } from "../actor/actor.ts";
import type { Config } from "../settings/config.ts";
import type { Event } from "../actor/event.ts";
import type { OutboxRecord } from "../actor/outbox.ts";
import type { CommittedCommand } from "../hosts/process/journal.ts";
import type { Counters, FaultPlan } from "./faults.ts";
import type { TraceHash } from "./hash.ts";
import type { Prng } from "./prng.ts";
import type { VirtualTime } from "./virtual-time.ts";

/**
 * Deliberate defects, used by the tests to prove the checker can fail. lose-journal (process host):
 * a restart that skips the journal, as a recovery bug would.
 */
export const BROKEN_MODES = ["none", "sink-drops-record", "model-count", "lose-journal", "model-session-gap", "model-rule-once"] as const;
export type Broken = (typeof BROKEN_MODES)[number];

/**
 * The Durable Object glue the host runs: "fixed" (the default) is src/hosts/durable/durable-host.ts as
 * actors/key-actor.ts runs it; "unfixed" takes out the three fixes the simulator found (A, B, C:
 * see DurableHost's seams), "unfixed+A", "unfixed+A+B", ... keep only those.
 */
export type Glue = string;
export interface Fixes {
  /** An alarm does not commit an actor whose memory was dropped while it awaited the sinks. */
  A: boolean;
  /** A backpressured ingest makes sure an alarm is armed. */
  B: boolean;
  /** The last allowed retry of an alarm arms a fallback alarm first. */
  C: boolean;
}

export function parseGlue(glue: Glue): Fixes {
  if (glue === "fixed") return { A: true, B: true, C: true };
  const [base, ...fixes] = glue.split("+");
  const known = ["A", "B", "C"];
  if (base !== "unfixed" || fixes.some((f) => !known.includes(f))) throw new Error(`unknown glue ${JSON.stringify(glue)}: use fixed, unfixed, or unfixed+A+B+C (any of them)`);
  return { A: fixes.includes("A"), B: fixes.includes("B"), C: fixes.includes("C") };
}

/** A simulated sink as the checker sees it (src/sim/sinks.ts's SimSink). */
export interface ObservedSink {
  readonly name: string;
  /** Whether the sink refuses this record for good. */
  poison(record: OutboxRecord): boolean;
  /** What it applied, by effect id. */
  readonly effects: ReadonlyMap<string, { record: OutboxRecord; text: string; applies: number }>;
}

/** What the host and the sinks report to the checker (which compares against the ground-truth model). */
export interface Observer {
  /** An ingest call whose commit succeeded (the model applies the same events at the same time). */
  ingestCommitted(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[], now: number, actor: Actor): void;
  /** An alarm's tick() whose commit succeeded. */
  tickCommitted(key: string, now: number, actor: Actor): void;
  /** The commit after an alarm's deliveries succeeded (nothing new for the model: facts must not move). */
  deliveryCommitted(key: string, actor: Actor): void;
  /** The process host's group commit: these commands, in the order they ran, became durable. */
  turnCommitted(commands: readonly CommittedCommand[], actorOf: (key: string) => Actor | undefined): void;
  /** The client got a reply for these events (accepted or duplicate): they are acknowledged. */
  acknowledged(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[]): void;
  /** A sink applied a record (possibly again). */
  applied(sink: ObservedSink, record: OutboxRecord): void;
  /** Records a violation (the first one is reported). */
  violation(message: string): void;
}

export interface SimContext {
  sched: VirtualTime;
  prng: Prng;
  counters: Counters;
  /** False in the liveness phase: no more injected faults (poison records stay: they are data). */
  faultsOn: boolean;
  /** False in the repair phase: the sinks were fixed and take every record. */
  poisonOn: boolean;
  plan: FaultPlan;
  config: Config;
  trace: TraceHash;
  observer: Observer;
  broken: Broken;
  fixes: Fixes;
}

import type { Actor, IngestOutcome } from "../actor/actor.ts";
import type { Event } from "../actor/event.ts";

/** What a client hears back for one ingest request. */
export type RequestResult = { ok: IngestOutcome[] } | { error: "storage" | "crash" } | { backpressure: number };

/**
 * A keyflow host under simulation: the Durable Object host (one object per key, src/sim/durable.ts)
 * or the process host (every key in one process, src/sim/process.ts). The runner drives clients and
 * faults through it; the checker reads what it stored.
 */
export interface SimHost {
  readonly kind: "durable" | "process";
  /** A client's request for one key: the durable host answers at once, the process host after its group commit. */
  request(key: string, events: Event[]): RequestResult | Promise<RequestResult>;
  /** An operator's DLQ replay for one key: how many were replayed, "storage" (retry), or null (no such key). */
  replayDeadLetters(key: string): number | "storage" | null | Promise<number | "storage" | null>;
  /** What a crash or an eviction hits: each key's object, or the one process. */
  faultTargets(): string[];
  /** The target dies: memory and in-flight work are lost, storage stays. False if nothing was running. */
  crash(target: string): boolean;
  /** An idle target loses its memory (kept storage). False if it was not idle. */
  evict(target: string): boolean;
  /** The actor as a restart would rebuild it from storage, or undefined if the key has nothing stored. */
  durable(key: string, now: number): Actor | undefined;
  /** The key's own stored rows (relative to its prefix). */
  storedRows(key: string): Array<[string, string]>;
  /** The actor in memory, if any. */
  live(key: string): Actor | undefined;
  /** Whether something will wake the key again (an alarm, a timer). */
  wakePending(key: string): boolean;
  /** Every stored row (for the run's fingerprint). */
  allRows(): Array<[string, string]>;
  /** Checks a host makes of itself at the very end (the process host: a clean stop leaves no journal); a violation or undefined. */
  finish(): string | undefined | Promise<string | undefined>;
  readonly stats: { storageWrites: number; coldStarts: number };
}

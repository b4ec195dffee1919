import type { Outbox, OutboxRecord } from "../actor/outbox.ts";
import type { Outcome } from "./channel.ts";

/** A record a sink refused for good (or ran out of retries on): it goes to the dead-letter queue. */
export interface DeadDecision {
  n: number;
  error: string;
  attempts: number;
}

/** What one delivery attempt settled for one key at one sink. */
export interface Settlement {
  key: string;
  /** The sink's cursor when the batch was made (its first record of the key): what was settled starts here. */
  from: number;
  /** The sink has taken (delivered or dead-lettered) every record of the key before this position. */
  upTo: number;
  dead: DeadDecision[];
}

/**
 * Per key, in batch order, what a batch's outcomes settled: the delivered and dead records up to the
 * key's first one still pending (a key's later records wait behind it, which keeps per-key order).
 */
export function settlements(batch: readonly OutboxRecord[], outcomes: readonly Outcome[]): Settlement[] {
  const byKey = new Map<string, Settlement>();
  const stopped = new Set<string>();
  outcomes.forEach((outcome, i) => {
    const record = batch[i]!;
    if (stopped.has(record.key)) return;
    if (outcome.status === "pending") return void stopped.add(record.key);
    let settled = byKey.get(record.key);
    if (!settled) byKey.set(record.key, (settled = { key: record.key, from: record.n, upTo: record.n + 1, dead: [] }));
    settled.upTo = record.n + 1;
    if (outcome.status === "dead") settled.dead.push({ n: record.n, error: outcome.error, attempts: outcome.attempts });
  });
  return [...byKey.values()];
}

/**
 * Applies a settlement to the key's outbox. Applying it again changes nothing. A settlement made
 * before the actor was rebuilt from storage (after a failed commit) may start past the rebuilt
 * cursor: the records in between were never settled, so it is dropped and they go out again.
 */
export function applySettlement(outbox: Outbox, sink: string, settlement: Settlement, now: number): boolean {
  if (outbox.position(sink) < settlement.from) return false;
  for (const { n, error, attempts } of settlement.dead) {
    const record = outbox.record(n);
    if (record && outbox.position(sink) <= n) outbox.deadLetter(sink, record, error, attempts, now);
  }
  outbox.ack(sink, settlement.upTo);
  return true;
}

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
  /** The sink has taken (delivered or dead-lettered) every record of the key before this position. */
  upTo: number;
  dead: DeadDecision[];
}

/**
 * Per key, in batch order, what a batch's outcomes settled: the delivered and dead records up to the
 * key's first one still pending (a key's later records wait behind it, which keeps per-key order).
 */
export function settlements(batch: readonly OutboxRecord[], outcomes: readonly Outcome[]): Settlement[] {
  const byKey = new Map<string, Settlement | null>();
  outcomes.forEach((outcome, i) => {
    const record = batch[i]!;
    const current = byKey.get(record.key);
    if (current === null) return;
    if (outcome.status === "pending") return void byKey.set(record.key, current ?? null);
    const settled = current ?? { key: record.key, upTo: record.n + 1, dead: [] };
    settled.upTo = record.n + 1;
    if (outcome.status === "dead") settled.dead.push({ n: record.n, error: outcome.error, attempts: outcome.attempts });
    byKey.set(record.key, settled);
  });
  const out: Settlement[] = [];
  for (const s of byKey.values()) if (s) out.push(s);
  return out;
}

/** Applies a settlement to the key's outbox. Applying it again changes nothing. */
export function applySettlement(outbox: Outbox, sink: string, settlement: Settlement, now: number): void {
  for (const { n, error, attempts } of settlement.dead) {
    const record = outbox.record(n);
    if (record && outbox.position(sink) <= n) outbox.deadLetter(sink, record, error, attempts, now);
  }
  outbox.ack(sink, settlement.upTo);
}

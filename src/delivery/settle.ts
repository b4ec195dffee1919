import type { Actor } from "../actor/actor.ts";
import type { OutboxRecord } from "../actor/outbox.ts";
import type { Outcome } from "./channel.ts";

/** Applies a channel's outcomes to the actors that own the records: advance cursors, dead-letter. */
export function settle(
  sink: string,
  batch: OutboxRecord[],
  owners: Actor[],
  outcomes: Outcome[],
  now: number,
  touched: (actor: Actor) => void,
): void {
  const stopped = new Set<Actor>();
  outcomes.forEach((outcome, i) => {
    const actor = owners[i]!;
    const record = batch[i]!;
    if (stopped.has(actor)) return;
    if (outcome.status === "pending") {
      stopped.add(actor);
      return;
    }
    if (outcome.status === "dead") actor.outbox.deadLetter(sink, record, outcome.error, outcome.attempts, now);
    actor.outbox.ack(sink, record.n + 1);
    touched(actor);
  });
}

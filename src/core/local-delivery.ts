import type { Actor } from "./actor.ts";
import type { Clock } from "./clock.ts";
import type { Outcome, SinkChannel } from "./delivery.ts";
import type { OutboxRecord } from "./outbox.ts";
import type { Timers } from "./runtime.ts";

export interface DeliveryHost {
  clock: Clock;
  timers: Timers;
  maxDelay: number;
  batchSize: number;
  /** The actor changed (cursors, dead letters): commit it with the next group commit. */
  touched(actor: Actor): void;
  commit(): Promise<void>;
}

/**
 * Delivery for a host of many actors: one channel per sink for the whole process, so one circuit
 * breaker guards a sink and each request to it carries records of many actors. Each actor's
 * records go out in order, one batch per sink in flight, which keeps per-key order.
 */
export class LocalDelivery {
  /** Actors with records some sink has not taken yet. */
  readonly backlogged = new Set<Actor>();
  private timer: unknown;
  private timerAt = Infinity;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    readonly channels: SinkChannel[],
    private readonly host: DeliveryHost,
  ) {}

  /** Called after a commit: the actor's new records become deliverable within maxDelay. */
  committed(actor: Actor): void {
    if (!this.channels.length || actor.outbox.backlog() === 0) return;
    this.backlogged.add(actor);
    this.schedule(this.host.clock.now() + this.host.maxDelay);
  }

  /** One pass over every sink; resolves when its results are committed. */
  pass(): Promise<void> {
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(): Promise<void> {
    const results = await Promise.all(this.channels.map((channel) => this.deliverTo(channel)));
    for (const actor of [...this.backlogged]) if (actor.outbox.backlog() === 0) this.backlogged.delete(actor);
    await this.host.commit().catch(() => undefined);
    if (!this.backlogged.size || this.stopped) return;
    // A sink that took a full batch may have more: go again at once; otherwise when the next sink may try.
    const now = this.host.clock.now();
    const next = results.includes("full") ? now : Math.min(...this.channels.map((c) => Math.max(c.readyAt(), now + this.host.maxDelay)));
    this.schedule(next);
  }

  private async deliverTo(channel: SinkChannel): Promise<"full" | "partial" | "idle"> {
    if (this.host.clock.now() < channel.readyAt()) return "idle";
    const batch: OutboxRecord[] = [];
    const owners: Actor[] = [];
    for (const actor of this.backlogged) {
      const records = actor.outbox.pending(channel.name, this.host.batchSize - batch.length);
      for (const r of records) {
        batch.push(r);
        owners.push(actor);
      }
      if (batch.length >= this.host.batchSize) break;
    }
    if (!batch.length) return "idle";
    const outcomes = await channel.deliver(batch, () => this.host.clock.now());
    settle(channel.name, batch, owners, outcomes, this.host.clock.now(), (actor) => this.host.touched(actor));
    return batch.length >= this.host.batchSize && outcomes.every((o) => o.status !== "pending") ? "full" : "partial";
  }

  private schedule(at: number): void {
    if (this.stopped || at >= this.timerAt) return;
    if (this.timer !== undefined) this.host.timers.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.host.timers.setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      void this.pass();
    }, Math.max(0, at - this.host.clock.now()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.host.timers.clearTimeout(this.timer);
    await this.running;
  }
}

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

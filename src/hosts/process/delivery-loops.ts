import type { Actor } from "../../actor/actor.ts";
import type { Clock } from "../../ports/clock.ts";
import type { SinkChannel } from "../../delivery/channel.ts";
import { settle } from "../../delivery/settle.ts";
import type { OutboxRecord } from "../../actor/outbox.ts";
import type { Timers } from "../../ports/timers.ts";

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
export class DeliveryLoops {
  /** Actors with records some sink has not taken yet. */
  readonly backlogged = new Set<Actor>();
  private readonly loops: SinkLoop[];
  private stopped = false;

  constructor(
    readonly channels: SinkChannel[],
    private readonly host: DeliveryHost,
  ) {
    this.loops = channels.map((channel) => ({ channel, timer: undefined, timerAt: Infinity, running: undefined }));
  }

  /** Called after a commit: an idle sink starts on the new records after `maxDelay` (linger). */
  committed(actor: Actor): void {
    if (!this.loops.length || actor.outbox.backlog() === 0) return;
    this.backlogged.add(actor);
    const at = this.host.clock.now() + this.host.maxDelay;
    for (const loop of this.loops) if (!loop.running) this.schedule(loop, Math.max(at, loop.channel.readyAt()));
  }

  /** One delivery pass of every sink; resolves when their results are committed. */
  async pass(): Promise<void> {
    await Promise.all(this.loops.map((loop) => this.run(loop)));
  }

  /**
   * Each sink runs its own loop, so a slow sink never holds back the others. While a batch is in
   * flight new records wait; when it lands, the loop goes again at once with what gathered meanwhile
   * (batches grow with load, latency stays low when idle).
   */
  private run(loop: SinkLoop): Promise<void> {
    loop.running ??= (async () => {
      await this.deliverTo(loop.channel);
      for (const actor of [...this.backlogged]) if (actor.outbox.backlog() === 0) this.backlogged.delete(actor);
      await this.host.commit().catch(() => undefined);
    })().finally(() => {
      loop.running = undefined;
      if (this.stopped) return;
      const waiting = [...this.backlogged].some((a) => a.outbox.backlog(loop.channel.name) > 0);
      if (waiting) this.schedule(loop, Math.max(loop.channel.readyAt(), this.host.clock.now()));
    });
    return loop.running;
  }

  private async deliverTo(channel: SinkChannel): Promise<void> {
    if (this.host.clock.now() < channel.readyAt()) return;
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
    if (!batch.length) return;
    const outcomes = await channel.deliver(batch, () => this.host.clock.now());
    settle(channel.name, batch, owners, outcomes, this.host.clock.now(), (actor) => this.host.touched(actor));
  }

  private schedule(loop: SinkLoop, at: number): void {
    if (this.stopped || at >= loop.timerAt) return;
    if (loop.timer !== undefined) this.host.timers.clearTimeout(loop.timer);
    loop.timerAt = at;
    loop.timer = this.host.timers.setTimeout(() => {
      loop.timer = undefined;
      loop.timerAt = Infinity;
      void this.run(loop);
    }, Math.max(0, at - this.host.clock.now()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const loop of this.loops) if (loop.timer !== undefined) this.host.timers.clearTimeout(loop.timer);
    await Promise.all(this.loops.map((loop) => loop.running));
  }
}

interface SinkLoop {
  channel: SinkChannel;
  timer: unknown;
  timerAt: number;
  running: Promise<void> | undefined;
}

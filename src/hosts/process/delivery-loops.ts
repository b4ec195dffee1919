import type { Actor } from "../../actor/actor.ts";
import type { OutboxRecord } from "../../actor/outbox.ts";
import { troubleBetween, type SinkChannel, type SinkTrouble } from "../../delivery/channel.ts";
import type { DeliveryPolicy } from "../../delivery/policy.ts";
import { settlements, type Settlement } from "../../delivery/settle.ts";
import type { Clock } from "../../ports/clock.ts";
import type { Timers } from "../../ports/timers.ts";

export interface DeliveryObserver {
  elapsedMs(): number;
  delivery(sink: string, durationMs: number, records: number): void;
  /** A batch failed (`error`: the channel's last error), and/or the breaker changed state. */
  sinkTrouble?(sink: string, event: SinkTrouble): void;
}

export interface DeliveryHost {
  clock: Clock;
  timers: Timers;
  /** How long an idle sink lingers before sending a batch that is not full. */
  maxDelayMs: number;
  policy: DeliveryPolicy;
  /** The actor of `key`, loaded if it is not in memory. */
  actor(key: string): Actor;
  /** Applies what a batch settled to the actors and journals it (committed with the next group commit). */
  settle(sink: string, settled: Settlement[], now: number): void;
  /** Told how each batch went (metrics and logs). */
  observer?: DeliveryObserver;
}

interface SinkLoop {
  channel: SinkChannel;
  /** Keys with records in a batch in flight: each key is in at most one, which keeps per-key order. */
  readonly busy: Set<string>;
  inFlight: Set<Promise<void>>;
  /** Grows while batches go out full (a backlog), back to the policy's size when one is not. */
  batchSize: number;
  timer: unknown;
  timerAt: number;
}

/**
 * Delivery for a host of many actors: one channel per sink for the whole process, so one circuit
 * breaker guards a sink and each request carries records of many actors. Each sink runs its own
 * loop (a slow sink never holds back another) with up to `maxInFlight` batches at once; a key's
 * records are in one batch at a time, in order. An idle sink lingers `maxDelayMs` so a burst goes
 * out together; a busy one sends the next batch as soon as one lands, larger while a backlog lasts.
 */
export class DeliveryLoops {
  /** Keys with records some sink has not taken yet, oldest first. */
  readonly backlogged = new Set<string>();
  private readonly loops: SinkLoop[];
  private stopped = false;

  constructor(
    readonly channels: SinkChannel[],
    private readonly host: DeliveryHost,
  ) {
    this.loops = channels.map((channel) => ({
      channel,
      busy: new Set(),
      inFlight: new Set(),
      batchSize: host.policy.batchSize,
      timer: undefined,
      timerAt: Infinity,
    }));
  }

  private reportTrouble(channel: SinkChannel, before: ReturnType<SinkChannel["status"]>, observer: DeliveryObserver): void {
    const trouble = troubleBetween(before, channel.status());
    if (trouble) observer.sinkTrouble?.(channel.name, trouble);
  }

  /** After a commit: the actor's new records may go out; an idle sink starts on them after its linger. */
  committed(actor: Actor): void {
    if (!this.loops.length || actor.outbox.backlog() === 0) return;
    this.backlogged.add(actor.key);
    this.wakeIdleLoops();
  }

  /**
   * Keys whose actors were rebuilt from storage (after a failed commit): what they hold undelivered
   * may differ from what memory said, so delivery looks at them again.
   */
  reconsider(keys: Iterable<string>): void {
    if (!this.loops.length) return;
    for (const key of keys) this.backlogged.add(key);
    this.wakeIdleLoops();
  }

  /** Sinks with nothing in flight start after their linger (or when their backoff ends). */
  private wakeIdleLoops(): void {
    const at = this.host.clock.now() + this.host.maxDelayMs;
    for (const loop of this.loops) if (!loop.inFlight.size) this.schedule(loop, Math.max(at, loop.channel.readyAt()));
  }

  /** Sends what every sink can take now and resolves when those batches have landed (tests, the simulator). */
  async pass(): Promise<void> {
    for (const loop of this.loops) this.fill(loop);
    await Promise.all(this.loops.flatMap((loop) => [...loop.inFlight]));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const loop of this.loops) if (loop.timer !== undefined) this.host.timers.clearTimeout(loop.timer);
    await Promise.all(this.loops.flatMap((loop) => [...loop.inFlight]));
  }

  /** Starts batches until the sink's in-flight limit, or until no key has records ready for it. */
  private fill(loop: SinkLoop): void {
    const { channel } = loop;
    while (!this.stopped && loop.inFlight.size < this.host.policy.maxInFlight) {
      if (this.host.clock.now() < channel.readyAt()) return this.schedule(loop, channel.readyAt());
      const { batch, keys } = this.gather(loop);
      if (!batch.length) return;
      const full = batch.length >= loop.batchSize;
      loop.batchSize = full ? Math.min(this.host.policy.maxBatchSize, loop.batchSize * 2) : this.host.policy.batchSize;
      const sending: Promise<void> = this.send(loop, batch, keys).finally(() => {
        loop.inFlight.delete(sending);
        for (const key of keys) loop.busy.delete(key);
        this.afterBatch(loop);
      });
      loop.inFlight.add(sending);
    }
  }

  /**
   * Records for one batch: from the keys that wait longest, skipping keys already in flight. A
   * cursor that moved past records meant only for other sinks is journaled as settled too.
   */
  private gather(loop: SinkLoop): { batch: OutboxRecord[]; keys: string[] } {
    const batch: OutboxRecord[] = [];
    const keys: string[] = [];
    const skipped: Settlement[] = [];
    const sink = loop.channel.name;
    for (const key of this.backlogged) {
      if (batch.length >= loop.batchSize) break;
      if (loop.busy.has(key)) continue;
      const { outbox } = this.host.actor(key);
      if (outbox.backlog() === 0) {
        this.backlogged.delete(key);
        continue;
      }
      const before = outbox.position(sink);
      const records = outbox.pending(sink, loop.batchSize - batch.length);
      if (outbox.position(sink) > before) skipped.push({ key, from: before, upTo: outbox.position(sink), dead: [] });
      if (!records.length) continue;
      for (const r of records) batch.push(r);
      keys.push(key);
      loop.busy.add(key);
    }
    if (skipped.length) this.host.settle(sink, skipped, this.host.clock.now());
    return { batch, keys };
  }

  private async send(loop: SinkLoop, batch: OutboxRecord[], keys: string[]): Promise<void> {
    const observer = this.host.observer;
    const startedMs = observer ? observer.elapsedMs() : 0;
    const before = observer?.sinkTrouble ? loop.channel.status() : undefined;
    const outcomes = await loop.channel.deliver(batch, () => this.host.clock.now());
    if (observer) {
      observer.delivery(loop.channel.name, observer.elapsedMs() - startedMs, batch.length);
      if (before) this.reportTrouble(loop.channel, before, observer);
    }
    const settled = settlements(batch, outcomes);
    if (settled.length) this.host.settle(loop.channel.name, settled, this.host.clock.now());
    // Keys whose records every sink has taken leave the backlog; the others go to its end, so the
    // next batches start with keys that waited longer.
    for (const key of keys) {
      if (!this.backlogged.delete(key)) continue;
      if (this.host.actor(key).outbox.backlog() > 0) this.backlogged.add(key);
    }
  }

  private afterBatch(loop: SinkLoop): void {
    if (this.stopped) return;
    const sink = loop.channel.name;
    let waiting = false;
    for (const key of this.backlogged) {
      if (!loop.busy.has(key) && this.host.actor(key).outbox.backlog(sink) > 0) {
        waiting = true;
        break;
      }
    }
    if (waiting) this.schedule(loop, Math.max(loop.channel.readyAt(), this.host.clock.now()));
  }

  private schedule(loop: SinkLoop, at: number): void {
    if (this.stopped || at >= loop.timerAt) return;
    if (loop.timer !== undefined) this.host.timers.clearTimeout(loop.timer);
    loop.timerAt = at;
    loop.timer = this.host.timers.setTimeout(() => {
      loop.timer = undefined;
      loop.timerAt = Infinity;
      this.fill(loop);
    }, Math.max(0, at - this.host.clock.now()));
  }
}

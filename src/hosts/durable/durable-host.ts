import { Actor, type IngestOutcome } from "../../actor/actor.ts";
import { render, type ActorView, type DeadLetterView, type LateView, type OutboxView, type WindowView } from "../../http/views.ts";
import type { AlertRecordView } from "../../delivery/records.ts";
import { assert } from "../../ports/assert.ts";
import type { Clock } from "../../ports/clock.ts";
import type { Config } from "../../settings/config.ts";
import { troubleBetween, type SinkChannel, type SinkTrouble } from "../../delivery/channel.ts";
import { BackpressureError } from "../../actor/errors.ts";
import type { Event } from "../../actor/event.ts";
import { applySettlement, settlements } from "../../delivery/settle.ts";
import { DURABLE_ROW } from "../../actor/layout.ts";
import { listRelative, type KvStore } from "../../ports/kv-store.ts";
import type { AlarmStorage } from "../../ports/alarms.ts";
import type { WindowQuery } from "../../actor/windows.ts";
import type { Timers } from "../../ports/timers.ts";
import { LiveFeed, type LiveSubscriber } from "../../live/feed.ts";
import { liveStream } from "../../live/sse.ts";

/** Cloudflare stops retrying a failing alarm after 6 retries; the last one arms a fallback first. */
export const ALARM_MAX_RETRIES = 6;
const ALARM_FALLBACK_MS = 60_000;

export type IngestResult = { outcomes: IngestOutcome[] } | { backpressure: { retryAfterSeconds: number } };

/** What the simulator's checker is told; it changes nothing. */
export interface DurableHostHooks {
  ingestCommitted?(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[], now: number, actor: Actor): void;
  tickCommitted?(key: string, now: number, actor: Actor): void;
  deliveryCommitted?(key: string, actor: Actor): void;
  /** A named code path was taken (for the simulator's coverage counters). */
  path?(name: string): void;
}

export interface DurableHostOptions {
  config: Config;
  clock: Clock;
  /** The object's own storage (one SQLite database per object on Cloudflare). */
  store: KvStore;
  alarms: AlarmStorage;
  /** One channel per sink: its breaker and backoff belong to this object. */
  channels: SinkChannel[];
  hooks?: DurableHostHooks;
  /** For live views' keepalives; without timers the object serves none. */
  timers?: Timers;
  /** A delivery failed and/or a sink's breaker changed state (logged at warn). */
  sinkTrouble?(sink: string, trouble: SinkTrouble): void;
}

/** An alarm gave up on outcomes computed on an actor that was dropped meanwhile; the alarm is retried. */
export class StaleActorError extends Error {
  override name = "StaleActorError";
}

/**
 * The logic of one key's Durable Object, free of Cloudflare APIs: actors/key-actor.ts wraps it
 * for workerd, the simulator (src/sim/durable.ts) runs it as it is. Each call runs synchronously up
 * to its storage commit, so calls never interleave there; a method that also sets the alarm
 * returns that step as `scheduled`, for the caller to await. The single alarm is set to the
 * earliest time any part of the actor has work: a window to close, or records to deliver to a sink.
 */
export class DurableHost {
  private actor: Actor | undefined;
  private alarmAt: number | null = null;
  /** The key's live view, from its first watcher while the object stays in memory. */
  private feed: LiveFeed | undefined;

  constructor(private readonly opts: DurableHostOptions) {}

  /** The alarm found in storage when the object starts. */
  knownAlarm(at: number | null): void {
    this.alarmAt = at;
  }

  /** Whether `key` has no durable state yet (its first event would create it). */
  isNew(key: string): boolean {
    return this.load(key).isNew;
  }

  /** The actor in memory, if any. */
  get loaded(): Actor | undefined {
    return this.actor;
  }

  ingest(key: string, events: Event[]): { result: IngestResult; scheduled: void | Promise<void> } {
    const actor = this.load(key);
    const firstUse = actor.isNew;
    const now = this.opts.clock.now();
    let outcomes: IngestOutcome[];
    try {
      outcomes = actor.ingest(events, now);
    } catch (error) {
      if (error instanceof BackpressureError) {
        return { result: { backpressure: { retryAfterSeconds: error.retryAfterSeconds } }, scheduled: this.alarmOnBackpressure(actor) };
      }
      throw error;
    }
    this.commit(actor, firstUse ? [[DURABLE_ROW.key, key]] : []);
    this.opts.hooks?.ingestCommitted?.(key, events, outcomes, now, actor);
    return { result: { outcomes }, scheduled: this.scheduleAlarm(actor, now + this.opts.config.sinkMaxDelayMs) };
  }

  /** Puts dead letters back in the outbox for their sink. */
  replay(key: string, filter: { sink?: string; ids?: number[] }): { result: { replayed: number } | null; scheduled?: void | Promise<void> } {
    const actor = this.load(key);
    if (actor.isNew) return { result: null };
    const replayed = actor.outbox.replay(filter);
    this.commit(actor, []);
    this.opts.hooks?.deliveryCommitted?.(key, actor);
    return { result: { replayed }, scheduled: this.scheduleAlarm(actor, this.opts.clock.now()) };
  }

  state(key: string): ActorView | null {
    const actor = this.load(key);
    return actor.isNew ? null : render.state(actor);
  }

  windows(key: string, query: WindowQuery): WindowView[] | null {
    const actor = this.load(key);
    return actor.isNew ? null : render.windows(actor, query);
  }

  alerts(key: string): AlertRecordView[] | null {
    const actor = this.load(key);
    return actor.isNew ? null : render.alerts(actor);
  }

  late(key: string): LateView[] | null {
    const actor = this.load(key);
    return actor.isNew ? null : render.late(actor);
  }

  deadLetters(key: string): DeadLetterView[] | null {
    const actor = this.load(key);
    return actor.isNew ? null : render.deadLetters(actor);
  }

  outbox(key: string): OutboxView | null {
    const actor = this.load(key);
    return actor.isNew ? null : render.outbox(actor, this.opts.channels);
  }

  /** The key's live view as server-sent events, from now on (or resumed after `lastEventId`). */
  live(key: string, lastEventId: string | null): ReadableStream<Uint8Array> {
    const { timers, config } = this.opts;
    assert(timers !== undefined, "a host serving live views has timers");
    return liveStream(this.liveFeed(key), { lastEventId, timers, maxQueued: config.liveMaxQueued });
  }

  /** The key's live feed, made on its first watcher (the object's WebSockets subscribe to it). */
  liveFeed(key: string): LiveFeed {
    if (!this.feed) {
      // The object's start time tells its numbering apart from an earlier incarnation's.
      this.feed = new LiveFeed(this.opts.clock.now().toString(36), this.opts.config.liveRetain);
      if (this.actor) this.actor.live = this.feed;
    }
    this.load(key);
    return this.feed;
  }

  /** `subscriber` is told of the key's live items from now on; returns how to stop. */
  watch(key: string, subscriber: LiveSubscriber): () => void {
    return this.liveFeed(key).subscribe(subscriber);
  }

  /** Alarms are at-least-once: tick() and delivery are idempotent, so a repeated alarm is harmless. */
  async alarm(retryCount: number): Promise<void> {
    const { clock, hooks } = this.opts;
    this.alarmAt = null;
    // An alarm wake carries no request and no name: the key comes from storage.
    const key = this.opts.store.get(DURABLE_ROW.key);
    if (key === undefined) return;
    // After its last retry Cloudflare drops a failing alarm, and nothing would wake a quiet key
    // again: arm a fallback first; a run that succeeds replaces it with the exact next time.
    const lastChance = this.armsFallback(retryCount);
    if (lastChance) {
      hooks?.path?.("alarm_fallback");
      this.alarmAt = clock.now() + ALARM_FALLBACK_MS;
      await this.opts.alarms.setAlarm(this.alarmAt);
    }
    const actor = this.load(key);
    const now = clock.now();
    actor.tick(now);
    this.commit(actor, []);
    hooks?.tickCommitted?.(key, now, actor);
    await Promise.all(this.opts.channels.map((channel) => this.deliver(actor, channel)));
    if (this.isStale(actor)) {
      hooks?.path?.("alarm_stale_actor");
      throw new StaleActorError("actor memory was reset while the alarm awaited its sinks; retrying the alarm");
    }
    this.commit(actor, []);
    hooks?.deliveryCommitted?.(key, actor);
    // Records that arrived while the batch was in flight go out at once.
    await this.scheduleAlarm(actor, clock.now(), lastChance);
  }

  // Three fixes the simulator found, each a seam so that src/sim can take it out again and show
  // the bug it fixed (bun run simulate --glue unfixed).

  /** The records holding this key back must have an alarm, even if the last one gave up. */
  protected alarmOnBackpressure(actor: Actor): void | Promise<void> {
    return this.scheduleAlarm(actor);
  }

  /** Whether this run is an alarm's last allowed retry, which arms a fallback alarm first. */
  protected armsFallback(retryCount: number): boolean {
    return retryCount >= ALARM_MAX_RETRIES;
  }

  /**
   * A commit failed while the sinks were awaited: memory was dropped, and `actor` holds writes
   * that never reached storage. Committing it would bring them back; redeliver on the retry instead.
   */
  protected isStale(actor: Actor): boolean {
    return this.actor !== actor;
  }

  private async deliver(actor: Actor, channel: SinkChannel): Promise<void> {
    const { clock, config } = this.opts;
    if (clock.now() < channel.readyAt()) return;
    const batch = actor.outbox.pending(channel.name, config.delivery.batchSize);
    if (!batch.length) return;
    const before = this.opts.sinkTrouble ? channel.status() : undefined;
    const outcomes = await channel.deliver(batch, () => clock.now());
    const trouble = before && troubleBetween(before, channel.status());
    if (trouble) this.opts.sinkTrouble!(channel.name, trouble);
    for (const settlement of settlements(batch, outcomes)) applySettlement(actor.outbox, channel.name, settlement, clock.now());
  }

  private load(key: string): Actor {
    if (this.actor) {
      assert(this.actor.key === key, "a Durable Object hosts the actor of one key");
      return this.actor;
    }
    const rows = listRelative(this.opts.store, DURABLE_ROW.actorPrefix);
    const actor = Actor.restore(key, this.opts.config, rows, this.opts.clock.now());
    actor.live = this.feed;
    // Only a key with durable state is kept; a read of an unknown key must not pin one.
    if (!actor.isNew) this.actor = actor;
    return actor;
  }

  private commit(actor: Actor, extra: Array<[string, string]>): void {
    const { puts, deletes } = actor.drainWrites();
    try {
      this.opts.store.write([...extra, ...puts.map(([k, v]): [string, string] => [DURABLE_ROW.actorPrefix + k, v])], deletes.map((k) => DURABLE_ROW.actorPrefix + k));
    } catch (error) {
      // Memory is now ahead of storage: drop it, so the next call reloads what is durable.
      this.actor = undefined;
      actor.live?.discard();
      throw error;
    }
    actor.outbox.markDurable();
    actor.live?.publish();
    this.actor = actor;
  }

  /**
   * The one alarm goes to the earliest entry of the actor's schedule: its next window work, and,
   * while records wait for a sink, that sink's next try (`deliverBy` when new records just arrived).
   * `exact` (the end of an alarm's last retry): set the computed time, or none, replacing the fallback.
   */
  protected scheduleAlarm(actor: Actor, deliverBy?: number, exact = false): void | Promise<void> {
    const { clock, config, alarms } = this.opts;
    const times: number[] = [];
    const wake = actor.nextWake();
    if (wake !== null) times.push(wake);
    for (const channel of this.opts.channels) {
      if (actor.outbox.backlog(channel.name) === 0) continue;
      times.push(Math.max(channel.readyAt(), deliverBy ?? clock.now() + config.sinkMaxDelayMs));
    }
    if (!times.length) {
      if (exact && this.alarmAt !== null) {
        this.alarmAt = null;
        return alarms.deleteAlarm();
      }
      return;
    }
    const at = Math.min(...times);
    if (!exact && this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    return alarms.setAlarm(at);
  }
}

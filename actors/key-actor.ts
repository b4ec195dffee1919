import { DurableObject } from "cloudflare:workers";
import { Actor, type IngestOutcome } from "../src/core/actor.ts";
import { read, type ActorView, type DeadLetterView, type LateView, type OutboxView, type WindowView } from "../src/core/backend.ts";
import { assert } from "../src/core/clock.ts";
import { configFromEnv, type Config } from "../src/core/config.ts";
import { SinkChannel } from "../src/core/delivery.ts";
import { BackpressureError } from "../src/core/errors.ts";
import type { Event } from "../src/core/event.ts";
import { settle } from "../src/core/local-delivery.ts";
import type { WindowQuery } from "../src/core/views.ts";
import { DurableObjectKvStore } from "../src/adapter/workers/do-store.ts";
import { stringVars, type WorkerEnv } from "../src/adapter/workers/env.ts";
import { systemEnv } from "../src/host/system.ts";
import { createSinks, sinkSettings } from "../src/sinks/settings.ts";

const ACTOR_ROWS = "a/";
const KEY_ROW = "key";
/** Cloudflare stops retrying a failing alarm after 6 retries; the last one arms a fallback first. */
const ALARM_MAX_RETRIES = 6;
const ALARM_FALLBACK_MS = 60_000;

export type IngestResult = { outcomes: IngestOutcome[] } | { backpressure: { retryAfterSeconds: number } };

/**
 * One key's actor as a SQLite-backed Durable Object: thin glue over the portable core.
 * Each RPC method runs synchronously up to its storage commit, so calls never interleave; the
 * output gate releases the reply only once the commit (dedupe IDs, aggregates, outbox, key) is durable.
 * Its single alarm is set to the earliest time any part of the actor has work: a window to close,
 * or records to deliver to the sinks (each sink with its own backoff and circuit breaker).
 */
export class KeyActor extends DurableObject<WorkerEnv> {
  private readonly config: Config;
  private readonly store: DurableObjectKvStore;
  private readonly channels: SinkChannel[];
  private actor: Actor | undefined;
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    const vars = stringVars(env);
    const sinks = createSinks(sinkSettings(vars), { poolPerDelivery: true });
    this.config = { ...configFromEnv(vars), sinks: sinks.map((s) => s.name) };
    this.channels = sinks.map((sink) => new SinkChannel(sink, this.config.delivery, systemEnv.random));
    this.store = new DurableObjectKvStore(ctx.storage);
    void ctx.blockConcurrencyWhile(async () => {
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  async ingest(key: string, events: Event[]): Promise<IngestResult> {
    const actor = this.load(key);
    const firstUse = actor.isNew;
    let outcomes: IngestOutcome[];
    try {
      outcomes = actor.ingest(events, Date.now());
    } catch (error) {
      if (error instanceof BackpressureError) {
        // The records holding this key back must have an alarm, even if the last one gave up.
        await this.scheduleAlarm(actor);
        return { backpressure: { retryAfterSeconds: error.retryAfterSeconds } };
      }
      throw error;
    }
    this.commit(actor, firstUse ? [[KEY_ROW, key]] : []);
    await this.scheduleAlarm(actor, Date.now() + this.config.sinkMaxDelay);
    return { outcomes };
  }

  async state(key: string): Promise<ActorView | null> {
    const actor = this.load(key);
    return actor.isNew ? null : read.state(actor);
  }

  async windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    const actor = this.load(key);
    return actor.isNew ? null : read.windows(actor, query);
  }

  async late(key: string): Promise<LateView[] | null> {
    const actor = this.load(key);
    return actor.isNew ? null : read.late(actor);
  }

  async deadLetters(key: string): Promise<DeadLetterView[] | null> {
    const actor = this.load(key);
    return actor.isNew ? null : read.deadLetters(actor);
  }

  async replay(key: string, filter: { sink?: string; ids?: number[] }): Promise<{ replayed: number } | null> {
    const actor = this.load(key);
    if (actor.isNew) return null;
    const replayed = actor.outbox.replay(filter);
    this.commit(actor, []);
    await this.scheduleAlarm(actor, Date.now());
    return { replayed };
  }

  async outbox(key: string): Promise<OutboxView | null> {
    const actor = this.load(key);
    return actor.isNew ? null : read.outbox(actor, this.channels);
  }

  /** Alarms are at-least-once: tick() and delivery are idempotent, so a repeated alarm is harmless. */
  override async alarm(info?: AlarmInvocationInfo): Promise<void> {
    this.alarmAt = null;
    // An alarm wake carries no request and no name: the key comes from storage.
    const key = this.store.list(KEY_ROW).find(([k]) => k === KEY_ROW)?.[1];
    if (key === undefined) return;
    // After its last retry Cloudflare drops a failing alarm, and nothing would wake a quiet key
    // again: arm a fallback first; a run that succeeds replaces it with the exact next time.
    const lastChance = (info?.retryCount ?? 0) >= ALARM_MAX_RETRIES;
    if (lastChance) {
      this.alarmAt = Date.now() + ALARM_FALLBACK_MS;
      await this.ctx.storage.setAlarm(this.alarmAt);
    }
    const actor = this.load(key);
    actor.tick(Date.now());
    this.commit(actor, []);
    await Promise.all(this.channels.map((channel) => this.deliver(actor, channel)));
    if (this.actor !== actor) {
      // A commit failed while the sinks were awaited: memory was dropped, and `actor` holds writes
      // that never reached storage. Committing it would bring them back; redeliver on the retry instead.
      throw new Error("actor memory was reset while the alarm awaited its sinks; retrying the alarm");
    }
    this.commit(actor, []);
    // Records that arrived while the batch was in flight go out at once.
    await this.scheduleAlarm(actor, Date.now(), lastChance);
  }

  private async deliver(actor: Actor, channel: SinkChannel): Promise<void> {
    if (Date.now() < channel.readyAt()) return;
    const batch = actor.outbox.pending(channel.name, this.config.delivery.batchSize);
    if (!batch.length) return;
    const outcomes = await channel.deliver(batch, () => Date.now());
    settle(channel.name, batch, batch.map(() => actor), outcomes, Date.now(), () => undefined);
  }

  private load(key: string): Actor {
    if (this.actor) {
      assert(this.actor.key === key, "a Durable Object hosts the actor of one key");
      return this.actor;
    }
    const rows = this.store.list(ACTOR_ROWS).map(([k, v]): [string, string] => [k.slice(ACTOR_ROWS.length), v]);
    const actor = Actor.restore(key, this.config, rows, Date.now());
    // Only a key with durable state is kept; a read of an unknown key must not pin one.
    if (!actor.isNew) this.actor = actor;
    return actor;
  }

  private commit(actor: Actor, extra: Array<[string, string]>): void {
    const { puts, deletes } = actor.drainWrites();
    try {
      this.store.write([...extra, ...puts.map(([k, v]): [string, string] => [ACTOR_ROWS + k, v])], deletes.map((k) => ACTOR_ROWS + k));
    } catch (error) {
      // Memory is now ahead of storage: drop it, so the next call reloads what is durable.
      this.actor = undefined;
      throw error;
    }
    this.actor = actor;
  }

  /**
   * The one alarm goes to the earliest entry of the actor's schedule: its next window work, and,
   * while records wait for a sink, that sink's next try (`deliverBy` when new records just arrived).
   */
  private async scheduleAlarm(actor: Actor, deliverBy?: number, replaceFallback = false): Promise<void> {
    const times: number[] = [];
    const wake = actor.nextWake();
    if (wake !== null) times.push(wake);
    for (const channel of this.channels) {
      if (actor.outbox.backlog(channel.name) === 0) continue;
      times.push(Math.max(channel.readyAt(), deliverBy ?? Date.now() + this.config.sinkMaxDelay));
    }
    if (!times.length) {
      if (replaceFallback && this.alarmAt !== null) {
        this.alarmAt = null;
        await this.ctx.storage.deleteAlarm();
      }
      return;
    }
    const at = Math.min(...times);
    if (!replaceFallback && this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }
}

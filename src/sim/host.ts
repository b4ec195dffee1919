import { Actor, type IngestOutcome } from "../core/actor.ts";
import { assert } from "../core/clock.ts";
import { SinkChannel } from "../core/delivery.ts";
import { BackpressureError } from "../core/errors.ts";
import type { Event } from "../core/event.ts";
import { settle } from "../core/local-delivery.ts";
import type { OutboxRecord } from "../core/outbox.ts";
import { MemoryKvStore, type KvStore } from "../core/storage.ts";
import type { SimContext } from "./context.ts";
import type { SimSink } from "./sinks.ts";

/** The same layout as actors/key-actor.ts. */
export const ACTOR_ROWS = "a/";
export const KEY_ROW = "key";

/** Cloudflare's alarm retry policy: a handler that throws is retried with backoff from 2 s, doubling, up to 6 times. */
export const ALARM_RETRY_BASE = 2_000;
export const ALARM_MAX_RETRIES = 6;
/** The fixed glue's safety alarm while the last allowed retry of an alarm runs. */
export const ALARM_FALLBACK = 60_000;

export class SimStorageError extends Error {
  override name = "SimStorageError";
}

/** A Durable Object's own storage: durable across crashes; a write may fail (fault), atomically. */
export class SimStore implements KvStore {
  readonly inner = new MemoryKvStore();
  writes = 0;

  constructor(private readonly ctx: SimContext) {}

  list(prefix: string): Array<[string, string]> {
    return this.inner.list(prefix);
  }

  write(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): void {
    const { ctx } = this;
    if (ctx.faultsOn && ctx.prng.chance(ctx.plan.storageFail)) {
      ctx.counters.fault("storage_fail");
      throw new SimStorageError("simulated storage failure: transaction aborted");
    }
    this.writes++;
    this.inner.write(puts, deletes);
  }

  close(): void {}
}

/** The fixed glue's alarm gives up on outcomes computed on a dropped actor; the alarm is retried. */
export class StaleActorError extends Error {
  override name = "StaleActorError";
}

export type IngestResult = { outcomes: IngestOutcome[] } | { backpressure: { retryAfterSeconds: number } };

/**
 * One in-memory life of a KeyActor Durable Object: a line-by-line port of actors/key-actor.ts
 * (ingest, alarm, deliver, load, commit, scheduleAlarm) with the simulator's clock, storage,
 * alarm slot and sinks in place of Date.now() and ctx.storage. The observer calls report what
 * committed; they change nothing. A crash abandons the instance: its pending sink responses never arrive.
 */
export class KeyActorInstance {
  private actor: Actor | undefined;
  private alarmAt: number | null;
  readonly channels: SinkChannel[];
  alive = true;
  /** Sink calls in flight (to tell a crash mid-delivery). */
  inflight = 0;

  constructor(
    private readonly host: SimDurableObject,
    private readonly ctx: SimContext,
    sinks: readonly SimSink[],
  ) {
    this.channels = sinks.map((sink) => new SinkChannel(this.proxy(sink), ctx.config.delivery, ctx.prng));
    // The constructor's blockConcurrencyWhile(getAlarm()).
    this.alarmAt = host.getAlarm();
  }

  /** The sink as this instance sees it: calls from a dead instance get no answer. */
  private proxy(sink: SimSink) {
    const caller = {
      key: this.host.id,
      alive: () => this.alive,
      sent: (latency: number) => this.host.sinkCallSent(this, latency),
    };
    return {
      name: sink.name,
      deliver: async (records: OutboxRecord[]) => {
        this.inflight++;
        try {
          await sink.deliver(records, caller);
        } finally {
          this.inflight--;
        }
      },
    };
  }

  private now(): number {
    return this.ctx.sched.now();
  }

  /** An RPC: runs synchronously up to its commit (setAlarm is a storage op: no interleaving). */
  ingest(key: string, events: Event[]): IngestResult {
    const actor = this.load(key);
    const firstUse = actor.isNew;
    let outcomes: IngestOutcome[];
    try {
      outcomes = actor.ingest(events, this.now());
    } catch (error) {
      if (error instanceof BackpressureError) {
        // FIX B (now in actors/key-actor.ts; `--glue keyactor` runs the glue without it): make sure the records that hold the key back get an alarm.
        // Without it, a key whose alarm was dropped (6 failed retries) refuses every ingest forever.
        if (this.ctx.fixes.B) this.scheduleAlarm(actor);
        return { backpressure: { retryAfterSeconds: error.retryAfterSeconds } };
      }
      throw error;
    }
    this.commit(actor, firstUse ? [[KEY_ROW, key]] : []);
    this.ctx.observer.ingestCommitted(key, events, outcomes, this.now(), actor);
    this.scheduleAlarm(actor, this.now() + this.ctx.config.sinkMaxDelay);
    return { outcomes };
  }

  /** The DLQ replay RPC: dead letters go back to the outbox, for their sink only. */
  replay(key: string, filter: { sink?: string; ids?: number[] }): { replayed: number } | null {
    const actor = this.load(key);
    if (actor.isNew) return null;
    const replayed = actor.outbox.replay(filter);
    this.commit(actor, []);
    this.ctx.observer.deliveryCommitted(key, actor);
    this.scheduleAlarm(actor, this.now());
    return { replayed };
  }

  /** Alarms are at-least-once: tick() and delivery are idempotent, so a repeated alarm is harmless. */
  async alarm(info: { retryCount: number; isRetry: boolean }): Promise<void> {
    this.alarmAt = null;
    // An alarm wake carries no request and no name: the key comes from storage.
    const key = this.host.store.list(KEY_ROW).find(([k]) => k === KEY_ROW)?.[1];
    if (key === undefined) return;
    // FIX C (now in actors/key-actor.ts; `--glue keyactor` runs the glue without it): Cloudflare gives up on an alarm after 6 failed retries, and
    // nothing would wake a quiet key again. On the last retry, arm a fallback alarm first, so even a
    // failing run comes back; when the run succeeds it sets the exact next alarm (or none).
    const lastChance = this.ctx.fixes.C && info.retryCount >= ALARM_MAX_RETRIES;
    if (lastChance) {
      this.ctx.counters.path("alarm_fallback");
      this.alarmAt = this.now() + ALARM_FALLBACK;
      this.host.setAlarm(this.alarmAt);
    }
    const actor = this.load(key);
    const now = this.now();
    actor.tick(now);
    this.commit(actor, []);
    this.ctx.observer.tickCommitted(key, now, actor);
    await Promise.all(this.channels.map((channel) => this.deliver(actor, channel)));
    if (this.ctx.fixes.A && this.actor !== actor) {
      // FIX A (now in actors/key-actor.ts; `--glue keyactor` runs the glue without it): a commit failed while this handler awaited the sinks, so memory
      // was dropped and `actor` is ahead of storage (it holds writes that were drained but never stored).
      // Committing it would reinstate it. Drop these delivery outcomes (redelivery is idempotent) and retry.
      this.ctx.counters.path("alarm_stale_actor");
      throw new StaleActorError("actor memory was reset while the alarm awaited its sinks");
    }
    this.commit(actor, []);
    this.ctx.observer.deliveryCommitted(key, actor);
    // Records that arrived while the batch was in flight go out at once.
    this.scheduleAlarm(actor, this.now(), lastChance);
  }

  private async deliver(actor: Actor, channel: SinkChannel): Promise<void> {
    if (this.now() < channel.readyAt()) return;
    const batch = actor.outbox.pending(channel.name, this.ctx.config.delivery.batchSize);
    if (!batch.length) return;
    const outcomes = await channel.deliver(batch, () => this.now());
    settle(channel.name, batch, batch.map(() => actor), outcomes, this.now(), () => undefined);
  }

  private load(key: string): Actor {
    if (this.actor) {
      assert(this.actor.key === key, "a Durable Object hosts the actor of one key");
      return this.actor;
    }
    const rows = this.host.store.list(ACTOR_ROWS).map(([k, v]): [string, string] => [k.slice(ACTOR_ROWS.length), v]);
    const actor = Actor.restore(key, this.ctx.config, rows, this.now());
    // Only a key with durable state is kept; a read of an unknown key must not pin one.
    if (!actor.isNew) this.actor = actor;
    return actor;
  }

  private commit(actor: Actor, extra: Array<[string, string]>): void {
    const { puts, deletes } = actor.drainWrites();
    try {
      this.host.store.write([...extra, ...puts.map(([k, v]): [string, string] => [ACTOR_ROWS + k, v])], deletes.map((k) => ACTOR_ROWS + k));
    } catch (error) {
      // Memory is now ahead of storage: drop it, so the next call reloads what is durable.
      this.actor = undefined;
      throw error;
    }
    this.actor = actor;
  }

  /** `exact` (fixed glue, end of an alarm's last retry): set the alarm to the computed time, or delete it, replacing the fallback. */
  private scheduleAlarm(actor: Actor, deliverBy?: number, exact = false): void {
    const times: number[] = [];
    const wake = actor.nextWake();
    if (wake !== null) times.push(wake);
    for (const channel of this.channels) {
      if (actor.outbox.backlog(channel.name) === 0) continue;
      times.push(Math.max(channel.readyAt(), deliverBy ?? this.now() + this.ctx.config.sinkMaxDelay));
    }
    if (!times.length) {
      if (exact && this.alarmAt !== null) {
        this.alarmAt = null;
        this.host.deleteAlarm();
      }
      return;
    }
    const at = Math.min(...times);
    if (!exact && this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    this.host.setAlarm(at);
  }

  /** The actor in memory, if any (for the checker's bounds). */
  get loaded(): Actor | undefined {
    return this.actor;
  }
}

interface AlarmSlot {
  at: number;
  /** Failed runs so far of this alarm (0 for a fresh setAlarm). */
  retries: number;
  version: number;
}

export type RequestResult = { ok: IngestOutcome[] } | { error: "storage" | "crash" } | { backpressure: number };

/**
 * The Durable Object runtime around one key: storage and the single alarm slot persist; the
 * instance (memory) comes and goes. Handlers are serialized: an RPC runs whole between two steps;
 * an alarm handler may await sink I/O, and other events (RPCs, crashes) run at those await points.
 * Two alarm handlers never overlap; an alarm due meanwhile fires once the running one is done.
 */
export class SimDurableObject {
  readonly store: SimStore;
  instance: KeyActorInstance | undefined;
  private slot: AlarmSlot | null = null;
  private nextVersion = 0;
  /** The alarm handler in progress: its instance and how many times this alarm had failed. */
  private running: { instance: KeyActorInstance; retries: number; slotSet: boolean } | undefined;
  coldStarts = 0;

  constructor(
    readonly id: string,
    private readonly ctx: SimContext,
    private readonly sinks: readonly SimSink[],
  ) {
    this.store = new SimStore(ctx);
  }

  getAlarm(): number | null {
    return this.slot?.at ?? null;
  }

  /** setAlarm replaces the one alarm; an alarm in the past fires at once. */
  setAlarm(at: number): void {
    this.slot = { at, retries: 0, version: this.nextVersion++ };
    if (this.running) this.running.slotSet = true;
    this.armSlot();
  }

  deleteAlarm(): void {
    this.slot = null;
    if (this.running) this.running.slotSet = true;
  }

  get alarmPending(): boolean {
    return this.slot !== null || this.running !== undefined;
  }

  private armSlot(): void {
    const slot = this.slot;
    if (!slot) return;
    this.ctx.sched.at(slot.at, "alarm", this.id, () => this.fire(slot.version));
  }

  private coldStart(): KeyActorInstance {
    this.coldStarts++;
    this.ctx.counters.path("cold_start");
    this.instance = new KeyActorInstance(this, this.ctx, this.sinks);
    return this.instance;
  }

  /** A client's ingest RPC for this key. */
  request(events: Event[]): RequestResult {
    const { ctx } = this;
    const instance = this.instance ?? this.coldStart();
    if (this.running) ctx.counters.path("ingest_during_delivery");
    let result: IngestResult;
    try {
      result = instance.ingest(this.id, events);
    } catch (error) {
      if (error instanceof SimStorageError) return { error: "storage" };
      throw error;
    }
    if ("backpressure" in result) {
      ctx.counters.path("backpressure");
      return { backpressure: result.backpressure.retryAfterSeconds };
    }
    if (ctx.faultsOn && ctx.prng.chance(ctx.plan.crashAfterCommit)) {
      ctx.counters.fault("crash_after_commit");
      this.crash();
      return { error: "crash" };
    }
    return { ok: result.outcomes };
  }

  /** An operator's DLQ replay RPC for this key (all sinks). */
  replayDeadLetters(): number | "storage" | null {
    const instance = this.instance ?? this.coldStart();
    try {
      return instance.replay(this.id, {})?.replayed ?? null;
    } catch (error) {
      if (error instanceof SimStorageError) return "storage";
      throw error;
    }
  }

  private fire(version: number): void {
    const slot = this.slot;
    if (!slot || slot.version !== version || slot.at > this.ctx.sched.now()) return;
    // Alarm handlers do not overlap: this one runs when the current one is done.
    if (this.running) {
      this.ctx.counters.path("alarm_deferred");
      return;
    }
    this.slot = null;
    this.ctx.counters.path("alarm_fired");
    const instance = this.instance ?? this.coldStart();
    const run = { instance, retries: slot.retries, slotSet: false };
    this.running = run;
    instance.alarm({ retryCount: slot.retries, isRetry: slot.retries > 0 }).then(
      () => this.alarmDone(run, undefined),
      (error: unknown) => this.alarmDone(run, error ?? new Error("alarm failed")),
    );
  }

  private alarmDone(run: { instance: KeyActorInstance; retries: number; slotSet: boolean }, error: unknown): void {
    if (this.running !== run) return; // the instance crashed meanwhile: handled by crash()
    this.running = undefined;
    if (error !== undefined) {
      if (!(error instanceof SimStorageError) && !(error instanceof StaleActorError)) {
        this.ctx.observer.violation(`alarm handler of ${JSON.stringify(this.id)} threw: ${(error as Error)?.stack ?? error}`);
        return;
      }
      this.retry(run);
    }
    // An alarm that came due while this handler ran fires now.
    if (this.slot && this.slot.at <= this.ctx.sched.now()) this.armSlot();
  }

  /** At-least-once: a failed alarm comes back with backoff, unless a new alarm was set meanwhile. */
  private retry(run: { retries: number; slotSet: boolean }): void {
    if (this.slot && run.slotSet) return;
    if (run.retries >= ALARM_MAX_RETRIES) {
      this.ctx.counters.path("alarm_dropped");
      return;
    }
    this.ctx.counters.path("alarm_retry");
    const at = this.ctx.sched.now() + ALARM_RETRY_BASE * 2 ** run.retries;
    this.slot = { at, retries: run.retries + 1, version: this.nextVersion++ };
    this.armSlot();
  }

  /** The instance dies: memory, channels and in-flight responses are gone; storage and the alarm remain. */
  crash(): void {
    const instance = this.instance;
    if (!instance) return;
    instance.alive = false;
    this.instance = undefined;
    const run = this.running;
    if (run) {
      if (instance.inflight > 0) this.ctx.counters.fault("crash_mid_delivery");
      this.running = undefined;
      this.retry(run);
      if (this.slot && this.slot.at <= this.ctx.sched.now()) this.armSlot();
    }
  }

  /** Eviction of an idle instance (never one with a handler in progress). */
  evict(): boolean {
    if (!this.instance || this.running) return false;
    this.instance.alive = false;
    this.instance = undefined;
    return true;
  }

  /** A sink call went out from `instance`: maybe crash inside its latency (fault). */
  sinkCallSent(instance: KeyActorInstance, latency: number): void {
    const { ctx } = this;
    if (!ctx.faultsOn || !ctx.prng.chance(ctx.plan.crashMidDelivery)) return;
    ctx.sched.after(ctx.prng.int(latency), "crash.mid", this.id, () => {
      if (this.instance !== instance || !ctx.faultsOn) return;
      ctx.counters.fault("crash");
      this.crash();
    });
  }
}

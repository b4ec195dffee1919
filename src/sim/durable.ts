import { Actor } from "../actor/actor.ts";
import { DURABLE_ROW } from "../actor/layout.ts";
import { DurableHost, ALARM_MAX_RETRIES, StaleActorError, type DurableHostOptions, type IngestResult } from "../hosts/durable/durable-host.ts";
import { SinkChannel } from "../delivery/channel.ts";
import type { Event } from "../actor/event.ts";
import type { OutboxRecord } from "../actor/outbox.ts";
import type { Fixes, SimContext } from "./context.ts";
import type { PathKind } from "./faults.ts";
import { SimStorageError, SimStore } from "./store.ts";
import { listRelative } from "../ports/kv-store.ts";
import type { RequestResult, SimHost } from "./sim-host.ts";
import type { SimSink } from "./sinks.ts";

/** Cloudflare's alarm retry policy: a handler that throws is retried with backoff from 2 s, doubling, up to 6 times (ALARM_MAX_RETRIES). */
export const ALARM_RETRY_BASE = 2_000;

/**
 * The real host (src/hosts/durable/durable-host.ts, which actors/key-actor.ts wraps) with some of the fixes
 * the simulator found taken out again, to show the bugs they fixed: `--glue unfixed` (none of them),
 * `unfixed+A`, `unfixed+A+B`, ... (only those).
 */
class UnfixedDurableHost extends DurableHost {
  constructor(
    opts: DurableHostOptions,
    private readonly fixes: Fixes,
  ) {
    super(opts);
  }
  protected override alarmOnBackpressure(actor: Actor): void | Promise<void> {
    return this.fixes.B ? super.alarmOnBackpressure(actor) : undefined;
  }
  protected override armsFallback(retryCount: number): boolean {
    return this.fixes.C && super.armsFallback(retryCount);
  }
  protected override isStale(actor: Actor): boolean {
    return this.fixes.A && super.isStale(actor);
  }
}

/**
 * One in-memory life of a KeyActor Durable Object: the DurableHost that actors/key-actor.ts wraps,
 * given the simulator's clock, storage, alarm slot and sinks in place of Date.now() and ctx.storage.
 * The hooks report what committed to the checker; they change nothing. A crash abandons the
 * instance: its pending sink responses never arrive.
 */
export class SimKeyActor {
  private readonly object: DurableHost;
  alive = true;
  /** Sink calls in flight (to tell a crash mid-delivery). */
  inflight = 0;

  constructor(
    private readonly host: SimDurableRuntime,
    ctx: SimContext,
    sinks: readonly SimSink[],
  ) {
    const { observer, counters } = ctx;
    const opts: DurableHostOptions = {
      config: ctx.config,
      clock: { now: () => ctx.sched.now() },
      store: host.store,
      alarms: { setAlarm: (at) => host.setAlarm(at), deleteAlarm: () => host.deleteAlarm() },
      channels: sinks.map((sink) => new SinkChannel(this.proxy(sink), ctx.config.delivery, ctx.prng)),
      hooks: {
        ingestCommitted: (...args) => observer.ingestCommitted(...args),
        tickCommitted: (...args) => observer.tickCommitted(...args),
        deliveryCommitted: (...args) => observer.deliveryCommitted(...args),
        path: (name) => counters.path(name as PathKind),
      },
    };
    const { A, B, C } = ctx.fixes;
    this.object = A && B && C ? new DurableHost(opts) : new UnfixedDurableHost(opts, ctx.fixes);
    // The constructor's blockConcurrencyWhile(getAlarm()).
    this.object.knownAlarm(host.getAlarm());
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

  /** An RPC: runs synchronously up to its commit (setAlarm is a storage op: no interleaving). */
  ingest(key: string, events: Event[]): IngestResult {
    return this.object.ingest(key, events).result;
  }

  /** The DLQ replay RPC: dead letters go back to the outbox, for their sink only. */
  replay(key: string, filter: { sink?: string; ids?: number[] }): { replayed: number } | null {
    return this.object.replay(key, filter).result;
  }

  alarm(info: { retryCount: number; isRetry: boolean }): Promise<void> {
    return this.object.alarm(info.retryCount);
  }

  /** The actor in memory, if any (for the checker's bounds). */
  get loaded(): Actor | undefined {
    return this.object.loaded;
  }
}

interface AlarmSlot {
  at: number;
  /** Failed runs so far of this alarm (0 for a fresh setAlarm). */
  retries: number;
  version: number;
}


/**
 * The Durable Object runtime around one key: storage and the single alarm slot persist; the
 * instance (memory) comes and goes. Handlers are serialized: an RPC runs whole between two steps;
 * an alarm handler may await sink I/O, and other events (RPCs, crashes) run at those await points.
 * Two alarm handlers never overlap; an alarm due meanwhile fires once the running one is done.
 */
export class SimDurableRuntime {
  readonly store: SimStore;
  instance: SimKeyActor | undefined;
  private slot: AlarmSlot | null = null;
  private nextVersion = 0;
  /** The alarm handler in progress: its instance and how many times this alarm had failed. */
  private running: { instance: SimKeyActor; retries: number; slotSet: boolean } | undefined;
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

  private coldStart(): SimKeyActor {
    this.coldStarts++;
    this.ctx.counters.path("cold_start");
    this.instance = new SimKeyActor(this, this.ctx, this.sinks);
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

  private alarmDone(run: { instance: SimKeyActor; retries: number; slotSet: boolean }, error: unknown): void {
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
  sinkCallSent(instance: SimKeyActor, latency: number): void {
    const { ctx } = this;
    if (!ctx.faultsOn || !ctx.prng.chance(ctx.plan.crashMidDelivery)) return;
    ctx.sched.after(ctx.prng.int(latency), "crash.mid", this.id, () => {
      if (this.instance !== instance || !ctx.faultsOn) return;
      ctx.counters.fault("crash");
      this.crash();
    });
  }
}

/** The Durable Object host under simulation: one SimDurableRuntime per key, as Cloudflare runs them. */
export class DurableSimHost implements SimHost {
  readonly kind = "durable";
  readonly objects: Map<string, SimDurableRuntime>;

  constructor(
    private readonly ctx: SimContext,
    sinks: readonly SimSink[],
    keys: readonly string[],
  ) {
    this.objects = new Map(keys.map((key) => [key, new SimDurableRuntime(key, ctx, sinks)]));
  }

  request(key: string, events: Event[]): RequestResult {
    return this.objects.get(key)!.request(events);
  }

  replayDeadLetters(key: string): number | "storage" | null {
    return this.objects.get(key)!.replayDeadLetters();
  }

  faultTargets(): string[] {
    return [...this.objects.keys()];
  }

  crash(key: string): boolean {
    const obj = this.objects.get(key)!;
    if (!obj.instance) return false;
    obj.crash();
    return true;
  }

  evict(key: string): boolean {
    return this.objects.get(key)!.evict();
  }

  storedRows(key: string): Array<[string, string]> {
    const prefix = DURABLE_ROW.actorPrefix;
    return listRelative(this.objects.get(key)!.store, prefix);
  }

  durable(key: string, now: number): Actor | undefined {
    const rows = this.storedRows(key);
    return rows.length ? Actor.restore(key, this.ctx.config, rows, now) : undefined;
  }

  live(key: string): Actor | undefined {
    return this.objects.get(key)!.instance?.loaded;
  }

  wakePending(key: string): boolean {
    return this.objects.get(key)!.alarmPending;
  }

  allRows(): Array<[string, string]> {
    const rows: Array<[string, string]> = [];
    for (const [key, obj] of this.objects) for (const [k, v] of obj.store.inner.list("")) rows.push([`${key}|${k}`, v]);
    return rows;
  }

  finish(): string | undefined {
    return undefined;
  }

  get stats() {
    let storageWrites = 0;
    let coldStarts = 0;
    for (const obj of this.objects.values()) {
      storageWrites += obj.store.writes;
      coldStarts += obj.coldStarts;
    }
    return { storageWrites, coldStarts };
  }
}

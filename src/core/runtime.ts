import { Actor, type IngestOutcome } from "./actor.ts";
import { read, type ActorBackend, type ActorView, type DeadLetterView, type LateView, type OutboxView, type WindowView } from "./backend.ts";
import type { Clock, Random } from "./clock.ts";
import type { Config } from "./config.ts";
import { SinkChannel, type Sink } from "./delivery.ts";
import { BackpressureError, StorageError } from "./errors.ts";
import { groupByKey, type Event } from "./event.ts";
import { LocalDelivery } from "./local-delivery.ts";
import { WakeSchedule } from "./schedule.ts";
import type { KvStore } from "./storage.ts";
import type { WindowQuery } from "./views.ts";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RuntimeOptions {
  store: KvStore;
  /** config.sinks must name exactly the `sinks` given here. */
  config: Config;
  clock: Clock;
  random: Random;
  timers: Timers;
  sinks?: Sink[];
}

const MAX_TIMER_DELAY = 3_600_000;
const actorPrefix = (key: string) => `a/${encodeURIComponent(key)}/`;
const SCHEDULE_PREFIX = "s/";
/** Marks keys that may hold undelivered outbox records, so a restarted host resumes their delivery. */
const BACKLOG_PREFIX = "b/";

/**
 * Hosts many actors in one process over one KvStore (the self-hosted server and the simulator).
 * Each call applies to actors synchronously, so one key's events never interleave; durability
 * comes from group commit: every change made in one turn of the event loop goes into one
 * storage transaction, and responses are released only after it commits.
 */
export class LocalRuntime implements ActorBackend {
  private readonly actors = new Map<string, Actor>();
  private readonly dirty = new Set<Actor>();
  /**
   * When each key next needs tick(), mirrored under SCHEDULE_PREFIX so a restarted host finds its
   * quiet keys. An entry only ever moves earlier: waking too early is harmless (tick finds little
   * to do and the key is rescheduled), and it spares a schedule write on every commit of a busy key.
   */
  private readonly schedule = new WakeSchedule();
  private readonly backlogMarked = new Set<string>();
  private backlogUnmark: string[] = [];
  private waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  private flushTimer: unknown;
  private wakeTimer: unknown;
  private wakeTimerAt: number | undefined;
  private closed = false;
  readonly delivery: LocalDelivery;
  /** Counters for progress output and benchmarks. */
  readonly stats = { commits: 0, rowsWritten: 0, actorsLoaded: 0, actorsEvicted: 0 };

  constructor(private readonly opts: RuntimeOptions) {
    const channels = (opts.sinks ?? []).map((sink) => new SinkChannel(sink, opts.config.delivery, opts.random));
    this.delivery = new LocalDelivery(channels, {
      clock: opts.clock,
      timers: opts.timers,
      maxDelay: opts.config.sinkMaxDelay,
      batchSize: opts.config.delivery.batchSize,
      touched: (actor) => this.dirty.add(actor),
      commit: () => this.commit(),
    });
    for (const [row, at] of opts.store.list(SCHEDULE_PREFIX)) {
      this.schedule.set(decodeURIComponent(row.slice(SCHEDULE_PREFIX.length)), Number(at));
    }
    for (const [row] of opts.store.list(BACKLOG_PREFIX)) {
      const actor = this.actor(decodeURIComponent(row.slice(BACKLOG_PREFIX.length)));
      this.backlogMarked.add(actor.key);
      this.delivery.committed(actor);
    }
    this.armWakeTimer();
  }

  async ingest(events: Event[]): Promise<IngestOutcome[]> {
    this.ensureOpen();
    const byKey = groupByKey(events);
    const actors = [...byKey.keys()].map((key) => this.actor(key));
    // Refuse the whole request before applying any of it when one of its keys is over its bound.
    const behind = actors.find((a) => a.outbox.backlog() >= this.opts.config.outboxMax);
    if (behind) throw new BackpressureError(behind.key, Math.max(1, Math.ceil(this.opts.config.sinkMaxDelay / 1000)));
    const outcomes = new Array<IngestOutcome>(events.length);
    const now = this.opts.clock.now();
    let k = 0;
    for (const indexes of byKey.values()) {
      const actor = actors[k++]!;
      const results = actor.ingest(
        indexes.map((i) => events[i]!),
        now,
      );
      indexes.forEach((i, n) => (outcomes[i] = results[n]!));
      this.dirty.add(actor);
    }
    await this.commit();
    return outcomes;
  }

  async state(key: string): Promise<ActorView | null> {
    const actor = await this.readable(key);
    return actor && read.state(actor);
  }

  async windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    const actor = await this.readable(key);
    return actor && read.windows(actor, query);
  }

  async late(key: string): Promise<LateView[] | null> {
    const actor = await this.readable(key);
    return actor && read.late(actor);
  }

  async deadLetters(key: string): Promise<DeadLetterView[] | null> {
    const actor = await this.readable(key);
    return actor && read.deadLetters(actor);
  }

  async replay(key: string, filter: { sink?: string; ids?: number[] }): Promise<{ replayed: number } | null> {
    const actor = await this.readable(key);
    if (!actor) return null;
    const replayed = actor.outbox.replay(filter);
    this.dirty.add(actor);
    await this.commit();
    return { replayed };
  }

  async outbox(key: string): Promise<OutboxView | null> {
    const actor = await this.readable(key);
    return actor && read.outbox(actor, this.delivery.channels);
  }

  /** Resolves when everything changed so far is durable. */
  commit(): Promise<void> {
    if (!this.dirty.size && !this.backlogUnmark.length) return Promise.resolve();
    this.flushTimer ??= this.opts.timers.setTimeout(() => this.flush(), 0);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Writes every dirty actor's changes in one storage transaction. */
  flush(): void {
    this.flushTimer = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    const actors = [...this.dirty];
    this.dirty.clear();
    const puts: Array<[string, string]> = [];
    const deletes = this.backlogUnmark.splice(0).map((key) => BACKLOG_PREFIX + encodeURIComponent(key));
    const wakes: Array<[string, number]> = [];
    const marks: string[] = [];
    for (const actor of actors) {
      const prefix = actorPrefix(actor.key);
      const writes = actor.drainWrites();
      for (const [k, v] of writes.puts) puts.push([prefix + k, v]);
      for (const k of writes.deletes) deletes.push(prefix + k);
      const wake = actor.nextWake();
      const scheduled = this.schedule.get(actor.key);
      const row = SCHEDULE_PREFIX + encodeURIComponent(actor.key);
      if (wake !== null && (scheduled === undefined || wake < scheduled)) {
        wakes.push([actor.key, wake]);
        puts.push([row, String(wake)]);
      } else if (wake === null && scheduled === undefined) deletes.push(row);
      if (actor.outbox.backlog() > 0 && !this.backlogMarked.has(actor.key)) {
        marks.push(actor.key);
        puts.push([BACKLOG_PREFIX + encodeURIComponent(actor.key), "1"]);
      }
    }
    try {
      if (puts.length || deletes.length) this.opts.store.write(puts, deletes);
    } catch (cause) {
      // Memory is now ahead of storage: forget these actors so the next access reloads what is durable.
      for (const actor of actors) {
        this.actors.delete(actor.key);
        this.delivery.backlogged.delete(actor);
      }
      const error = new StorageError(`storage commit failed: ${(cause as Error)?.message ?? cause}`);
      for (const w of waiters) w.reject(error);
      return;
    }
    this.stats.commits++;
    this.stats.rowsWritten += puts.length + deletes.length;
    for (const [key, wake] of wakes) this.schedule.set(key, wake);
    for (const key of marks) this.backlogMarked.add(key);
    for (const actor of actors) this.delivery.committed(actor);
    this.armWakeTimer();
    this.evictIdle();
    for (const w of waiters) w.resolve();
  }

  /** Runs due wall-clock work (window closing by idle timeout, retention) for every due key. */
  wake(): void {
    this.wakeTimer = undefined;
    this.wakeTimerAt = undefined;
    if (this.closed) return;
    const now = this.opts.clock.now();
    const due = this.schedule.takeDue(now);
    for (const key of due) {
      const actor = this.actor(key);
      actor.tick(now);
      this.dirty.add(actor);
    }
    // On a failed commit, try these keys again shortly (a Durable Object alarm retries the same way).
    this.commit().catch(() => {
      for (const key of due) if (this.schedule.get(key) === undefined) this.schedule.set(key, now + 1_000);
      this.armWakeTimer();
    });
    this.armWakeTimer();
  }

  /** Stops delivery and timers and flushes pending changes; the store stays open for the caller to close. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.delivery.stop();
    if (this.flushTimer !== undefined) this.opts.timers.clearTimeout(this.flushTimer);
    if (this.dirty.size || this.waiters.length || this.backlogUnmark.length) this.flush();
    if (this.wakeTimer !== undefined) this.opts.timers.clearTimeout(this.wakeTimer);
    this.closed = true;
  }

  get loadedActors(): number {
    return this.actors.size;
  }

  private ensureOpen(): void {
    if (this.closed) throw new StorageError("runtime is shut down");
  }

  private actor(key: string): Actor {
    let actor = this.actors.get(key);
    if (actor) {
      this.actors.delete(key);
    } else {
      actor = this.restore(key);
      this.stats.actorsLoaded++;
    }
    this.actors.set(key, actor);
    return actor;
  }

  private restore(key: string): Actor {
    const prefix = actorPrefix(key);
    const rows = this.opts.store.list(prefix).map(([k, v]): [string, string] => [k.slice(prefix.length), v]);
    return Actor.restore(key, this.opts.config, rows, this.opts.clock.now());
  }

  private async readable(key: string): Promise<Actor | null> {
    this.ensureOpen();
    const cached = this.actors.get(key);
    if (cached && this.dirty.has(cached)) await this.commit();
    if (this.actors.has(key)) return this.actor(key);
    const actor = this.restore(key);
    if (actor.isNew) return null;
    this.actors.set(key, actor);
    this.stats.actorsLoaded++;
    return actor;
  }

  /** Drops least recently used actors beyond the bound; never one with uncommitted or undelivered work. */
  private evictIdle(): void {
    const excess = this.actors.size - this.opts.config.maxActorsInMemory;
    if (excess <= 0) return;
    let evicted = 0;
    for (const [key, actor] of this.actors) {
      if (evicted >= excess) break;
      if (this.dirty.has(actor) || this.delivery.backlogged.has(actor)) continue;
      this.actors.delete(key);
      if (this.backlogMarked.delete(key)) this.backlogUnmark.push(key);
      evicted++;
    }
    this.stats.actorsEvicted += evicted;
  }

  private armWakeTimer(): void {
    if (this.closed) return;
    const next = this.schedule.peek();
    if (next === undefined || next === this.wakeTimerAt) return;
    if (this.wakeTimer !== undefined) this.opts.timers.clearTimeout(this.wakeTimer);
    const delay = Math.min(MAX_TIMER_DELAY, Math.max(0, next - this.opts.clock.now()));
    this.wakeTimerAt = next;
    this.wakeTimer = this.opts.timers.setTimeout(() => this.wake(), delay);
  }
}

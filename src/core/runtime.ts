import { Actor, type IngestOutcome } from "./actor.ts";
import { read, type ActorBackend, type ActorView, type LateView, type WindowView } from "./backend.ts";
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { StorageError } from "./errors.ts";
import type { Event } from "./event.ts";
import { WakeSchedule } from "./schedule.ts";
import type { KvStore } from "./storage.ts";
import type { WindowQuery } from "./views.ts";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface RuntimeOptions {
  store: KvStore;
  config: Config;
  clock: Clock;
  timers: Timers;
}

const MAX_TIMER_DELAY = 3_600_000;
const actorPrefix = (key: string) => `a/${encodeURIComponent(key)}/`;
const SCHEDULE_PREFIX = "s/";

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
  private waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  private flushTimer: unknown;
  private wakeTimer: unknown;
  private wakeTimerAt: number | undefined;
  private closed = false;
  /** Counters for progress output and benchmarks. */
  readonly stats = { commits: 0, rowsWritten: 0, actorsLoaded: 0, actorsEvicted: 0 };

  constructor(private readonly opts: RuntimeOptions) {
    for (const [row, at] of opts.store.list(SCHEDULE_PREFIX)) {
      this.schedule.set(decodeURIComponent(row.slice(SCHEDULE_PREFIX.length)), Number(at));
    }
    this.armWakeTimer();
  }

  async ingest(events: Event[]): Promise<IngestOutcome[]> {
    this.ensureOpen();
    const byKey = new Map<string, number[]>();
    events.forEach((e, i) => {
      const list = byKey.get(e.key);
      if (list) list.push(i);
      else byKey.set(e.key, [i]);
    });
    const outcomes = new Array<IngestOutcome>(events.length);
    const now = this.opts.clock.now();
    for (const [key, indexes] of byKey) {
      const actor = this.actor(key);
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

  /** Resolves when everything changed so far is durable. */
  commit(): Promise<void> {
    if (!this.dirty.size) return Promise.resolve();
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
    const deletes: string[] = [];
    const wakes: Array<[string, number]> = [];
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
    }
    try {
      if (puts.length || deletes.length) this.opts.store.write(puts, deletes);
    } catch (cause) {
      // Memory is now ahead of storage: forget these actors so the next access reloads what is durable.
      for (const actor of actors) this.actors.delete(actor.key);
      const error = new StorageError(`storage commit failed: ${(cause as Error)?.message ?? cause}`);
      for (const w of waiters) w.reject(error);
      return;
    }
    this.stats.commits++;
    this.stats.rowsWritten += puts.length + deletes.length;
    for (const [key, wake] of wakes) this.schedule.set(key, wake);
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

  /** Flushes pending changes and stops timers; the store stays open for the caller to close. */
  close(): void {
    if (this.closed) return;
    if (this.flushTimer !== undefined) this.opts.timers.clearTimeout(this.flushTimer);
    if (this.dirty.size || this.waiters.length) this.flush();
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

  private evictIdle(): void {
    const excess = this.actors.size - this.opts.config.maxActorsInMemory;
    if (excess <= 0) return;
    let evicted = 0;
    for (const [key, actor] of this.actors) {
      if (evicted >= excess) break;
      if (this.dirty.has(actor)) continue;
      this.actors.delete(key);
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

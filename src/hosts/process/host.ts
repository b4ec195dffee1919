import { Actor, type IngestOutcome } from "../../actor/actor.ts";
import { render, type ActorView, type DeadLetterView, type LateView, type OutboxView, type WindowView } from "../../http/views.ts";
import { type Gateway } from "../../http/gateway.ts";
import type { Clock, Random } from "../../ports/clock.ts";
import type { Config } from "../../settings/config.ts";
import { SinkChannel } from "../../delivery/channel.ts";
import { type Sink } from "../../delivery/sink.ts";
import { BACKPRESSURE_RETRY_AFTER_SECONDS, BackpressureError } from "../../actor/errors.ts";
import { StorageError } from "../../http/gateway.ts";
import { groupByKey, type Event } from "../../actor/event.ts";
import { decodeJournal, encodeJournal, JOURNAL_PREFIX, journalRow, RetainedJournal, type JournalEntry } from "./journal.ts";
import { DeliveryLoops } from "./delivery-loops.ts";
import { WakeSchedule } from "./wake-schedule.ts";
import type { KvStore } from "../../ports/kv-store.ts";
import type { Timers } from "../../ports/timers.ts";
import type { WindowQuery } from "../../actor/windows.ts";

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
/** Per actor: the journal seq its own rows include everything up to. */
const JOURNAL_MARK = "journal";
/** The highest journal seq handed out, so seqs keep growing across restarts. */
const SEQ_ROW = "m/journal-seq";
/** Checkpoints per commit, so one commit never stalls the event loop for long. */
const MAX_CHECKPOINTS_PER_COMMIT = 64;

/**
 * Hosts many actors in one process over one KvStore (the self-hosted server).
 * Each call applies to actors synchronously, so one key's events never interleave; durability
 * comes from group commit: every change made in one turn of the event loop goes into one
 * storage transaction, and responses are released only after it commits. Ingests go into that
 * transaction as one journal row (src/core/journal.ts); each actor's own rows are rewritten only
 * when it is checkpointed, at most checkpointIntervalMs later, or at once for changes that are not
 * ingests (delivery, ticks, replays).
 */
export class ProcessHost implements Gateway {
  private readonly actors = new Map<string, Actor>();
  /** Actors whose own rows must be rewritten in the next commit. */
  private readonly dirty = new Set<Actor>();
  /** This turn's ingests, for the next commit's journal row. */
  private turn: Array<{ actor: Actor; entry: JournalEntry }> = [];
  /** Keys with journaled changes not yet in their rows, oldest first: since = first such seq. */
  private readonly pending = new Map<string, { since: number; at: number }>();
  private readonly journal = new RetainedJournal();
  private nextSeq = 1;
  /**
   * When each key next needs tick(), mirrored under SCHEDULE_PREFIX so a restarted host finds its
   * quiet keys. An entry only ever moves earlier: waking too early is harmless (tick finds little
   * to do and the key is rescheduled), and it spares a schedule write on every commit of a busy key.
   */
  private readonly schedule = new WakeSchedule();
  /** What the schedule rows say, per key. */
  private readonly savedWakes = new Map<string, number>();
  private readonly backlogMarked = new Set<string>();
  private backlogUnmark: string[] = [];
  private waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  private flushQueued = false;
  private wakeTimer: unknown;
  private wakeTimerAt: number | undefined;
  private checkpointTimer: unknown;
  private closed = false;
  readonly delivery: DeliveryLoops;
  /** Counters for progress output and benchmarks. */
  readonly stats = { commits: 0, rowsWritten: 0, checkpoints: 0, replayed: 0, actorsLoaded: 0, actorsEvicted: 0 };

  constructor(private readonly opts: RuntimeOptions) {
    const channels = (opts.sinks ?? []).map((sink) => new SinkChannel(sink, opts.config.delivery, opts.random));
    this.delivery = new DeliveryLoops(channels, {
      clock: opts.clock,
      timers: opts.timers,
      maxDelay: opts.config.sinkMaxDelayMs,
      batchSize: opts.config.delivery.batchSize,
      touched: (actor) => this.dirty.add(actor),
      commit: () => this.commit(),
    });
    for (const [row, at] of opts.store.list(SCHEDULE_PREFIX)) {
      const key = decodeURIComponent(row.slice(SCHEDULE_PREFIX.length));
      this.schedule.set(key, Number(at));
      this.savedWakes.set(key, Number(at));
    }
    this.recoverJournal();
    for (const [row] of opts.store.list(BACKLOG_PREFIX)) {
      const actor = this.actor(decodeURIComponent(row.slice(BACKLOG_PREFIX.length)));
      this.backlogMarked.add(actor.key);
      this.delivery.committed(actor);
    }
    this.armWakeTimer();
    this.armCheckpointTimer();
  }

  /** Reads the journal rows a previous run left and replays them into their actors (which stay pending). */
  private recoverJournal(): void {
    const seqRow = this.opts.store.list(SEQ_ROW)[0];
    if (seqRow) this.nextSeq = Number(seqRow[1]) + 1;
    const now = this.opts.clock.now();
    for (const [row, text] of this.opts.store.list(JOURNAL_PREFIX)) {
      const seq = Number(row.slice(JOURNAL_PREFIX.length));
      this.journal.append(seq, decodeJournal(text));
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
    }
    const recovered: Array<{ key: string; since: number }> = [];
    for (const key of this.journal.keys()) {
      const { actor, replayedFrom } = this.load(key);
      this.actors.set(key, actor);
      this.stats.actorsLoaded++;
      if (replayedFrom !== undefined) recovered.push({ key, since: replayedFrom });
      const wake = actor.nextWake();
      const scheduled = this.schedule.get(key);
      if (wake !== null && (scheduled === undefined || wake < scheduled)) this.schedule.set(key, wake);
      this.delivery.committed(actor);
    }
    // Oldest first, as pending must be.
    for (const { key, since } of recovered.sort((a, b) => a.since - b.since)) this.pending.set(key, { since, at: now });
  }

  async ingest(events: Event[]): Promise<IngestOutcome[]> {
    this.ensureOpen();
    const byKey = groupByKey(events);
    const actors = [...byKey.keys()].map((key) => this.actor(key));
    // Refuse the whole request before applying any of it when one of its keys is over its bound.
    const behind = actors.find((a) => a.outbox.backlog() >= this.opts.config.outboxMax);
    if (behind) {
      // Nothing of the request is applied: keys it named for the first time stay unknown.
      for (const actor of actors) if (actor.isNew) this.actors.delete(actor.key);
      throw new BackpressureError(behind.key, BACKPRESSURE_RETRY_AFTER_SECONDS);
    }
    const outcomes = new Array<IngestOutcome>(events.length);
    const now = this.opts.clock.now();
    let k = 0;
    for (const indexes of byKey.values()) {
      const actor = actors[k++]!;
      const mine = indexes.length === events.length ? events : indexes.map((i) => events[i]!);
      const results = actor.ingest(mine, now);
      for (let n = 0; n < indexes.length; n++) outcomes[indexes[n]!] = results[n]!;
      this.turn.push({ actor, entry: { key: actor.key, now, events: mine } });
    }
    await this.commit();
    return outcomes;
  }

  async state(key: string): Promise<ActorView | null> {
    const actor = await this.readable(key);
    return actor && render.state(actor);
  }

  async windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    const actor = await this.readable(key);
    return actor && render.windows(actor, query);
  }

  async late(key: string): Promise<LateView[] | null> {
    const actor = await this.readable(key);
    return actor && render.late(actor);
  }

  async deadLetters(key: string): Promise<DeadLetterView[] | null> {
    const actor = await this.readable(key);
    return actor && render.deadLetters(actor);
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
    return actor && render.outbox(actor, this.delivery.channels);
  }

  /** Resolves when everything changed so far is durable. */
  commit(): Promise<void> {
    if (!this.dirty.size && !this.turn.length && !this.backlogUnmark.length) return Promise.resolve();
    if (!this.flushQueued) {
      this.flushQueued = true;
      const run = () => this.flushQueued && this.flush();
      if (this.opts.timers.defer) this.opts.timers.defer(run);
      else this.opts.timers.setTimeout(run, 0);
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * One storage transaction: this turn's ingests as one journal row, the own rows of dirty actors
   * and of pending actors due for a checkpoint, and the journal rows no pending actor needs any more.
   */
  flush(force = false): void {
    this.flushQueued = false;
    const waiters = this.waiters;
    this.waiters = [];
    const seq = this.nextSeq++;
    const now = this.opts.clock.now();
    const written = new Set(this.dirty);
    this.dirty.clear();
    const turn = this.turn;
    this.turn = [];
    const checkpointAll = force || this.closed || this.actors.size > this.opts.config.maxActorsInMemory;
    let checkpoints = 0;
    for (const [key, { at }] of this.pending) {
      if (!checkpointAll && (now - at < this.opts.config.checkpointIntervalMs || checkpoints >= MAX_CHECKPOINTS_PER_COMMIT)) break;
      written.add(this.actor(key));
      checkpoints++;
    }
    // Over the memory bound only checkpointed actors can be evicted: write this turn's in full too.
    if (checkpointAll) for (const { actor } of turn) written.add(actor);

    const puts: Array<[string, string]> = [];
    const deletes = this.backlogUnmark.splice(0).map((key) => BACKLOG_PREFIX + encodeURIComponent(key));
    for (const actor of written) {
      const prefix = actorPrefix(actor.key);
      const writes = actor.drainWrites();
      for (const [k, v] of writes.puts) puts.push([prefix + k, v]);
      for (const k of writes.deletes) deletes.push(prefix + k);
      puts.push([prefix + JOURNAL_MARK, String(seq)]);
    }
    if (written.size) puts.push([SEQ_ROW, String(seq)]);
    const journaled = turn.filter(({ actor }) => !written.has(actor)).map(({ entry }) => entry);
    if (journaled.length) puts.push([journalRow(seq), encodeJournal(journaled)]);

    // Journal rows before the oldest entry some actor still needs (after this commit) can go.
    let keepFrom = journaled.length ? seq : Infinity;
    for (const [key, { since }] of this.pending) {
      if (written.has(this.actors.get(key)!)) continue;
      keepFrom = Math.min(keepFrom, since);
      break;
    }
    for (const dropped of this.journal.seqsBefore(keepFrom)) deletes.push(journalRow(dropped));

    const touched = new Set(written);
    for (const { actor } of turn) touched.add(actor);
    // Schedule rows and backlog marks are for actors at rest in their own rows; a journaled actor
    // is rebuilt (and rescheduled) by replay on restart, so it gets them when it is checkpointed.
    const wakes: Array<[string, number]> = [];
    const saved: Array<[string, number | undefined]> = [];
    const marks: string[] = [];
    for (const actor of touched) {
      const wake = actor.nextWake();
      let scheduled = this.schedule.get(actor.key);
      if (wake !== null && (scheduled === undefined || wake < scheduled)) {
        wakes.push([actor.key, wake]);
        scheduled = wake;
      }
      if (!written.has(actor)) continue;
      if (scheduled !== this.savedWakes.get(actor.key)) {
        const row = SCHEDULE_PREFIX + encodeURIComponent(actor.key);
        if (scheduled === undefined) deletes.push(row);
        else puts.push([row, String(scheduled)]);
        saved.push([actor.key, scheduled]);
      }
      if (actor.outbox.backlog() > 0 && !this.backlogMarked.has(actor.key)) {
        marks.push(actor.key);
        puts.push([BACKLOG_PREFIX + encodeURIComponent(actor.key), "1"]);
      }
    }
    try {
      if (puts.length || deletes.length) this.opts.store.write(puts, deletes);
    } catch (cause) {
      // Memory is now ahead of storage: forget these actors so the next access rebuilds what is
      // durable (their rows plus their journal entries). Pending stays as it was: nothing changed durably.
      for (const actor of touched) {
        this.actors.delete(actor.key);
        this.delivery.backlogged.delete(actor);
      }
      const error = new StorageError(`storage commit failed: ${(cause as Error)?.message ?? cause}`);
      for (const w of waiters) w.reject(error);
      return;
    }
    if (journaled.length) this.journal.append(seq, journaled);
    this.journal.dropBefore(keepFrom);
    for (const actor of written) this.pending.delete(actor.key);
    for (const { key } of journaled) if (!this.pending.has(key)) this.pending.set(key, { since: seq, at: now });
    this.stats.commits++;
    this.stats.checkpoints += checkpoints;
    this.stats.rowsWritten += puts.length + deletes.length;
    for (const [key, wake] of wakes) this.schedule.set(key, wake);
    for (const [key, wake] of saved) {
      if (wake === undefined) this.savedWakes.delete(key);
      else this.savedWakes.set(key, wake);
    }
    for (const key of marks) this.backlogMarked.add(key);
    for (const actor of touched) this.delivery.committed(actor);
    this.armWakeTimer();
    this.armCheckpointTimer();
    this.evictIdle();
    for (const w of waiters) w.resolve();
  }

  private armCheckpointTimer(): void {
    if (this.closed || this.checkpointTimer !== undefined) return;
    const oldest = this.pending.values().next().value;
    if (!oldest) return;
    const delay = Math.max(0, oldest.at + this.opts.config.checkpointIntervalMs - this.opts.clock.now());
    this.checkpointTimer = this.opts.timers.setTimeout(() => {
      this.checkpointTimer = undefined;
      if (!this.flushQueued && !this.closed) this.flush();
    }, delay);
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
    if (this.checkpointTimer !== undefined) this.opts.timers.clearTimeout(this.checkpointTimer);
    // Checkpoints everything, so a clean shutdown leaves no journal to replay.
    if (this.dirty.size || this.turn.length || this.waiters.length || this.backlogUnmark.length || this.pending.size) this.flush(true);
    if (this.wakeTimer !== undefined) this.opts.timers.clearTimeout(this.wakeTimer);
    this.closed = true;
  }

  health(): Record<string, number> {
    return {
      actors_in_memory: this.actors.size,
      actors_pending_checkpoint: this.pending.size,
      journal_rows: this.journal.size,
      commits: this.stats.commits,
      checkpoints: this.stats.checkpoints,
      journal_entries_replayed: this.stats.replayed,
    };
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
    return this.load(key).actor;
  }

  /** The actor as durable: its own rows, then its journal entries past the seq they include. */
  private load(key: string): { actor: Actor; replayedFrom?: number } {
    const prefix = actorPrefix(key);
    const rows = this.opts.store.list(prefix).map(([k, v]): [string, string] => [k.slice(prefix.length), v]);
    const mark = rows.find(([k]) => k === JOURNAL_MARK);
    const replay = this.journal.entriesAfter(key, mark ? Number(mark[1]) : 0);
    // Restored as of the first entry's arrival, so dedupe expiry follows the same clock as the first time.
    const actor = Actor.restore(key, this.opts.config, rows, replay[0]?.entry.now ?? this.opts.clock.now());
    for (const { entry } of replay) actor.ingest(entry.events, entry.now, true);
    this.stats.replayed += replay.length;
    return { actor, replayedFrom: replay[0]?.seq };
  }

  private async readable(key: string): Promise<Actor | null> {
    this.ensureOpen();
    const cached = this.actors.get(key);
    if (cached && (this.dirty.has(cached) || this.turn.some((t) => t.actor === cached))) await this.commit();
    if (this.actors.has(key)) {
      const actor = this.actor(key);
      return actor.isNew ? null : actor;
    }
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
      if (this.dirty.has(actor) || this.pending.has(key) || this.delivery.backlogged.has(actor)) continue;
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

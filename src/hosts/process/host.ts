import { Actor, type IngestOutcome, type LiveOutput } from "../../actor/actor.ts";
import { BACKPRESSURE_RETRY_AFTER_SECONDS, BackpressureError } from "../../actor/errors.ts";
import { groupByKey, type Event } from "../../actor/event.ts";
import { ACTOR_ROW, decodeKey, PROCESS_ROW, rowNumber } from "../../actor/layout.ts";
import type { EventRecord, OutboxMeta } from "../../actor/outbox.ts";
import type { WindowQuery } from "../../actor/windows.ts";
import { SinkChannel, type ChannelStatus } from "../../delivery/channel.ts";
import { applySettlement, type Settlement } from "../../delivery/settle.ts";
import type { Sink } from "../../delivery/sink.ts";
import { StorageError, type Gateway, type ReplayFilter } from "../../http/gateway.ts";
import { render, type ActorView, type DeadLetterView, type LateView, type OutboxView, type WindowView } from "../../http/views.ts";
import type { AlertRecordView } from "../../delivery/records.ts";
import { assert } from "../../ports/assert.ts";
import type { Clock, Random } from "../../ports/clock.ts";
import { listRelative, type KvStore } from "../../ports/kv-store.ts";
import type { Timers } from "../../ports/timers.ts";
import type { Config } from "../../settings/config.ts";
import { DeliveryLoops, type DeliveryObserver } from "./delivery-loops.ts";
import { commandFor, commandKeys, decodeJournal, encodeJournal, RetainedJournal, type Command, type CommittedCommand, type JournaledCommand } from "./journal.ts";
import { WakeSchedule } from "./wake-schedule.ts";
import { TenantUsage } from "./tenant-usage.ts";
import { LiveFeeds } from "../../live/feed.ts";
import { liveStream } from "../../live/sse.ts";

/** What the simulator's checker is told; it changes nothing. */
export interface ProcessHostHooks {
  /** A group commit succeeded: these commands, in the order they ran, are durable. */
  committed?(commands: readonly CommittedCommand[], actorOf: (key: string) => Actor | undefined): void;
  /** A group commit's write went off the loop: these commands are durable if it lands, even if the process dies first. */
  writing?(commands: readonly CommittedCommand[]): void;
}

/** What metrics and logs are told; it changes nothing. Durations come from `elapsedMs`, a monotonic clock in ms. */
export interface HostObserver extends DeliveryObserver {
  commit(durationMs: number, checkpoints: number): void;
}

export interface ProcessHostOptions {
  store: KvStore;
  /** config.sinks must name exactly the `sinks` given here. */
  config: Config;
  clock: Clock;
  random: Random;
  timers: Timers;
  sinks?: Sink[];
  hooks?: ProcessHostHooks;
  observer?: HostObserver;
}

const MAX_TIMER_DELAY_MS = 3_600_000;
/** Checkpoints per commit, so one commit never stalls the event loop for long. */
const MAX_CHECKPOINTS_PER_COMMIT = 64;
/**
 * Past this many characters of checkpoint rows a commit takes no more actors (unless it must take them
 * all): 64 actors that each wrote a second of late events serialised megabytes in one commit, and
 * the p99 of late-only traffic was twice that of on-time traffic (issue 14).
 */
const CHECKPOINT_CHARS_PER_COMMIT = 256 * 1024;

/** An actor's progress row: the journal seq its rows include everything up to, and its outbox cursors and counters. */
interface Progress {
  journal: number;
  outbox?: OutboxMeta;
}

/** How long deliveries' acks may wait for a commit to ride along with before they get one of their own. */
const ACK_LINGER_MS = 100;

/** How far a commit makes an actor's outbox and live view durable. */
interface DurableAt {
  outboxN: number;
  live?: LiveOutput;
  liveSeq?: number;
}

/** A command of the current turn; for an ingest, where its records start (to point them at the journal). */
interface TurnEntry {
  command: CommittedCommand;
  firstN?: number;
}

/**
 * Hosts many actors in one process over one KvStore (the self-hosted server). Every change to an
 * actor is a command (ingest, tick, sink settlement, DLQ replay) applied at once in memory; one key's
 * commands never interleave. Durability comes from group commit: the commands of one turn of the
 * event loop go into one storage transaction as one journal row, and responses are released only
 * after it commits. Each actor's own rows are rewritten only when it is checkpointed, in the
 * background (at most checkpointIntervalMs after its first journaled change). On restart the
 * journal is replayed into the actors it names. A record no sink has taken when its actor is
 * checkpointed is stored as a reference to its event in the journal, which is kept while needed.
 */
export class ProcessHost implements Gateway {
  /** Actors in memory, least recently used first. */
  private readonly actors = new Map<string, Actor>();
  private turn: TurnEntry[] = [];
  /** The keys this turn's commands changed. */
  private turnKeys = new Set<string>();
  /** Keys whose journaled commands are not yet in their own rows, oldest first: since = first such seq. */
  private readonly pending = new Map<string, { since: number; at: number }>();
  /** Checkpointed actors whose stored outbox segments point at journal rows, with the oldest such row. */
  private readonly refHolders = new Map<string, number>();
  /** The oldest journal row any stored reference needs (recomputed when refHolders changes). */
  private refFloor: number | undefined;
  private readonly journal = new RetainedJournal();
  private nextSeq = 1;
  /**
   * When each key next needs tick(), mirrored in schedule rows so a restarted host finds its quiet
   * keys. An entry only ever moves earlier: waking too early is harmless (tick finds little to do and
   * the key is rescheduled), and it spares a schedule write on every commit of a busy key.
   */
  private readonly schedule = new WakeSchedule();
  /** What the schedule rows say, per key. */
  private readonly savedWakes = new Map<string, number>();
  /** Keys with a backlog mark row. */
  private readonly backlogMarked = new Set<string>();
  /** Keys whose journal mark is still the row of older versions (deleted at their next checkpoint). */
  private readonly legacyMarks = new Set<string>();
  private ackTimer: unknown;
  private waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  private flushQueued = false;
  /** The commit whose write is running off the event loop (a store with writeAsync), if one is. */
  private writing: Promise<void> | undefined;
  /** A flush was asked for while a write ran: it runs when the write ends. */
  private flushAfterWrite = false;
  /** The keys whose commands that write holds. */
  private writingKeys: Set<string> | undefined;
  private wakeTimer: unknown;
  private wakeTimerAt: number | undefined;
  private checkpointTimer: unknown;
  private closed = false;
  /** Live views of watched keys; a feed outlives its actor's eviction, so a reload keeps feeding it. */
  private readonly feeds: LiveFeeds;
  readonly delivery: DeliveryLoops;
  /** Keys and stored bytes per tenant, for quotas. */
  readonly usage: TenantUsage;
  /** Counters for /health, progress output and benchmarks. */
  readonly stats = { commits: 0, rowsWritten: 0, checkpoints: 0, replayed: 0, actorsLoaded: 0, actorsEvicted: 0 };

  constructor(private readonly opts: ProcessHostOptions) {
    const { liveRetain, maxActorsInMemory } = opts.config;
    let incarnations = 0;
    const incarnationPrefix = Math.floor(opts.random.next() * 2 ** 32).toString(36);
    this.feeds = new LiveFeeds(liveRetain, maxActorsInMemory, () => `${incarnationPrefix}-${(incarnations++).toString(36)}`, (key) => {
      const actor = this.actors.get(key);
      if (actor) actor.live = undefined;
    });
    const { config } = opts;
    this.usage = new TenantUsage(config.tenantMaxKeys, config.tenantMaxBytes);
    const channels = (opts.sinks ?? []).map((sink) => new SinkChannel(sink, config.delivery, opts.random));
    this.delivery = new DeliveryLoops(channels, {
      clock: opts.clock,
      timers: opts.timers,
      maxDelayMs: config.sinkMaxDelayMs,
      policy: config.delivery,
      actor: (key) => this.actor(key),
      settle: (sink, settled, now) => this.settle(sink, settled, now),
      observer: opts.observer,
    });
    this.recover();
    this.armWakeTimer();
    this.armCheckpointTimer();
  }

  // ---- recovery ----

  /** Reads what a previous run left: schedules, the journal (replayed into its actors), backlog marks. */
  private recover(): void {
    const { store } = this.opts;
    for (const [row, at] of store.list(PROCESS_ROW.schedulePrefix)) {
      const key = decodeKey(row.slice(PROCESS_ROW.schedulePrefix.length));
      this.schedule.set(key, Number(at));
      this.savedWakes.set(key, Number(at));
    }
    const lastSeq = store.get(PROCESS_ROW.journalSeq);
    if (lastSeq !== undefined) this.nextSeq = Number(lastSeq) + 1;
    for (const [row, text] of store.list(PROCESS_ROW.journalPrefix)) {
      const seq = rowNumber(row, PROCESS_ROW.journalPrefix);
      this.journal.append(seq, decodeJournal(text));
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
    }
    const now = this.opts.clock.now();
    const recovered: Array<{ key: string; since: number }> = [];
    const byKey = this.journal.commandsByKey();
    this.usage.recover(store, byKey.keys());
    for (const [key, journaled] of byKey) {
      const { actor, replayedFrom } = this.load(key, journaled);
      this.actors.set(key, actor);
      this.stats.actorsLoaded++;
      if (replayedFrom !== undefined) recovered.push({ key, since: replayedFrom });
      this.scheduleWake(actor);
      this.delivery.committed(actor);
    }
    // Oldest first, as pending must be.
    for (const { key, since } of recovered.sort((a, b) => a.since - b.since)) this.pending.set(key, { since, at: now });
    for (const [row] of store.list(PROCESS_ROW.backlogPrefix)) {
      const key = decodeKey(row.slice(PROCESS_ROW.backlogPrefix.length));
      this.backlogMarked.add(key);
      this.delivery.committed(this.actor(key));
    }
  }

  /**
   * The actor as durable: its own rows and progress row, then its journaled commands past the seq
   * they include (`journaled`: all of the key's retained commands, when the caller has them already).
   */
  private load(key: string, journaled?: JournaledCommand[]): { actor: Actor; replayedFrom?: number } {
    const prefix = PROCESS_ROW.actor(key);
    const rows = listRelative(this.opts.store, prefix);
    this.usage.loaded(key, prefix, rows);
    const progress = this.readProgress(key, rows);
    const replay = journaled ? journaled.filter((c) => c.seq > progress.journal) : this.journal.commandsAfter(key, progress.journal);
    // Restored as of the first command's time, so dedupe expiry follows the same clock as the first time.
    const now = replay[0]?.command.now ?? this.opts.clock.now();
    const actor = Actor.restore(key, this.opts.config, rows, now, (ref) => this.journal.resolve(ref), progress.outbox);
    const minRef = actor.outbox.minStoredRef();
    if (minRef !== undefined) {
      this.refHolders.set(key, minRef);
      this.refFloor = undefined;
    }
    for (const { seq, index, command } of replay) {
      const firstN = actor.outbox.nextN;
      const outcomes = this.reapply(actor, command);
      if (outcomes) pointAtJournal(actor, outcomes, firstN, seq, index);
    }
    actor.outbox.markDurable();
    // Attached only now: what the replay made again was published the first time (or never was durable).
    actor.live = this.feeds.get(key);
    this.stats.replayed += replay.length;
    return { actor, replayedFrom: replay[0]?.seq };
  }

  /** The actor's progress row; rows written before it existed kept the mark among the actor's rows (and the outbox in its state). */
  private readProgress(key: string, rows: Array<[string, string]>): Progress {
    const row = this.opts.store.get(PROCESS_ROW.progress(key));
    if (row !== undefined) return JSON.parse(row) as Progress;
    const legacy = rows.find(([k]) => k === ACTOR_ROW.journalMark);
    if (legacy) this.legacyMarks.add(key);
    return { journal: legacy ? Number(legacy[1]) : 0 };
  }

  /** Runs a journaled command again: with the same input and time the actor makes the same change. */
  private reapply(actor: Actor, command: Command): IngestOutcome[] | undefined {
    switch (command.kind) {
      case "ingest":
        return actor.ingest(command.events, command.now, true);
      case "tick":
        actor.tick(command.now);
        return undefined;
      case "settle":
        for (const s of command.settlements) if (s.key === actor.key) applySettlement(actor.outbox, command.sink, s, command.now);
        return undefined;
      case "replay":
        actor.outbox.replay(command);
        return undefined;
    }
  }

  private record(entry: TurnEntry): void {
    this.turn.push(entry);
    for (const key of commandKeys(entry.command)) this.turnKeys.add(key);
  }

  // ---- the gateway ----

  async ingest(events: Event[]): Promise<IngestOutcome[]> {
    this.ensureOpen();
    const byKey = groupByKey(events);
    const actors = [...byKey.keys()].map((key) => this.actor(key));
    // Refuse the whole request before applying any of it when one of its keys is over its bound.
    const behind = actors.find((a) => a.outbox.backlog() >= this.opts.config.outboxMax);
    try {
      if (behind) throw new BackpressureError(behind.key, BACKPRESSURE_RETRY_AFTER_SECONDS);
      this.usage.admit(actors);
    } catch (error) {
      // Nothing of the request is applied: keys it named for the first time stay unknown.
      for (const actor of actors) if (actor.isNew) this.drop(actor.key);
      throw error;
    }
    const outcomes = new Array<IngestOutcome>(events.length);
    const now = this.opts.clock.now();
    let k = 0;
    for (const indexes of byKey.values()) {
      const actor = actors[k++]!;
      const mine = indexes.length === events.length ? events : indexes.map((i) => events[i]!);
      const firstN = actor.outbox.nextN;
      const results = actor.ingest(mine, now);
      for (let n = 0; n < indexes.length; n++) outcomes[indexes[n]!] = results[n]!;
      this.record({ command: { kind: "ingest", key: actor.key, now, events: mine, outcomes: results }, firstN });
    }
    await this.commit();
    return outcomes;
  }

  /** Takes an actor out of memory; what its live view had not yet published never happened. */
  private drop(key: string): void {
    this.actors.get(key)?.live?.discard();
    this.actors.delete(key);
    this.usage.forget(key);
  }

  async state(key: string): Promise<ActorView | null> {
    const actor = await this.readable(key);
    return actor && render.state(actor);
  }

  async windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    const actor = await this.readable(key);
    return actor && render.windows(actor, query);
  }

  async alerts(key: string): Promise<AlertRecordView[] | null> {
    const actor = await this.readable(key);
    return actor && render.alerts(actor);
  }

  async late(key: string): Promise<LateView[] | null> {
    const actor = await this.readable(key);
    return actor && render.late(actor);
  }

  async deadLetters(key: string): Promise<DeadLetterView[] | null> {
    const actor = await this.readable(key);
    return actor && render.deadLetters(actor);
  }

  async replay(key: string, filter: ReplayFilter): Promise<{ replayed: number } | null> {
    const actor = await this.readable(key);
    if (!actor) return null;
    const replayed = actor.outbox.replay(filter);
    if (replayed) {
      const command: Command = { kind: "replay", key, now: this.opts.clock.now() };
      if (filter.sink !== undefined) command.sink = filter.sink;
      if (filter.ids !== undefined) command.ids = filter.ids;
      this.record({ command });
      await this.commit();
    }
    return { replayed };
  }

  /** The key's live view as server-sent events, from now on (or resumed after `lastEventId`). */
  async live(key: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array>> {
    this.ensureOpen();
    const feed = this.feeds.open(key, (created) => {
      const actor = this.actors.get(key);
      if (actor) actor.live = created;
    });
    return liveStream(feed, { lastEventId, timers: this.opts.timers, maxQueued: this.opts.config.liveMaxQueued });
  }

  async outbox(key: string): Promise<OutboxView | null> {
    const actor = await this.readable(key);
    return actor && render.outbox(actor, this.delivery.channels);
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

  // ---- commands from delivery and the clock ----

  /** A delivery batch landed: apply what it settled to the actors now, journal it with the next commit. */
  private settle(sink: string, settled: Settlement[], now: number): void {
    if (this.closed) return;
    // Only what was applied is journaled: a settlement dropped as stale must stay dropped on replay.
    const applied = settled.filter((s) => applySettlement(this.actor(s.key).outbox, sink, s, now));
    if (!applied.length) return;
    this.record({ command: { kind: "settle", sink, now, settlements: applied } });
    // Acks are not urgent (a lost one means a redelivery, which sinks take idempotently): they ride
    // with the next commit, or get one of their own after a short linger.
    if (this.ackTimer === undefined && !this.flushQueued) {
      this.ackTimer = this.opts.timers.setTimeout(() => {
        this.ackTimer = undefined;
        if (!this.closed) this.commit().catch(() => undefined);
      }, ACK_LINGER_MS);
    }
  }

  /** Runs due wall-clock work (window closing by idle timeout, retention) for every due key. */
  wake(): void {
    this.wakeTimer = undefined;
    this.wakeTimerAt = undefined;
    if (this.closed) return;
    const now = this.opts.clock.now();
    const due = this.schedule.takeDue(now);
    for (const key of due) {
      this.actor(key).tick(now);
      this.record({ command: { kind: "tick", key, now } });
    }
    // On a failed commit, try these keys again shortly (a Durable Object alarm retries the same way).
    this.commit().catch(() => {
      for (const key of due) if (this.schedule.get(key) === undefined) this.schedule.set(key, now + 1_000);
      this.armWakeTimer();
    });
    this.armWakeTimer();
  }

  // ---- group commit ----

  /** Resolves when everything changed so far is durable. */
  commit(): Promise<void> {
    if (!this.turn.length && !this.waiters.length && !this.checkpointsDue()) return Promise.resolve();
    if (!this.flushQueued) {
      this.flushQueued = true;
      const run = () => this.flushQueued && this.flush();
      if (this.opts.timers.defer) this.opts.timers.defer(run);
      else this.opts.timers.setTimeout(run, 0);
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private checkpointsDue(): boolean {
    const oldest = this.pending.values().next().value;
    return oldest !== undefined && this.opts.clock.now() - oldest.at >= this.opts.config.checkpointIntervalMs;
  }

  /**
   * One storage transaction: this turn's commands as one journal row, the rows of actors due for a
   * checkpoint (or all of them: `force`, closing, over the memory bound), schedule rows and backlog
   * marks of the checkpointed, and the journal rows nothing needs any more. Planned first, applied
   * to memory only once the store took it.
   */
  flush(force = false): void {
    this.flushQueued = false;
    if (this.writing) {
      this.flushAfterWrite = true;
      return;
    }
    if (this.ackTimer !== undefined) {
      this.opts.timers.clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
    }
    const waiters = this.waiters;
    this.waiters = [];
    const turn = this.turn;
    const turnKeys = this.turnKeys;
    this.turn = [];
    this.turnKeys = new Set();
    const seq = this.nextSeq++;
    const now = this.opts.clock.now();
    const all = force || this.closed || this.actors.size > this.opts.config.maxActorsInMemory;
    const candidates = this.chooseCheckpoints(all, now);
    // Over the memory bound only checkpointed actors can be evicted: this turn's actors go in full too,
    // and so do the records stored as references (so that, on a clean stop, no journal is left).
    if (all) for (const key of [...turnKeys, ...this.refHolders.keys()]) candidates.add(this.actor(key).key);

    const puts: Array<[string, string]> = [];
    const deletes: string[] = [];
    const marks: { add: string[]; remove: string[] } = { add: [], remove: [] };
    const savedWakes: Array<[string, number | undefined]> = [];
    const refHolders = new Map<string, number | undefined>();
    const checkpoints: Parameters<TenantUsage["plan"]>[0] = [];
    // Checkpoints first: the journal row holds the turn's commands of the actors they leave out.
    const checkpointed = new Set<string>();
    let chars = 0;
    for (const key of candidates) {
      if (!all && chars >= CHECKPOINT_CHARS_PER_COMMIT) break;
      checkpointed.add(key);
      const actor = this.actors.get(key);
      assert(actor !== undefined, "a checkpointed actor is in memory");
      const prefix = PROCESS_ROW.actor(key);
      const writes = actor.drainWrites({ inlineRefs: all, outboxMetaApart: true });
      checkpoints.push({ key, prefix, puts: writes.puts, deletes: writes.deletes });
      for (const [k, v] of writes.puts) {
        puts.push([prefix + k, v]);
        chars += v.length;
      }
      for (const k of writes.deletes) deletes.push(prefix + k);
      const progress: Progress = { journal: seq, outbox: actor.outbox.getMeta() };
      puts.push([PROCESS_ROW.progress(key), JSON.stringify(progress)]);
      if (this.legacyMarks.delete(key)) deletes.push(prefix + ACTOR_ROW.journalMark);
      refHolders.set(key, actor.outbox.minStoredRef());
      this.planRestRows(actor, puts, deletes, marks, savedWakes);
    }
    if (checkpointed.size) puts.push([PROCESS_ROW.journalSeq, String(seq)]);

    const journaled: Command[] = [];
    for (const entry of turn) {
      const part = commandFor(entry.command, (key) => !checkpointed.has(key));
      if (!part) continue;
      if (part.kind === "ingest") pointAtJournal(this.actors.get(part.key)!, entry.command.outcomes!, entry.firstN!, seq, journaled.length);
      journaled.push(strip(part));
    }

    const usage = this.usage.plan(checkpoints);
    puts.push(...usage.rows);
    if (journaled.length) puts.push([PROCESS_ROW.journal(seq), encodeJournal(journaled)]);

    const keepFrom = this.journalFloor(journaled.length ? seq : Infinity, checkpointed, refHolders);
    const dropped = this.journal.seqsBefore(keepFrom);
    for (const old of dropped) deletes.push(PROCESS_ROW.journal(old));

    const durableAt = this.durablePositions(turnKeys, checkpointed);
    const observer = this.opts.observer;
    const startedMs = observer ? observer.elapsedMs() : 0;
    const done = () => {
      observer?.commit(observer.elapsedMs() - startedMs, checkpointed.size);
      usage.apply();
      this.applyCommit(seq, now, turn, turnKeys, journaled, checkpointed, { keepFrom, marks, savedWakes, refHolders, durableAt });
      this.stats.rowsWritten += puts.length + deletes.length;
      for (const w of waiters) w.resolve();
    };
    const failed = (cause: unknown) => this.commitFailed(cause, [...turnKeys, ...checkpointed], waiters);
    const { store } = this.opts;
    if (!puts.length && !deletes.length) return done();
    if (store.writeAsync) {
      this.opts.hooks?.writing?.(turn.map((e) => e.command));
      this.writingKeys = turnKeys;
      return this.writeOffLoop(store.writeAsync(puts, deletes), done, failed);
    }
    try {
      store.write(puts, deletes);
    } catch (cause) {
      return failed(cause);
    }
    done();
  }

  /**
   * A commit whose write runs off the event loop: the loop keeps taking and applying commands, which
   * gather in the next turn (pipelined group commit). One write is in flight at a time: the next
   * flush starts when it ends, with everything that gathered meanwhile.
   */
  private writeOffLoop(write: Promise<void>, done: () => void, failed: (cause: unknown) => void): void {
    this.writing = write.then(done, (cause) => {
      // What gathered meanwhile was applied on top of what did not commit: it fails with it.
      const later = [...this.turnKeys];
      const waiters = this.waiters;
      this.turn = [];
      this.turnKeys = new Set();
      this.waiters = [];
      this.usage.discardCreated();
      failed(cause);
      this.commitFailed(cause, later, waiters);
    }).finally(() => {
      this.writing = undefined;
      this.writingKeys = undefined;
      if (this.flushAfterWrite || this.turn.length || this.waiters.length) {
        this.flushAfterWrite = false;
        this.flush();
      }
    });
  }

  /**
   * Memory is ahead of storage: forget these actors so the next access rebuilds what is durable
   * (their rows plus their journaled commands). Nothing else changed durably.
   */
  private commitFailed(cause: unknown, keys: string[], waiters: Array<{ reject(e: unknown): void }>): void {
    for (const key of keys) this.drop(key);
    this.delivery.reconsider(keys);
    const error = new StorageError(`storage commit failed: ${(cause as Error)?.message ?? cause}`);
    for (const w of waiters) w.reject(error);
  }

  /**
   * Where each actor this commit stores stands now: what it appends while the write is off the loop
   * belongs to the next commit, so only records and live items before these become visible.
   */
  private durablePositions(turnKeys: Set<string>, checkpointed: Set<string>): Map<Actor, DurableAt> {
    const positions = new Map<Actor, DurableAt>();
    for (const keys of [turnKeys, checkpointed]) {
      for (const key of keys) {
        const actor = this.actors.get(key)!;
        const { live } = actor;
        positions.set(actor, live ? { outboxN: actor.outbox.nextN, live, liveSeq: live.position() } : { outboxN: actor.outbox.nextN });
      }
    }
    return positions;
  }

  /** Pending actors due for a checkpoint (all of them when `all`), oldest first, a bounded number. */
  private chooseCheckpoints(all: boolean, now: number): Set<string> {
    const chosen = new Set<string>();
    for (const [key, { at }] of this.pending) {
      if (!all && (now - at < this.opts.config.checkpointIntervalMs || chosen.size >= MAX_CHECKPOINTS_PER_COMMIT)) break;
      // An actor dropped after a failed commit is rebuilt here: its journal rows can go once it is written.
      this.actor(key);
      chosen.add(key);
    }
    return chosen;
  }

  /**
   * Schedule rows and backlog marks are for actors at rest in their own rows; a journaled actor is
   * rebuilt (and rescheduled, and its delivery resumed) by replay on restart.
   */
  private planRestRows(
    actor: Actor,
    puts: Array<[string, string]>,
    deletes: string[],
    marks: { add: string[]; remove: string[] },
    savedWakes: Array<[string, number | undefined]>,
  ): void {
    const key = actor.key;
    const wake = this.nextWakeOf(actor);
    if (wake !== this.savedWakes.get(key)) {
      if (wake === undefined) deletes.push(PROCESS_ROW.schedule(key));
      else puts.push([PROCESS_ROW.schedule(key), String(wake)]);
      savedWakes.push([key, wake]);
    }
    const backlog = actor.outbox.backlog() > 0;
    if (backlog && !this.backlogMarked.has(key)) {
      puts.push([PROCESS_ROW.backlog(key), "1"]);
      marks.add.push(key);
    } else if (!backlog && this.backlogMarked.has(key)) {
      deletes.push(PROCESS_ROW.backlog(key));
      marks.remove.push(key);
    }
  }

  /** The oldest journal row something still needs after this commit: a pending actor, or a stored record reference. */
  private journalFloor(floor: number, checkpointed: Set<string>, refHolders: Map<string, number | undefined>): number {
    let keepFrom = floor;
    for (const [key, { since }] of this.pending) {
      if (checkpointed.has(key)) continue;
      keepFrom = Math.min(keepFrom, since);
      break;
    }
    const oldest = this.journal.oldest;
    // Stored references matter only when the journal has rows older than what the rest needs.
    if (oldest === undefined || oldest >= keepFrom) return keepFrom;
    if (refHolders.size) {
      for (const [key, minRef] of this.refHolders) if (!refHolders.has(key)) keepFrom = Math.min(keepFrom, minRef);
      for (const minRef of refHolders.values()) if (minRef !== undefined) keepFrom = Math.min(keepFrom, minRef);
      return keepFrom;
    }
    if (this.refFloor === undefined) this.refFloor = Math.min(Infinity, ...this.refHolders.values());
    return Math.min(keepFrom, this.refFloor);
  }

  private applyCommit(
    seq: number,
    now: number,
    turn: TurnEntry[],
    turnKeys: Set<string>,
    journaled: Command[],
    checkpointed: Set<string>,
    plan: {
      keepFrom: number;
      marks: { add: string[]; remove: string[] };
      savedWakes: Array<[string, number | undefined]>;
      refHolders: Map<string, number | undefined>;
      durableAt: Map<Actor, DurableAt>;
    },
  ): void {
    if (journaled.length) this.journal.append(seq, journaled);
    this.journal.dropBefore(plan.keepFrom);
    for (const key of checkpointed) this.pending.delete(key);
    for (const command of journaled) {
      for (const key of commandKeys(command)) if (!this.pending.has(key)) this.pending.set(key, { since: seq, at: now });
    }
    for (const [key, minRef] of plan.refHolders) {
      if (minRef === undefined) this.refHolders.delete(key);
      else this.refHolders.set(key, minRef);
    }
    if (plan.refHolders.size) this.refFloor = undefined;
    for (const key of plan.marks.add) this.backlogMarked.add(key);
    for (const key of plan.marks.remove) this.backlogMarked.delete(key);
    for (const [key, wake] of plan.savedWakes) {
      if (wake === undefined) this.savedWakes.delete(key);
      else this.savedWakes.set(key, wake);
    }
    this.stats.commits++;
    this.stats.checkpoints += checkpointed.size;
    for (const [actor, at] of plan.durableAt) {
      actor.outbox.markDurable(at.outboxN);
      if (at.live) at.live.publish(at.liveSeq);
      this.scheduleWake(actor);
      this.delivery.committed(actor);
    }
    // An actor with commands gathered behind this commit (a write off the loop) is ahead of it.
    this.opts.hooks?.committed?.(
      turn.map((e) => e.command),
      (key) => (this.turnKeys.has(key) ? undefined : this.actors.get(key)),
    );
    this.armWakeTimer();
    this.armCheckpointTimer();
    this.evictIdle();
  }

  // ---- lifecycle ----

  /** Stops delivery and timers and checkpoints everything; the store stays open for the caller to close. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.delivery.stop();
    if (this.checkpointTimer !== undefined) this.opts.timers.clearTimeout(this.checkpointTimer);
    if (this.wakeTimer !== undefined) this.opts.timers.clearTimeout(this.wakeTimer);
    // Checkpoints every pending actor, with its records in full, so a clean stop leaves no journal.
    this.closed = true;
    while (this.writing) await this.writing;
    const stored = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.flush(true);
    while (this.writing) await this.writing;
    // A failed last commit leaves the journal to replay at the next start.
    await stored.catch(() => undefined);
    this.feeds.closeAll();
  }

  get loadedActors(): number {
    return this.actors.size;
  }

  sinkStatus(): ChannelStatus[] {
    return this.delivery.channels.map((c) => c.status());
  }

  get journalRows(): number {
    return this.journal.rowCount;
  }

  /** For metrics: per sink, the records loaded actors have not delivered and when the oldest arrived; their dead letters. */
  outboxSummary(): { backlog: Map<string, { records: number; oldestAt: number | null }>; deadLetters: number } {
    const backlog = new Map(this.opts.config.sinks.map((sink) => [sink, { records: 0, oldestAt: null as number | null }]));
    let deadLetters = 0;
    for (const actor of this.actors.values()) {
      const { outbox } = actor;
      deadLetters += outbox.deadLetters().length;
      for (const [sink, b] of backlog) {
        const waiting = outbox.backlog(sink);
        if (!waiting) continue;
        b.records += waiting;
        const oldest = outbox.record(outbox.position(sink));
        const at = oldest?.kind === "event" ? oldest.receivedAt : oldest?.kind === "window" ? (oldest.closedAt ?? null) : oldest?.kind === "alert" ? oldest.firedAt : null;
        if (at !== null && (b.oldestAt === null || at < b.oldestAt)) b.oldestAt = at;
      }
    }
    return { backlog, deadLetters };
  }

  /** The actor of `key` in memory, if it is (for inspection: the simulator's checker). */
  peek(key: string): Actor | undefined {
    return this.actors.get(key);
  }

  /** The actor of `key` as this host rebuilds it from storage, or undefined if it has none (for inspection). */
  inspect(key: string): Actor | undefined {
    const actor = this.actor(key);
    return actor.isNew ? undefined : actor;
  }

  private ensureOpen(): void {
    if (this.closed) throw new StorageError("the host is shutting down");
  }

  /** The actor of `key`, loaded if need be, marked as just used. */
  private actor(key: string): Actor {
    let actor = this.actors.get(key);
    if (actor) {
      this.actors.delete(key);
    } else {
      actor = this.load(key).actor;
      this.stats.actorsLoaded++;
    }
    this.actors.set(key, actor);
    return actor;
  }

  private async readable(key: string): Promise<Actor | null> {
    this.ensureOpen();
    // A read shows only what is durable: it waits for the key's commands, gathered or being written.
    if (this.writingKeys?.has(key)) await this.writing;
    if (this.turnKeys.has(key)) await this.commit();
    const actor = this.actor(key);
    if (!actor.isNew) return actor;
    this.drop(key);
    return null;
  }

  /** Drops least recently used actors beyond the bound; never one with unsaved, undelivered or in-flight work. */
  private evictIdle(): void {
    const excess = this.actors.size - this.opts.config.maxActorsInMemory;
    if (excess <= 0) return;
    let evicted = 0;
    for (const [key, actor] of this.actors) {
      if (evicted >= excess) break;
      if (this.pending.has(key) || this.refHolders.has(key) || this.delivery.backlogged.has(key) || actor.outbox.backlog() > 0) continue;
      if (this.turnKeys.has(key)) continue;
      this.drop(key);
      evicted++;
    }
    this.stats.actorsEvicted += evicted;
  }

  // ---- timers ----

  private nextWakeOf(actor: Actor): number | undefined {
    const wake = actor.nextWake();
    const scheduled = this.schedule.get(actor.key);
    if (wake === null) return scheduled;
    return scheduled === undefined || wake < scheduled ? wake : scheduled;
  }

  private scheduleWake(actor: Actor): void {
    const wake = actor.nextWake();
    const scheduled = this.schedule.get(actor.key);
    if (wake !== null && (scheduled === undefined || wake < scheduled)) this.schedule.set(actor.key, wake);
  }

  private armCheckpointTimer(): void {
    if (this.closed || this.checkpointTimer !== undefined) return;
    const oldest = this.pending.values().next().value;
    if (!oldest) return;
    const delayMs = Math.max(0, oldest.at + this.opts.config.checkpointIntervalMs - this.opts.clock.now());
    this.checkpointTimer = this.opts.timers.setTimeout(() => {
      this.checkpointTimer = undefined;
      if (!this.flushQueued && !this.closed) this.flush();
    }, delayMs);
  }

  private armWakeTimer(): void {
    if (this.closed) return;
    const next = this.schedule.peek();
    if (next === undefined || next === this.wakeTimerAt) return;
    if (this.wakeTimer !== undefined) this.opts.timers.clearTimeout(this.wakeTimer);
    const delayMs = Math.min(MAX_TIMER_DELAY_MS, Math.max(0, next - this.opts.clock.now()));
    this.wakeTimerAt = next;
    this.wakeTimer = this.opts.timers.setTimeout(() => this.wake(), delayMs);
  }
}


/** The command as journaled: without what it answered. */
function strip(command: CommittedCommand): Command {
  if (command.outcomes === undefined) return command;
  const { outcomes: _outcomes, ...plain } = command;
  return plain as Command;
}

/**
 * Points the event records an ingest appended (from position `firstN`) at its events in journal
 * row `seq`, command `index`: a checkpoint then stores them as references. The k-th event record is
 * the k-th accepted event.
 */
function pointAtJournal(actor: Actor, outcomes: readonly IngestOutcome[], firstN: number, seq: number, index: number): void {
  let e = 0;
  for (let n = firstN; n < actor.outbox.nextN; n++) {
    const record = actor.outbox.record(n);
    if (record?.kind !== "event") continue;
    while (e < outcomes.length && outcomes[e]!.status !== "accepted") e++;
    if (e >= outcomes.length) return;
    (record as EventRecord).ref = [seq, index, e++];
  }
}

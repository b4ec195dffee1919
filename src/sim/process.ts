import type { Actor } from "../actor/actor.ts";
import { BackpressureError } from "../actor/errors.ts";
import type { Event } from "../actor/event.ts";
import { ACTOR_ROW, PROCESS_ROW } from "../actor/layout.ts";
import type { OutboxRecord } from "../actor/outbox.ts";
import { ProcessHost } from "../hosts/process/host.ts";
import type { CommittedCommand } from "../hosts/process/journal.ts";
import { StorageError } from "../http/gateway.ts";
import type { Timers } from "../ports/timers.ts";
import { listRelative } from "../ports/kv-store.ts";
import type { SimContext } from "./context.ts";
import { OffLoopSimStore, SimStore } from "./store.ts";
import type { RequestResult, SimHost } from "./sim-host.ts";
import type { Caller, SimSink } from "./sinks.ts";

/** One life of the process: its host, whether it still runs, and the client requests it owes an answer. */
interface Life {
  host: ProcessHost;
  alive: boolean;
  /** The commands of the write off the loop, while it is in flight. */
  writing?: readonly CommittedCommand[];
  waiting: Set<(result: RequestResult) => void>;
}

/** Timers that die with their life: a crashed process runs nothing more. */
function lifeTimers(ctx: SimContext, life: { alive: boolean }): Timers {
  return {
    setTimeout: (fn, delayMs) => ctx.sched.after(delayMs, "timer", "", () => life.alive && fn()),
    clearTimeout: (handle) => ctx.sched.clearTimeout(handle),
    defer: (fn) => void ctx.sched.at(ctx.sched.now(), "commit", "", () => life.alive && fn()),
  };
}

/** Timers that never fire: a host built only to look at what storage holds. */
const STILL: Timers = { setTimeout: () => undefined, clearTimeout: () => undefined };

/**
 * The process host under simulation: every key in one ProcessHost over one store that survives
 * crashes. A crash ends the life at once (no close: pending commits, timers and sink replies are
 * lost, requests in flight get no answer) and a new life recovers from the store, as a restarted
 * `npm start` does. Crashes can come between a sink's write and the journal row that records it.
 */
export class ProcessSimHost implements SimHost {
  readonly kind = "process";
  readonly store: SimStore;
  private life: Life;
  private lives = 0;

  /** `offLoopWrites`: commits write through writeAsync, as the Bun server's SQLite writer thread does. */
  constructor(
    private readonly ctx: SimContext,
    private readonly sinks: readonly SimSink[],
    offLoopWrites = false,
  ) {
    this.store = offLoopWrites ? new OffLoopSimStore(ctx) : new SimStore(ctx);
    this.life = this.boot();
  }

  private boot(): Life {
    const { ctx } = this;
    this.lives++;
    const life = { alive: true, waiting: new Set<(result: RequestResult) => void>() } as Life;
    const caller: Caller = {
      key: "process",
      alive: () => life.alive,
      sent: (latency) => {
        if (!ctx.faultsOn || !ctx.prng.chance(ctx.plan.crashMidDelivery)) return;
        ctx.sched.after(ctx.prng.int(latency), "crash.mid", "process", () => {
          if (this.life !== life || !ctx.faultsOn) return;
          ctx.counters.fault("crash_mid_delivery");
          this.crash();
        });
      },
    };
    life.host = new ProcessHost({
      store: this.store,
      config: ctx.config,
      clock: ctx.sched,
      random: ctx.prng,
      timers: lifeTimers(ctx, life),
      sinks: this.sinks.map((sink) => ({ name: sink.name, deliver: (records: OutboxRecord[]) => sink.deliver(records, caller) })),
      hooks: {
        committed: (commands, actorOf) => life.alive && ctx.observer.turnCommitted(commands, actorOf),
        writing: (commands) => void (life.writing = commands),
      },
    });
    if (life.host.stats.replayed) ctx.counters.path("journal_replayed", life.host.stats.replayed);
    return life;
  }

  request(_key: string, events: Event[]): Promise<RequestResult> {
    const { ctx } = this;
    const life = this.life;
    return new Promise((answer) => {
      life.waiting.add(answer);
      const reply = (result: RequestResult) => {
        if (!life.alive) return; // the crash answered it
        life.waiting.delete(answer);
        answer(result);
      };
      life.host.ingest(events).then(
        (outcomes) => {
          if (life.alive && ctx.faultsOn && ctx.prng.chance(ctx.plan.crashAfterCommit)) {
            ctx.counters.fault("crash_after_commit");
            this.crash();
            return;
          }
          reply({ ok: outcomes });
        },
        (error: unknown) => {
          if (error instanceof BackpressureError) {
            ctx.counters.path("backpressure");
            return reply({ backpressure: error.retryAfterSeconds });
          }
          if (!(error instanceof StorageError)) ctx.observer.violation(`the process host's ingest threw: ${(error as Error)?.stack ?? error}`);
          reply({ error: "storage" });
        },
      );
    });
  }

  async replayDeadLetters(key: string): Promise<number | "storage" | null> {
    try {
      return (await this.life.host.replay(key, {}))?.replayed ?? null;
    } catch (error) {
      if (error instanceof StorageError) return "storage";
      throw error;
    }
  }

  faultTargets(): string[] {
    return ["process"];
  }

  /** The process dies and starts again on the same store. */
  crash(): boolean {
    const dead = this.life;
    dead.alive = false;
    this.ctx.counters.path("actors_evicted", dead.host.stats.actorsEvicted);
    for (const answer of dead.waiting) answer({ error: "crash" });
    dead.waiting.clear();
    // A write that lands as the process dies is durable, though no one was told: the model takes it.
    if (this.store instanceof OffLoopSimStore && this.store.crashed()) this.ctx.observer.turnCommitted(dead.writing ?? [], () => undefined);
    this.ctx.counters.path("process_restart");
    if (this.ctx.broken === "lose-journal") this.store.inner.write([], this.store.inner.list(PROCESS_ROW.journalPrefix).map(([row]) => row));
    this.life = this.boot();
    return true;
  }

  evict(): boolean {
    return false; // the host evicts by itself, past maxActorsInMemory
  }

  storedRows(key: string): Array<[string, string]> {
    const prefix = PROCESS_ROW.actor(key);
    return listRelative(this.store, prefix);
  }

  /** What a restart rebuilds: a host recovering from the store (rows plus journal), never run. */
  durable(key: string): Actor | undefined {
    const { ctx } = this;
    const view = new ProcessHost({ store: this.store, config: ctx.config, clock: ctx.sched, random: ctx.prng, timers: STILL });
    return view.inspect(key);
  }

  live(key: string): Actor | undefined {
    return this.life.host.peek(key);
  }

  wakePending(): boolean {
    return true;
  }

  allRows(): Array<[string, string]> {
    return this.store.inner.list("");
  }

  /** A clean stop, once every sink has everything: no journal, no backlog marks, no outbox segments left. */
  async finish(): Promise<string | undefined> {
    this.ctx.counters.path("actors_evicted", this.life.host.stats.actorsEvicted);
    await this.untilDone(this.life.host.close());
    const rows = this.store.inner.list("").map(([k]) => k);
    const left = rows.filter((k) => k.startsWith(PROCESS_ROW.journalPrefix) || k.startsWith(PROCESS_ROW.backlogPrefix) || k.includes(`/${ACTOR_ROW.outboxPrefix}`));
    if (left.length) return `after a clean stop the store still holds ${left.length} journal, backlog or outbox rows (first: ${left.slice(0, 3).join(", ")})`;
    return undefined;
  }

  /** Waits for `work`; with off-loop writes, moving virtual time so that their writes end. */
  private async untilDone(work: Promise<void>): Promise<void> {
    if (!(this.store instanceof OffLoopSimStore)) return work;
    let done = false;
    const finished = work.finally(() => (done = true));
    for (let turn = 0; !done && turn < 100_000; turn++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!done) this.ctx.sched.advance(1);
    }
    return finished;
  }

  get stats() {
    return { storageWrites: this.store.writes, coldStarts: this.lives - 1 };
  }
}

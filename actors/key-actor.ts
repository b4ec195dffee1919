import { DurableObject } from "cloudflare:workers";
import { Actor, type IngestOutcome } from "../src/core/actor.ts";
import { read, type ActorView, type LateView, type WindowView } from "../src/core/backend.ts";
import { assert } from "../src/core/clock.ts";
import { configFromEnv, type Config } from "../src/core/config.ts";
import type { Event } from "../src/core/event.ts";
import type { WindowQuery } from "../src/core/views.ts";
import { DurableObjectKvStore } from "../src/adapter/workers/do-store.ts";
import { stringVars, type WorkerEnv } from "../src/adapter/workers/env.ts";

const ACTOR_ROWS = "a/";
const KEY_ROW = "key";

/**
 * One key's actor as a SQLite-backed Durable Object: thin glue over the portable core.
 * Each RPC method runs synchronously up to its storage commit, so calls never interleave; the
 * output gate releases the reply only once the commit (dedupe IDs, aggregates, key) is durable.
 * Its single alarm is set to the earliest time any part of the actor has work (window closing).
 */
export class KeyActor extends DurableObject<WorkerEnv> {
  private readonly config: Config;
  private readonly store: DurableObjectKvStore;
  private actor: Actor | undefined;
  private alarmAt: number | null | undefined;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    this.config = configFromEnv(stringVars(env));
    this.store = new DurableObjectKvStore(ctx.storage);
  }

  async ingest(key: string, events: Event[]): Promise<IngestOutcome[]> {
    const actor = this.load(key);
    const firstUse = actor.isNew;
    const outcomes = actor.ingest(events, Date.now());
    await this.commit(actor, firstUse ? [[KEY_ROW, key]] : []);
    return outcomes;
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

  /** Alarms are at-least-once: tick() is idempotent, so a repeated or retried alarm is harmless. */
  override async alarm(): Promise<void> {
    this.alarmAt = undefined;
    // An alarm wake carries no request and no name: the key comes from storage.
    const key = this.store.list(KEY_ROW).find(([k]) => k === KEY_ROW)?.[1];
    if (key === undefined) return;
    const actor = this.load(key);
    actor.tick(Date.now());
    await this.commit(actor, []);
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

  private async commit(actor: Actor, extra: Array<[string, string]>): Promise<void> {
    const { puts, deletes } = actor.drainWrites();
    try {
      this.store.write([...extra, ...puts.map(([k, v]): [string, string] => [ACTOR_ROWS + k, v])], deletes.map((k) => ACTOR_ROWS + k));
    } catch (error) {
      // Memory is now ahead of storage: drop it, so the next call reloads what is durable.
      this.actor = undefined;
      throw error;
    }
    this.actor = actor;
    const wake = actor.nextWake();
    if (wake === this.alarmAt) return;
    this.alarmAt = wake;
    if (wake === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(wake);
  }
}

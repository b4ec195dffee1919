import { DurableObject } from "cloudflare:workers";
import { DurableHost, type IngestResult } from "../src/hosts/durable/durable-host.ts";
import type { ActorView, DeadLetterView, LateView, OutboxView, WindowView } from "../src/http/views.ts";
import type { ReplayFilter } from "../src/http/gateway.ts";
import { readSettings } from "../src/settings/env.ts";
import { SinkChannel } from "../src/delivery/channel.ts";
import type { Event } from "../src/actor/event.ts";
import type { WindowQuery } from "../src/actor/windows.ts";
import { DurableObjectKvStore } from "../src/hosts/durable/do-store.ts";
import { stringVars, type WorkerEnv } from "../src/hosts/durable/env.ts";
import { systemEnv } from "../src/ports/system.ts";
import { createSinks } from "../src/sinks/index.ts";

/**
 * One key's actor as a SQLite-backed Durable Object: RPC methods over DurableHost
 * (src/hosts/durable/durable-host.ts), the same logic the simulator runs. Each method runs synchronously up
 * to its storage commit, so calls never interleave; the output gate releases the reply only once
 * the commit (dedupe IDs, aggregates, outbox, key) is durable.
 */
export class KeyActor extends DurableObject<WorkerEnv> {
  private readonly object: DurableHost;

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    const { config, sinks: sinkSettings } = readSettings(stringVars(env));
    const sinks = createSinks(sinkSettings, { poolPerDelivery: true });
    this.object = new DurableHost({
      config,
      clock: systemEnv.clock,
      store: new DurableObjectKvStore(ctx.storage),
      alarms: ctx.storage,
      channels: sinks.map((sink) => new SinkChannel(sink, config.delivery, systemEnv.random)),
    });
    void ctx.blockConcurrencyWhile(async () => this.object.knownAlarm(await ctx.storage.getAlarm()));
  }

  async ingest(key: string, events: Event[]): Promise<IngestResult> {
    const { result, scheduled } = this.object.ingest(key, events);
    await scheduled;
    return result;
  }

  async state(key: string): Promise<ActorView | null> {
    return this.object.state(key);
  }

  async windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    return this.object.windows(key, query);
  }

  async late(key: string): Promise<LateView[] | null> {
    return this.object.late(key);
  }

  async deadLetters(key: string): Promise<DeadLetterView[] | null> {
    return this.object.deadLetters(key);
  }

  async replay(key: string, filter: ReplayFilter): Promise<{ replayed: number } | null> {
    const { result, scheduled } = this.object.replay(key, filter);
    await scheduled;
    return result;
  }

  async outbox(key: string): Promise<OutboxView | null> {
    return this.object.outbox(key);
  }

  override async alarm(info?: AlarmInvocationInfo): Promise<void> {
    await this.object.alarm(info?.retryCount ?? 0);
  }
}

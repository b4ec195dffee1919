import { DurableObject } from "cloudflare:workers";
import { DurableHost } from "../src/hosts/durable/durable-host.ts";
import type { ActorIngestResult } from "../src/hosts/durable/gateway.ts";
import type { ActorView, DeadLetterView, LateView, OutboxView, WindowView } from "../src/http/views.ts";
import type { AlertRecordView } from "../src/delivery/records.ts";
import type { ReplayFilter } from "../src/http/gateway.ts";
import { readSettings } from "../src/settings/env.ts";
import { CONFIG_FILE } from "./config-file.ts";
import { Logger, sinkTroubleLog } from "../src/logging/logger.ts";
import { SinkChannel } from "../src/delivery/channel.ts";
import type { Event } from "../src/actor/event.ts";
import type { WindowQuery } from "../src/actor/windows.ts";
import { DurableObjectKvStore } from "../src/hosts/durable/do-store.ts";
import { stringVars, type WorkerEnv } from "../src/hosts/durable/env.ts";
import { systemEnv, systemTimers } from "../src/ports/system.ts";
import { createSinks } from "../src/sinks/index.ts";
import { splitActorName } from "../src/actor/tenant.ts";
import { limitFor, type Config } from "../src/settings/config.ts";
import type { Admission, TenantLimits } from "../src/hosts/durable/tenant-registry.ts";
import type { TenantRegistry } from "./tenant-registry.ts";
import { ActorMetrics, HUB_NAME, metricsSettings, type MetricsHubStub } from "../src/hosts/durable/metrics-reporter.ts";
import { uuidv7 } from "../src/ports/uuid.ts";
import { UsageMeter } from "../src/hosts/durable/usage.ts";

import { resumeFrames, socketMessage } from "../src/live/socket.ts";

/** The tag of the hibernatable WebSockets watching this object's key. */
const LIVE_TAG = "live";
const REPORT_BYTES = 64 * 1024;
const REPORT_INTERVAL_MS = 60_000;

/**
 * One key's actor as a SQLite-backed Durable Object: RPC methods over DurableHost
 * (src/hosts/durable/durable-host.ts), the same logic the simulator runs. Each method runs synchronously up
 * to its storage commit, so calls never interleave; the output gate releases the reply only once
 * the commit (dedupe IDs, aggregates, outbox, key) is durable.
 */
export class KeyActor extends DurableObject<WorkerEnv> {
  private readonly object: DurableHost;
  private readonly config: Config;
  /** The database size last told to the tenant's registry, and when. */
  private reported: { bytes: number; atMs: number } | undefined;
  /** The registry's last answer: the tenant is at its quota of bytes. */
  private overBytes: Extract<Admission, { ok: false }> | undefined;
  /** Reports the sink channels' counts and delivery state to the metrics hub (binding METRICS). */
  private readonly metrics: ActorMetrics | undefined;
  /** What this object did that Cloudflare bills, until an ingest reply or a metrics report carries it out. */
  private readonly usage = new UsageMeter();

  constructor(ctx: DurableObjectState, env: WorkerEnv) {
    super(ctx, env);
    const { config, sinks: sinkSettings, logLevel } = readSettings(stringVars(env), CONFIG_FILE);
    const logger = new Logger(logLevel, (line) => console.log(line), () => systemEnv.clock.now());
    this.config = config;
    const sinks = createSinks(sinkSettings, { poolPerDelivery: true });
    const channels = sinks.map((sink) => new SinkChannel(sink, config.delivery, systemEnv.random));
    this.object = new DurableHost({
      config,
      clock: systemEnv.clock,
      store: new DurableObjectKvStore(ctx.storage, this.usage),
      alarms: {
        setAlarm: (atMs) => (this.usage.alarmSet(), ctx.storage.setAlarm(atMs)),
        deleteAlarm: () => (this.usage.alarmSet(), ctx.storage.deleteAlarm()),
      },
      channels,
      timers: systemTimers,
      sinkTrouble: sinkTroubleLog(logger),
    });
    const metrics = metricsSettings(stringVars(env));
    const hub = env.METRICS;
    if (metrics.on && hub && channels.length) {
      const stub = () => hub.getByName(HUB_NAME) as unknown as MetricsHubStub;
      const { intervalMs } = metrics;
      const usage = () => this.usage.drain();
      this.metrics = new ActorMetrics({ id: ctx.id.toString(), epoch: uuidv7(systemEnv), intervalMs, clock: systemEnv.clock, channels, send: (report) => stub().report(report), usage });
    }
    void ctx.blockConcurrencyWhile(async () => this.object.knownAlarm(await ctx.storage.getAlarm()));
    // Woken from hibernation with sockets still open: they watch the key again.
    const sockets = ctx.getWebSockets(LIVE_TAG);
    if (sockets.length) this.watchWithSockets((sockets[0]!.deserializeAttachment() as { key: string }).key);
  }

  /** Stops the sockets' subscription to the live feed, while they watch. */
  private unwatchSockets: (() => void) | undefined;

  /**
   * A live view over a hibernatable WebSocket (the Worker forwards the upgrade here): the object
   * may hibernate between events while sockets stay open, unlike a server-sent events stream.
   */
  override async fetch(request: Request): Promise<Response> {
    this.usage.call();
    const url = new URL(request.url);
    const key = url.searchParams.get("key");
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket" || key === null) {
      return Response.json({ error: { code: "upgrade_required", message: "this object takes WebSocket upgrades for live views only" } }, { status: 426 });
    }
    const open = this.ctx.getWebSockets(LIVE_TAG).length;
    if (open >= this.config.liveMaxStreams) {
      const message = `this key has ${open} live sockets open, the most allowed (KEYFLOW_LIVE_MAX_STREAMS); close one first`;
      return Response.json({ error: { code: "too_many_streams", message } }, { status: 429, headers: { "Retry-After": "5" } });
    }
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [LIVE_TAG]);
    server.serializeAttachment({ key });
    for (const frame of resumeFrames(this.object.liveFeed(key), url.searchParams.get("last_event_id"))) server.send(frame);
    this.watchWithSockets(key);
    return new Response(null, { status: 101, webSocket: client });
  }

  private watchWithSockets(key: string): void {
    if (this.unwatchSockets) return;
    const feed = this.object.liveFeed(key);
    this.unwatchSockets = this.object.watch(key, {
      deliver: (items) => {
        const frames = items.map((item) => socketMessage(feed, item));
        for (const ws of this.ctx.getWebSockets(LIVE_TAG)) {
          try {
            for (const frame of frames) ws.send(frame);
          } catch {
            // A socket closing as this is sent: its close event follows.
          }
        }
      },
      end: () => undefined,
    });
  }

  /** Clients send nothing on a live socket (protocol pings are answered by the runtime). */
  override async webSocketMessage(): Promise<void> {}

  override async webSocketClose(): Promise<void> {
    if (this.ctx.getWebSockets(LIVE_TAG).every((ws) => ws.readyState !== WebSocket.OPEN)) {
      this.unwatchSockets?.();
      this.unwatchSockets = undefined;
    }
  }

  async ingest(key: string, events: Event[]): Promise<ActorIngestResult> {
    this.usage.call();
    const limits = this.limits(key);
    if (limits) {
      const refused = await this.admit(key, limits);
      if (refused) return this.withUsage({ quota: { quota: refused.quota, limit: refused.limit, used: refused.used } });
    }
    const { result, scheduled } = this.object.ingest(key, events);
    await scheduled;
    if (limits && "outcomes" in result) this.reportSize(key, limits);
    return this.withUsage(result);
  }

  /** The reply, carrying what this object did since it last told anyone (the Worker counts it into its metrics). */
  private withUsage(result: ActorIngestResult): ActorIngestResult {
    const usage = this.usage.drain();
    return usage ? { ...result, usage } : result;
  }

  /** The quotas of the key's tenant, if it has any (and the registry binding is there). */
  private limits(key: string): TenantLimits | undefined {
    const { tenant } = splitActorName(key);
    const limits = { maxKeys: limitFor(this.config.tenantMaxKeys, tenant), maxBytes: limitFor(this.config.tenantMaxBytes, tenant) };
    return this.env.TENANTS && (limits.maxKeys < Infinity || limits.maxBytes < Infinity) ? limits : undefined;
  }

  private registry(key: string): TenantRegistry {
    const tenants = this.env.TENANTS as unknown as DurableObjectNamespace<TenantRegistry>;
    return tenants.getByName(splitActorName(key).tenant) as unknown as TenantRegistry;
  }

  /** A new key asks its tenant's registry once; a known key is refused only while the tenant is over its bytes. */
  private async admit(key: string, limits: TenantLimits): Promise<Extract<Admission, { ok: false }> | undefined> {
    if (!this.object.isNew(key)) return this.overBytes;
    const admission = await this.registry(key).admit(key, limits);
    return admission.ok ? undefined : admission;
  }

  /**
   * Tells the registry this object's database size when it moved by 64 KiB or a tenth, or a minute
   * passed: so a tenant's bytes are known to within that, and an actor learns the tenant is over its
   * quota at its next report. Not awaited: the answer only updates what the next ingest checks.
   */
  private reportSize(key: string, limits: TenantLimits): void {
    if (limits.maxBytes === Infinity) return;
    const bytes = this.ctx.storage.sql.databaseSize;
    const nowMs = Date.now();
    const last = this.reported;
    if (last && Math.abs(bytes - last.bytes) < Math.max(REPORT_BYTES, last.bytes / 10) && nowMs - last.atMs < REPORT_INTERVAL_MS) return;
    this.reported = { bytes, atMs: nowMs };
    this.registry(key)
      .report(key, bytes, limits)
      .then(
        (answer) => void (this.overBytes = answer.ok ? undefined : answer),
        () => void (this.reported = undefined),
      );
  }

  async state(key: string): Promise<ActorView | null> {
    this.usage.call();
    return this.object.state(key);
  }

  async windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    this.usage.call();
    return this.object.windows(key, query);
  }

  async alerts(key: string): Promise<AlertRecordView[] | null> {
    this.usage.call();
    return this.object.alerts(key);
  }

  async late(key: string): Promise<LateView[] | null> {
    this.usage.call();
    return this.object.late(key);
  }

  async deadLetters(key: string): Promise<DeadLetterView[] | null> {
    this.usage.call();
    return this.object.deadLetters(key);
  }

  async replay(key: string, filter: ReplayFilter): Promise<{ replayed: number } | null> {
    this.usage.call();
    const { result, scheduled } = this.object.replay(key, filter);
    await scheduled;
    this.reportMetrics();
    return result;
  }

  /** The key's live view (server-sent events); the stream keeps the object awake while it is open. */
  async live(key: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array>> {
    this.usage.call();
    return this.object.live(key, lastEventId);
  }

  async outbox(key: string): Promise<OutboxView | null> {
    this.usage.call();
    return this.object.outbox(key);
  }

  override async alarm(info?: AlarmInvocationInfo): Promise<void> {
    this.usage.alarm();
    await this.object.alarm(info?.retryCount ?? 0);
    this.reportMetrics();
  }

  /** Not awaited: the hub's answer changes nothing here, and a report that fails goes again with the next. */
  private reportMetrics(): void {
    const metrics = this.metrics;
    if (metrics) void this.ctx.storage.getAlarm().then((at) => metrics.afterRun(this.object.loaded, at), () => undefined);
  }
}

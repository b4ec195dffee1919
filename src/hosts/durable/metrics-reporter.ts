import type { Actor } from "../../actor/actor.ts";
import type { ChannelStatus, SinkChannel } from "../../delivery/channel.ts";
import { KeyflowMetrics } from "../../metrics/keyflow.ts";
import type { Clock } from "../../ports/clock.ts";
import type { Timers } from "../../ports/timers.ts";
import { ConfigError } from "../../settings/config.ts";
import { EnvReader, type EnvVars } from "../../settings/reader.ts";
import { countUsage, type DoUsage } from "./usage.ts";
import { RESEND_WITHIN_MS, type ActorSinkState, type ActorState, type MetricsReport } from "./metrics-hub.ts";

/** The name of the one metrics hub object (binding METRICS). */
export const HUB_NAME = "metrics";
/** An isolate's report waits in a waitUntil, which Workers ends 30 s after the response: never longer than this. */
const ISOLATE_MAX_WAIT_MS = 20_000;
/** How long an isolate reuses the hub's answer for /ready. */
const READY_CACHE_MS = 5_000;

/** The metrics hub's RPC methods (actors/metrics-hub.ts), as reporters and the Worker call them. */
export interface MetricsHubStub {
  report(report: MetricsReport): Promise<{ applied: boolean }>;
  text(): Promise<string>;
  sinkStatus(): Promise<ChannelStatus[]>;
}

export interface MetricsSettings {
  /** KEYFLOW_METRICS=off: no counting, no reports, no GET /metrics. */
  on: boolean;
  /** KEYFLOW_METRICS_INTERVAL (10s): how often each isolate and each busy object reports, at most. */
  intervalMs: number;
}

/** KEYFLOW_METRICS and KEYFLOW_METRICS_INTERVAL on Workers; throws ConfigError naming a bad one. */
export function metricsSettings(env: EnvVars): MetricsSettings {
  const r = new EnvReader(env);
  const on = r.text("KEYFLOW_METRICS", "on");
  if (on !== "on" && on !== "off") r.problem("KEYFLOW_METRICS", on, 'must be "on" or "off"');
  const intervalMs = r.durationMs("KEYFLOW_METRICS_INTERVAL", "10s");
  if (intervalMs && (intervalMs < 1_000 || intervalMs > 300_000)) r.problem("KEYFLOW_METRICS_INTERVAL", env.KEYFLOW_METRICS_INTERVAL!, "must be from 1s to 5m");
  if (r.problems.length) throw new ConfigError(r.problems);
  return { on: on === "on", intervalMs };
}

type ReportBody = Pick<MetricsReport, "series" | "actor">;

/**
 * One reporter's reports to the hub, in order: a report is kept until the hub acknowledges it and
 * sent again, with the same sequence number, at the next flush; nothing newer goes before it. So a
 * lost answer never counts twice (the hub knows the number) and a lost report only delays its
 * counts — unless its reporter ends first or it is older than RESEND_WITHIN_MS, when it is dropped.
 */
export class Reporter {
  private seq = 0;
  private unacked: { report: MetricsReport; madeAt: number } | undefined;
  private lastMadeAt = -Infinity;
  private sending: Promise<void> | undefined;
  /** A forced flush was asked for while a report was in flight: it runs when that one is answered. */
  private again = false;

  constructor(
    private readonly opts: {
      reporter: string;
      epoch: string;
      intervalMs: number;
      clock: Clock;
      collect: () => ReportBody | undefined;
      send: (report: MetricsReport) => Promise<unknown>;
    },
  ) {}

  /** Sends what was collected since the last report, if `force` or the interval has passed. Never rejects. */
  flush(force = false): Promise<void> {
    if (this.sending) {
      this.again ||= force;
      return this.sending;
    }
    this.sending = this.run(force).finally(() => (this.sending = undefined));
    return this.sending;
  }

  private async run(force: boolean): Promise<void> {
    for (;;) {
      const resend = this.unacked !== undefined;
      const report = this.next(force);
      if (!report) return;
      try {
        await this.opts.send(report);
      } catch {
        return; // kept: the next flush sends it again
      }
      this.unacked = undefined;
      if (resend) continue;
      if (!this.again) return;
      this.again = false;
      force = true;
    }
  }

  private next(force: boolean): MetricsReport | undefined {
    const now = this.opts.clock.now();
    if (this.unacked && now - this.unacked.madeAt > RESEND_WITHIN_MS) this.unacked = undefined;
    if (this.unacked) return this.unacked.report;
    if (!force && now - this.lastMadeAt < this.opts.intervalMs) return undefined;
    const body = this.opts.collect();
    if (!body) return undefined;
    this.lastMadeAt = now;
    const report: MetricsReport = { reporter: this.opts.reporter, epoch: this.opts.epoch, seq: ++this.seq, ...body };
    this.unacked = { report, madeAt: now };
    return report;
  }
}

/**
 * A key's Durable Object's part: the deltas of its sink channels' counters and its delivery state,
 * reported after an alarm (or a replay) at most once per interval — and at once when no alarm will
 * follow within the interval, so what an object did before it goes idle is not left unreported.
 */
export class ActorMetrics {
  private readonly counters = new KeyflowMetrics();
  private readonly sinkCounters = this.counters.sinkMetrics();
  private readonly doCounters = this.counters.durableObjectMetrics();
  /** The channels' counters at the last report. */
  private readonly reported = new Map<string, ChannelStatus>();
  private lastState = "";
  private actor: Actor | undefined;
  private readonly reporter: Reporter;

  constructor(
    private readonly opts: {
      /** The object's ID (never its key). */
      id: string;
      /** This incarnation's UUIDv7. */
      epoch: string;
      intervalMs: number;
      clock: Clock;
      channels: readonly SinkChannel[];
      send: (report: MetricsReport) => Promise<unknown>;
      /** What the object did since it last told anyone (drained), reported as the keyflow_do_* counters. */
      usage?: () => DoUsage | undefined;
    },
  ) {
    this.reporter = new Reporter({ reporter: opts.id, epoch: opts.epoch, intervalMs: opts.intervalMs, clock: opts.clock, send: opts.send, collect: () => this.collect() });
  }

  /** After an alarm or a replay: `actor` is the one in memory (if any), `nextAlarmAt` the object's alarm. */
  afterRun(actor: Actor | undefined, nextAlarmAt: number | null): Promise<void> {
    this.actor = actor;
    const idle = nextAlarmAt === null || nextAlarmAt - this.opts.clock.now() > this.opts.intervalMs;
    return this.reporter.flush(idle);
  }

  private collect(): ReportBody | undefined {
    const { delivered, failed, attempts, deadLettered } = this.sinkCounters;
    for (const channel of this.opts.channels) {
      const now = channel.status();
      const then = this.reported.get(channel.name);
      this.reported.set(channel.name, now);
      const add = (counter: typeof delivered, field: "delivered" | "transientFailures" | "attempts" | "deadLettered") => {
        const by = now[field] - (then?.[field] ?? 0);
        if (by > 0) counter.inc([channel.name], by);
      };
      add(delivered, "delivered");
      add(failed, "transientFailures");
      add(attempts, "attempts");
      add(deadLettered, "deadLettered");
    }
    const usage = this.opts.usage?.();
    if (usage) countUsage(this.doCounters, "key", usage);
    const series = this.counters.registry.series(true);
    const state = this.actor && actorState(this.actor, this.opts.channels);
    const text = state ? JSON.stringify(state) : this.lastState;
    if (!series.length && text === this.lastState) return undefined;
    this.lastState = text;
    return state ? { series, actor: state } : { series };
  }
}

/** An actor's delivery state: per sink its backlog, its oldest record's arrival, and its channel's breaker. */
export function actorState(actor: Actor, channels: readonly SinkChannel[]): ActorState {
  const { outbox } = actor;
  const sinks = channels.map((channel): ActorSinkState => {
    const status = channel.status();
    const backlog = outbox.backlog(channel.name);
    const oldest = backlog ? outbox.record(outbox.position(channel.name)) : undefined;
    const oldestAt = oldest?.kind === "event" ? oldest.receivedAt : oldest?.kind === "window" ? (oldest.closedAt ?? null) : oldest?.kind === "alert" ? oldest.firedAt : null;
    return {
      sink: channel.name,
      backlog,
      oldestAt,
      breaker: status.breaker,
      failingSince: status.failingSince,
      lastError: status.failingSince === null ? null : status.lastError,
      lastLatencyMs: status.lastLatencyMs,
      consecutiveFailures: status.consecutiveFailures,
    };
  });
  return { sinks, deadLetters: outbox.deadLetters().length };
}

/** Writes data points to a Workers Analytics Engine dataset (the binding's one method). */
export interface DataPointWriter {
  writeDataPoint(point: { indexes?: string[]; blobs?: string[]; doubles?: number[] }): void;
}

/** The isolate's metrics, also writing each request to Analytics Engine: one data point, never awaited. */
class AnalyticsMetrics extends KeyflowMetrics {
  constructor(private readonly analytics: DataPointWriter) {
    super();
  }

  override request(route: string, method: string, status: number, seconds: number): void {
    super.request(route, method, status, seconds);
    try {
      this.analytics.writeDataPoint({ indexes: [route], blobs: [route, method, String(status)], doubles: [seconds] });
    } catch {
      // A full or missing dataset never fails a request.
    }
  }
}

/**
 * A Worker isolate's part: the HTTP layer counts into `metrics` as it does self-hosted (requests,
 * events by tenant, type and outcome, ingest latency), and the isolate reports the deltas to the hub
 * at most once per interval, from a waitUntil after the request that found none scheduled.
 */
export class IsolateMetrics {
  readonly metrics: KeyflowMetrics;
  private readonly doCounters: ReturnType<KeyflowMetrics["durableObjectMetrics"]>;
  private readonly reporter: Reporter;
  /** When the scheduled report runs; null when none is. */
  private flushAt: number | null = null;
  private ready: { at: number; statuses: Promise<ChannelStatus[]> } | undefined;

  constructor(
    private readonly opts: {
      /** This isolate's random ID, and its UUIDv7. */
      id: string;
      epoch: string;
      intervalMs: number;
      clock: Clock;
      timers: Timers;
      hub: () => MetricsHubStub;
      analytics?: DataPointWriter;
    },
  ) {
    this.metrics = opts.analytics ? new AnalyticsMetrics(opts.analytics) : new KeyflowMetrics();
    this.doCounters = this.metrics.durableObjectMetrics();
    this.reporter = new Reporter({
      reporter: opts.id,
      epoch: opts.epoch,
      intervalMs: opts.intervalMs,
      clock: opts.clock,
      send: (report) => opts.hub().report(report),
      collect: () => {
        const series = this.metrics.registry.series(true);
        return series.length ? { series } : undefined;
      },
    });
  }

  /** After each request: schedules a report unless one is (one that never ran, its context ended, is replaced). */
  afterRequest(waitUntil: (promise: Promise<unknown>) => void): void {
    const { clock, timers, intervalMs } = this.opts;
    const now = clock.now();
    const wait = Math.min(intervalMs, ISOLATE_MAX_WAIT_MS);
    if (this.flushAt !== null && now < this.flushAt + 30_000) return;
    this.flushAt = now + wait;
    waitUntil(
      new Promise<void>((resolve) => timers.setTimeout(resolve, wait)).then(() => {
        this.flushAt = null;
        return this.reporter.flush(true);
      }),
    );
  }

  /** What a Durable Object of class `object` told this isolate it did (reported with the isolate's counts). */
  countUsage(object: string, usage: DoUsage): void {
    countUsage(this.doCounters, object, usage);
  }

  /** GET /metrics: this isolate's own counts first, then the hub's totals. */
  async scrape(): Promise<string> {
    await this.reporter.flush(true);
    return this.opts.hub().text();
  }

  /**
   * The sinks' state for /ready, asked of the hub at most once per READY_CACHE_MS per isolate (a
   * probe every second costs no more); none when the hub cannot be asked.
   */
  sinkStatus(): Promise<ChannelStatus[]> {
    const now = this.opts.clock.now();
    if (!this.ready || now - this.ready.at >= READY_CACHE_MS) {
      this.ready = { at: now, statuses: this.opts.hub().sinkStatus().catch(() => []) };
    }
    return this.ready.statuses;
  }
}

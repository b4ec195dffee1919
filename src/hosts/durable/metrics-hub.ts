import type { ChannelStatus } from "../../delivery/channel.ts";
import { KeyflowMetrics } from "../../metrics/keyflow.ts";
import { countUsage, type DoUsage } from "./usage.ts";
import type { Counter, Series } from "../../metrics/registry.ts";
import type { KvStore } from "../../ports/kv-store.ts";

/** A key's breaker and failure state count for readiness this long after its object's last report. */
export const STALE_AFTER_MS = 5 * 60_000;
/** A reporter with nothing left to show is forgotten this long after its last report. */
export const FORGET_AFTER_MS = 60 * 60_000;
/** A report not yet acknowledged is sent again only this long after it was made: the hub still knows its sequence number. */
export const RESEND_WITHIN_MS = FORGET_AFTER_MS / 2;
const SWEEP_EVERY_MS = 60_000;

/** One sink's delivery state in one key's Durable Object, as its report carries it. */
export interface ActorSinkState {
  sink: string;
  /** Outbox records not yet delivered to the sink, and when the oldest of them arrived (epoch ms). */
  backlog: number;
  oldestAt: number | null;
  breaker: ChannelStatus["breaker"];
  failingSince: number | null;
  lastError: string | null;
  lastLatencyMs: number | null;
  consecutiveFailures: number;
}

/** A Durable Object's delivery state now: per sink, and the dead letters it holds. */
export interface ActorState {
  sinks: ActorSinkState[];
  deadLetters: number;
}

/** What a reporter (a Worker isolate, or a key's Durable Object) tells the hub. */
export interface MetricsReport {
  /** A Worker isolate's random ID, or a Durable Object's ID (never its key). */
  reporter: string;
  /** The reporter's incarnation, a UUIDv7 (a later one sorts after); `seq` counts from 1 in each. */
  epoch: string;
  seq: number;
  /** Counter and histogram deltas since the reporter's previous report. */
  series: Series[];
  /** A Durable Object's delivery state, when it has one. */
  actor?: ActorState;
}

/** What the hub remembers of a reporter: its last report's number, when it came, and its actor's state. */
interface Reporter {
  epoch: string;
  seq: number;
  at: number;
  actor?: ActorState;
}

const ROW = {
  /** A counter's or histogram's totals: s/["name","label",…] -> Series. */
  series: "s/",
  /** r/<reporter> -> Reporter. */
  reporter: "r/",
} as const;

export interface MetricsHubOptions {
  /** The sinks configured: each is shown (with zero counts) before any delivery. */
  sinks: readonly string[];
  staleAfterMs?: number;
  forgetAfterMs?: number;
}

/**
 * keyflow's metrics on Workers, where every isolate and every key's Durable Object has its own
 * memory: one hub object (actors/metrics-hub.ts) that each of them reports to, at most once per
 * interval. Counters and histograms arrive as deltas and are summed exactly; each report is applied
 * once (its reporter, incarnation and sequence number are stored in the same write as the totals,
 * so a retry whose answer was lost changes nothing). Gauges (backlog, dead letters, breakers) are
 * each object's last reported state, summed at scrape time. Plain logic over the object's storage,
 * with the time passed in: it runs anywhere.
 */
export class MetricsHub {
  private totals!: KeyflowMetrics;
  private sinkMetrics!: ReturnType<KeyflowMetrics["sinkMetrics"]>;
  private doCounters!: ReturnType<KeyflowMetrics["durableObjectMetrics"]>;
  private readonly reporters = new Map<string, Reporter>();
  private sweptAt = -Infinity;
  private readonly staleAfterMs: number;
  private readonly forgetAfterMs: number;

  constructor(
    private readonly store: KvStore,
    private readonly opts: MetricsHubOptions,
  ) {
    this.staleAfterMs = opts.staleAfterMs ?? STALE_AFTER_MS;
    this.forgetAfterMs = opts.forgetAfterMs ?? FORGET_AFTER_MS;
    this.load();
  }

  /**
   * Applies a report unless it was applied already (same incarnation, a sequence number not above
   * the last) or comes from an earlier incarnation of its reporter; either way it is answered.
   */
  report(report: MetricsReport, now: number): { applied: boolean } {
    if (!wellFormed(report)) return { applied: false };
    const known = this.reporters.get(report.reporter);
    if (known && (report.epoch < known.epoch || (report.epoch === known.epoch && report.seq <= known.seq))) return { applied: false };
    const touched = this.totals.absorb(report.series);
    const entry: Reporter = { epoch: report.epoch, seq: report.seq, at: now };
    const actor = report.actor ?? known?.actor;
    if (actor) entry.actor = actor;
    const puts: Array<[string, string]> = touched.map((s) => [ROW.series + JSON.stringify([s.name, ...s.labels]), JSON.stringify(s)]);
    puts.push([ROW.reporter + report.reporter, JSON.stringify(entry)]);
    try {
      this.store.write(puts, this.sweep(now));
    } catch (error) {
      // Memory is ahead of storage now: start again from what is stored.
      this.load();
      throw error;
    }
    this.reporters.set(report.reporter, entry);
    return { applied: true };
  }

  /**
   * The hub's own requests and rows (object="metrics"): counted in memory only, since storing them
   * would cost rows of their own; they start again from zero when the hub restarts.
   */
  countOwn(usage: DoUsage | undefined): void {
    if (usage) countUsage(this.doCounters, "metrics", usage);
  }

  /** The Prometheus text: the summed counters and histograms, and the gauges of the objects' last reports. */
  text(now: number): string {
    const { breaker, backlog, oldest, dlq } = this.sinkMetrics;
    for (const gauge of [breaker, backlog, oldest, dlq]) gauge.reset();
    const sinks = new Map(this.opts.sinks.map((sink) => [sink, { records: 0, oldestAt: null as number | null, breakers: { closed: 0, open: 0, half_open: 0 } }]));
    let deadLetters = 0;
    for (const r of this.reporters.values()) {
      if (!r.actor) continue;
      deadLetters += r.actor.deadLetters;
      const fresh = now - r.at <= this.staleAfterMs;
      for (const s of r.actor.sinks) {
        let sum = sinks.get(s.sink);
        if (!sum) sinks.set(s.sink, (sum = { records: 0, oldestAt: null, breakers: { closed: 0, open: 0, half_open: 0 } }));
        sum.records += s.backlog;
        if (s.backlog > 0 && s.oldestAt !== null && (sum.oldestAt === null || s.oldestAt < sum.oldestAt)) sum.oldestAt = s.oldestAt;
        if (fresh) sum.breakers[s.breaker]++;
      }
    }
    for (const [sink, sum] of sinks) {
      backlog.set([sink], sum.records);
      oldest.set([sink], sum.oldestAt === null ? 0 : Math.max(0, (now - sum.oldestAt) / 1000));
      for (const [state, n] of Object.entries(sum.breakers)) breaker.set([sink, state], n);
    }
    dlq.set([], deadLetters);
    return this.totals.text();
  }

  /**
   * Each sink's state for /ready, from the objects that reported in the last `staleAfterMs`: down if
   * any of them has its breaker open, else degraded if any is failing; failing since the earliest.
   */
  sinkStatus(now: number): ChannelStatus[] {
    const names = new Set(this.opts.sinks);
    const states = new Map<string, Array<{ at: number; s: ActorSinkState }>>();
    for (const r of this.reporters.values()) {
      if (!r.actor || now - r.at > this.staleAfterMs) continue;
      for (const s of r.actor.sinks) {
        names.add(s.sink);
        (states.get(s.sink) ?? states.set(s.sink, []).get(s.sink)!).push({ at: r.at, s });
      }
    }
    return [...names].map((sink) => {
      const seen = (states.get(sink) ?? []).sort((a, b) => a.at - b.at);
      const down = seen.filter(({ s }) => s.breaker !== "closed");
      const failing = down.length ? down : seen.filter(({ s }) => s.failingSince !== null);
      const since = failing.map(({ s }) => s.failingSince).filter((t): t is number => t !== null);
      const count = (counter: Counter) => {
        const total = counter.total([sink]);
        return total && "value" in total ? total.value : 0;
      };
      const { delivered, deadLettered, failed, attempts } = this.sinkMetrics;
      return {
        sink,
        breaker: down.some(({ s }) => s.breaker === "open") ? "open" : down.length ? "half_open" : "closed",
        retryAt: null,
        consecutiveFailures: Math.max(0, ...failing.map(({ s }) => s.consecutiveFailures)),
        lastError: failing.at(-1)?.s.lastError ?? null,
        failingSince: since.length ? Math.min(...since) : null,
        lastLatencyMs: seen.filter(({ s }) => s.lastLatencyMs !== null).at(-1)?.s.lastLatencyMs ?? null,
        delivered: count(delivered),
        deadLettered: count(deadLettered),
        transientFailures: count(failed),
        attempts: count(attempts),
        breakerOpened: 0,
        breakerClosed: 0,
      };
    });
  }

  /** How many reporters the hub remembers (for tests and the cost note). */
  get reporterCount(): number {
    return this.reporters.size;
  }

  private load(): void {
    this.totals = new KeyflowMetrics();
    this.sinkMetrics = this.totals.sinkMetrics();
    this.doCounters = this.totals.durableObjectMetrics();
    const { delivered, failed, attempts, deadLettered } = this.sinkMetrics;
    for (const sink of this.opts.sinks) for (const counter of [delivered, failed, attempts, deadLettered]) counter.inc([sink], 0);
    this.totals.absorb(this.store.list(ROW.series).map(([, v]) => JSON.parse(v) as Series));
    this.reporters.clear();
    for (const [k, v] of this.store.list(ROW.reporter)) this.reporters.set(k.slice(ROW.reporter.length), JSON.parse(v) as Reporter);
  }

  /**
   * At most once a minute: the rows of reporters with nothing left to show (no backlog, no dead
   * letters) that last reported more than `forgetAfterMs` ago, to delete with the next write.
   */
  private sweep(now: number): string[] {
    if (now - this.sweptAt < SWEEP_EVERY_MS) return [];
    this.sweptAt = now;
    const gone: string[] = [];
    for (const [id, r] of this.reporters) {
      if (now - r.at <= this.forgetAfterMs) continue;
      if (r.actor && (r.actor.deadLetters > 0 || r.actor.sinks.some((s) => s.backlog > 0))) continue;
      this.reporters.delete(id);
      gone.push(ROW.reporter + id);
    }
    return gone;
  }
}

/** Reports come from keyflow's own code, but are still checked before their strings name a row. */
function wellFormed(r: MetricsReport): boolean {
  return (
    typeof r.reporter === "string" &&
    /^[\w.:-]{1,128}$/.test(r.reporter) &&
    typeof r.epoch === "string" &&
    r.epoch.length <= 64 &&
    Number.isSafeInteger(r.seq) &&
    r.seq > 0 &&
    Array.isArray(r.series)
  );
}

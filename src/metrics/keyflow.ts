import { BoundedValues, Registry, type Series } from "./registry.ts";

/** Event types per tenant and metric kept as their own label value; the rest count as "_other". */
const MAX_TYPES = 200;

/** A sink channel's counters, as SinkChannel.status() reports them. */
export interface SinkCounters {
  sink: string;
  breaker: "closed" | "open" | "half_open";
  delivered: number;
  deadLettered: number;
  transientFailures: number;
  attempts: number;
}

/** What a process host reports at each scrape. */
export interface HostSnapshot {
  /** The host's clock at the snapshot (epoch ms). */
  now: number;
  actorsInMemory: number;
  journalRows: number;
  commits: number;
  checkpoints: number;
  rowsWritten: number;
  replayed: number;
  sinks: SinkCounters[];
  /** Per sink: records waiting in the loaded actors' outboxes, and when the oldest of them arrived. */
  backlog: Map<string, { records: number; oldestAt: number | null }>;
  deadLetters: number;
}

/**
 * keyflow's metrics: what the HTTP layer counts as requests pass (requests, events by tenant, type
 * and outcome, ingest latency) and what a host reports at scrape time. Names follow Prometheus
 * conventions (`_total` counters, base units); no label ever holds an actor key, event types are
 * bounded, and tenants are bounded by the configured keys.
 */
export class KeyflowMetrics {
  readonly registry = new Registry();
  private readonly types = new BoundedValues(MAX_TYPES);
  private readonly requests = this.registry.counter("keyflow_http_requests_total", "HTTP requests by route, method and status.", ["route", "method", "status"]);
  private readonly requestSeconds = this.registry.histogram("keyflow_http_request_duration_seconds", "HTTP request latency by route.", ["route"]);
  private readonly received = this.registry.counter("keyflow_events_received_total", "Events received in ingest requests, valid or not.", ["tenant"]);
  private readonly events = this.registry.counter(
    "keyflow_events_total",
    "Events by tenant, type and outcome: accepted, duplicate, rejected (invalid, or refused by backpressure, quota or a failure).",
    ["tenant", "type", "outcome"],
  );
  private readonly late = this.registry.counter("keyflow_events_late_total", "Accepted events that arrived after some window of theirs had closed.", ["tenant", "type"]);
  private readonly ingestSeconds = this.registry.histogram("keyflow_ingest_duration_seconds", "POST /v1/events latency, until every accepted event is durable.", ["tenant"]);

  /** What a process host reports as it goes: commit and delivery durations (ms from a monotonic clock). */
  hostObserver(elapsedMs: () => number) {
    const commits = this.registry.histogram(
      "keyflow_commit_duration_seconds",
      "Group commit (storage transaction) durations; checkpoints=\"true\" when it checkpointed actors.",
      ["checkpoints"],
    );
    const deliveries = this.registry.histogram("keyflow_sink_delivery_duration_seconds", "Delivery of one batch to a sink, by sink.", ["sink"]);
    return {
      elapsedMs,
      commit: (durationMs: number, checkpoints: number) => commits.observe([checkpoints ? "true" : "false"], durationMs / 1000),
      delivery: (sink: string, durationMs: number) => deliveries.observe([sink], durationMs / 1000),
    };
  }

  /** A finished request: its route (a pattern, never the key in it), method, status and duration. */
  request(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc([route, method, String(status)]);
    this.requestSeconds.observe([route], seconds);
  }

  ingest(tenant: string, seconds: number, received: number): void {
    this.received.inc([tenant], received);
    this.ingestSeconds.observe([tenant], seconds);
  }

  event(tenant: string, type: string | undefined, outcome: "accepted" | "duplicate" | "rejected", late = false): void {
    const label = type === undefined ? "_invalid" : this.types.of(type);
    this.events.inc([tenant, label, outcome]);
    if (late) this.late.inc([tenant, label]);
  }

  /** Host metrics, read from `snapshot` at every scrape. */
  collectHost(snapshot: () => HostSnapshot): void {
    const r = this.registry;
    const actors = r.gauge("keyflow_actors_in_memory", "Actors held in memory.");
    const journalRows = r.gauge("keyflow_journal_rows", "Rows of the commit journal (self-hosted).");
    const commits = r.counter("keyflow_commits_total", "Group commits (storage transactions).");
    const checkpoints = r.counter("keyflow_checkpoints_total", "Actors checkpointed into their own rows.");
    const rows = r.counter("keyflow_storage_rows_written_total", "Storage rows written or deleted.");
    const replayed = r.counter("keyflow_journal_replayed_total", "Journal entries replayed at start (after an unclean stop).");
    const { delivered, failed, attempts, deadLettered, breaker, backlog, oldest, dlq } = this.sinkMetrics();
    r.onCollect(() => {
      const s = snapshot();
      actors.set([], s.actorsInMemory);
      journalRows.set([], s.journalRows);
      commits.set([], s.commits);
      checkpoints.set([], s.checkpoints);
      rows.set([], s.rowsWritten);
      replayed.set([], s.replayed);
      dlq.set([], s.deadLetters);
      for (const c of s.sinks) {
        delivered.set([c.sink], c.delivered);
        failed.set([c.sink], c.transientFailures);
        attempts.set([c.sink], c.attempts);
        deadLettered.set([c.sink], c.deadLettered);
        for (const state of ["closed", "open", "half_open"]) breaker.set([c.sink, state], c.breaker === state ? 1 : 0);
        const b = s.backlog.get(c.sink) ?? { records: 0, oldestAt: null };
        backlog.set([c.sink], b.records);
        oldest.set([c.sink], b.oldestAt === null ? 0 : Math.max(0, (s.now - b.oldestAt) / 1000));
      }
    });
  }

  /**
   * The per-sink metrics, registered once: counters the sink channels keep, gauges of the outboxes.
   * Self-hosted, the breaker gauge is 1 for the one channel's state; on Workers, where each key's
   * Durable Object has its own channel, it counts the objects in each state.
   */
  sinkMetrics() {
    const r = this.registry;
    return {
      delivered: r.counter("keyflow_sink_delivered_total", "Records delivered, by sink.", ["sink"]),
      failed: r.counter("keyflow_sink_failures_total", "Failed delivery attempts that will be retried, by sink.", ["sink"]),
      attempts: r.counter("keyflow_sink_attempts_total", "Delivery attempts (batches sent), by sink.", ["sink"]),
      deadLettered: r.counter("keyflow_sink_dead_lettered_total", "Records a sink refused for good (now dead letters), by sink.", ["sink"]),
      breaker: r.gauge("keyflow_sink_breaker_state", "Circuit breakers in each state, by sink (self-hosted: 1 for the current state).", ["sink", "state"]),
      backlog: r.gauge("keyflow_sink_backlog_records", "Outbox records not yet delivered, by sink (self-hosted: actors in memory).", ["sink"]),
      oldest: r.gauge("keyflow_sink_oldest_undelivered_age_seconds", "Age of the oldest record not yet delivered, by sink (0: none).", ["sink"]),
      dlq: r.gauge("keyflow_dead_letters", "Dead letters held by actors (self-hosted: actors in memory)."),
    };
  }

  /**
   * What Durable Objects did that Cloudflare bills (Workers), by object class ("key", …): requests
   * received (RPC calls and fetches; alarm invocations apart), alarms set, SQLite rows written and read.
   */
  durableObjectMetrics() {
    const r = this.registry;
    return {
      calls: r.counter("keyflow_do_calls_total", "Durable Object requests received as RPC calls or fetches (each one billed), by object class.", ["object"]),
      alarms: r.counter("keyflow_do_alarms_total", "Durable Object alarm invocations (each one a billed request), by object class.", ["object"]),
      alarmsSet: r.counter("keyflow_do_alarms_set_total", "Durable Object alarms set (each one a billed row written), by object class.", ["object"]),
      rowsWritten: r.counter("keyflow_do_rows_written_total", "SQLite rows written by Durable Objects, as their cursors report them (index rows included), by object class.", ["object"]),
      rowsRead: r.counter("keyflow_do_rows_read_total", "SQLite rows read by Durable Objects, as their cursors report them, by object class.", ["object"]),
    };
  }

  /**
   * Adds series other isolates and actors reported (Workers) to this registry's counters and
   * histograms; event types stay bounded here as they are where they were counted.
   */
  absorb(series: Iterable<Series>): Series[] {
    return this.registry.absorb(series, (names, labels) => {
      const i = names.indexOf("type");
      if (i < 0 || labels[i] === "_invalid" || labels[i] === "_other") return labels;
      const bounded = [...labels];
      bounded[i] = this.types.of(labels[i]!);
      return bounded;
    });
  }

  text(): string {
    return this.registry.text();
  }
}

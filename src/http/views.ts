import type { Actor, ActorSnapshot, LateEntry } from "../actor/actor.ts";
import type { DeadLetter } from "../actor/outbox.ts";
import type { Aggregate, ClosedWindow, WindowQuery, WindowState } from "../actor/windows.ts";
import type { ChannelStatus, SinkChannel } from "../delivery/channel.ts";
import { splitActorName } from "../actor/tenant.ts";
import { aggregateView, iso, recordView, type AggregateView, type RecordView } from "../delivery/records.ts";

/** The HTTP API's response bodies (snake_case, ISO-8601 times), rendered from the actor's internal shapes. */

const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
const EMPTY: Aggregate = { count: 0, valued: 0, sum: 0, min: null, max: null };

export interface WindowView extends AggregateView {
  size: string;
  start: string;
  end: string;
  closed: boolean;
  /** With ?type=: the aggregates of that event type only. */
  type?: string;
  /** Without ?type=: the aggregates of each event type. */
  by_type?: Record<string, AggregateView>;
  closed_at?: string;
  closed_by?: ClosedWindow["closedBy"];
}

export interface ActorView {
  key: string;
  totals: { events: number; duplicates: number; late: number; by_type: Record<string, number> };
  first_event_at: string | null;
  last_event_at: string | null;
  last_arrival_at: string | null;
  watermark: string | null;
  open_windows: WindowView[];
  recently_closed_windows: WindowView[];
  closed_windows_retained: number;
  dedupe_ids: number;
  late_log_size: number;
}

export interface LateView {
  event_id: string;
  event_type: string;
  timestamp: string;
  received_at: string;
  watermark_at_arrival: string;
  missed_windows: string[];
  value?: number;
}

export interface DeadLetterView {
  id: number;
  sink: string;
  error: string;
  attempts: number;
  failed_at: string;
  record: RecordView;
}

interface SinkStatusView {
  sink: string;
  breaker: ChannelStatus["breaker"];
  retry_at: string | null;
  consecutive_failures: number;
  last_error: string | null;
  attempts: number;
  delivered: number;
  dead_lettered: number;
  transient_failures: number;
  breaker_opened: number;
  breaker_closed: number;
}

export interface OutboxView {
  key: string;
  backlog: Record<string, number>;
  dead_letters: number;
  sinks: SinkStatusView[];
}

function isClosed(w: WindowState | ClosedWindow): w is ClosedWindow {
  return "closedAt" in w;
}

export function windowView(w: WindowState | ClosedWindow, type?: string): WindowView {
  const agg = type === undefined ? w.all : w.types.get(type);
  const view: WindowView = { size: w.spec, start: iso(w.start), end: iso(w.end), ...aggregateView(agg ?? EMPTY), closed: isClosed(w) };
  if (type !== undefined) view.type = type;
  else view.by_type = Object.fromEntries([...w.types].map(([t, a]) => [t, aggregateView(a)]));
  if (isClosed(w)) {
    view.closed_at = iso(w.closedAt);
    view.closed_by = w.closedBy;
  }
  return view;
}

const RECENT_CLOSED = 20;

export function actorView(s: ActorSnapshot): ActorView {
  return {
    key: splitActorName(s.key).key,
    totals: { events: s.totals.events, duplicates: s.totals.duplicates, late: s.totals.late, by_type: Object.fromEntries(s.totals.byType) },
    first_event_at: isoOrNull(s.firstEventAt),
    last_event_at: isoOrNull(s.lastEventAt),
    last_arrival_at: isoOrNull(s.lastArrival),
    watermark: isoOrNull(s.watermark),
    open_windows: s.open.map((w) => windowView(w)),
    recently_closed_windows: s.closed.slice(-RECENT_CLOSED).map((w) => windowView(w)),
    closed_windows_retained: s.closed.length,
    dedupe_ids: s.dedupeIds,
    late_log_size: s.lateLogSize,
  };
}

export function lateView(entry: LateEntry): LateView {
  const view: LateView = {
    event_id: entry.id,
    event_type: entry.type,
    timestamp: iso(entry.ts),
    received_at: iso(entry.receivedAt),
    watermark_at_arrival: iso(entry.watermark),
    missed_windows: [...entry.missed],
  };
  if (entry.value !== undefined) view.value = entry.value;
  return view;
}

function deadLetterView(entry: DeadLetter): DeadLetterView {
  return { id: entry.id, sink: entry.sink, error: entry.error, attempts: entry.attempts, failed_at: iso(entry.failedAt), record: recordView(entry.record) };
}

function sinkStatusView(s: ChannelStatus): SinkStatusView {
  return {
    sink: s.sink,
    breaker: s.breaker,
    retry_at: s.retryAt === null ? null : iso(s.retryAt),
    consecutive_failures: s.consecutiveFailures,
    last_error: s.lastError,
    attempts: s.attempts,
    delivered: s.delivered,
    dead_lettered: s.deadLettered,
    transient_failures: s.transientFailures,
    breaker_opened: s.breakerOpened,
    breaker_closed: s.breakerClosed,
  };
}

/** Every read of the API, rendered from a live actor; each host calls these where the actor lives. */
export const render = {
  state: (actor: Actor): ActorView => actorView(actor.snapshot()),
  windows: (actor: Actor, query: WindowQuery): WindowView[] => actor.selectWindows(query).map((w) => windowView(w, query.type)),
  late: (actor: Actor): LateView[] => actor.lateLog().map(lateView),
  deadLetters: (actor: Actor): DeadLetterView[] => actor.outbox.deadLetters().map(deadLetterView),
  outbox: (actor: Actor, channels: readonly SinkChannel[]): OutboxView => ({
    key: splitActorName(actor.key).key,
    backlog: Object.fromEntries(actor.outbox.sinks.map((sink) => [sink, actor.outbox.backlog(sink)])),
    dead_letters: actor.outbox.deadLetters().length,
    sinks: channels.map((c) => sinkStatusView(c.status())),
  }),
};

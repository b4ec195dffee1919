import type { Actor, ActorSnapshot, LateEntry } from "../actor/actor.ts";
import type { DeadLetter } from "../actor/outbox.ts";
import type { Aggregate, ClosedWindow, WindowQuery, WindowState } from "../actor/windows.ts";
import type { ChannelStatus, SinkChannel } from "../delivery/channel.ts";
import { splitActorName } from "../actor/tenant.ts";
import { aggregateView, alertRecordView, iso, recordView, shapeOf, type AlertRecordView } from "../delivery/records.ts";
import type { z } from "zod";
import type * as S from "./schemas.ts";

/** The HTTP API's response bodies (snake_case, ISO-8601 times), rendered from the actor's internal shapes; their types are the schemas of schemas.ts. */

const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
const EMPTY: Aggregate = { count: 0, valued: 0, sum: 0, min: null, max: null };

export type WindowView = z.infer<typeof S.WindowViewSchema>;
export type ActorView = z.infer<typeof S.ActorViewSchema>;
export type LateView = z.infer<typeof S.LateViewSchema>;
export type DeadLetterView = z.infer<typeof S.DeadLetterViewSchema>;
type SinkStatusView = z.infer<typeof S.SinkStatusViewSchema>;
export type OutboxView = z.infer<typeof S.OutboxViewSchema>;

function isClosed(w: WindowState | ClosedWindow): w is ClosedWindow {
  return "closedAt" in w;
}

export function windowView(w: WindowState | ClosedWindow, type?: string): WindowView {
  const agg = type === undefined ? w.all : w.types.get(type);
  const figures = (t: string) => w.figures?.get(t);
  const own = type ?? w.type;
  const view: WindowView = { size: w.spec, start: iso(w.start), end: iso(w.end), shape: shapeOf(w), ...aggregateView(agg ?? EMPTY, own === undefined ? undefined : figures(own)), closed: isClosed(w) };
  if (w.type !== undefined) view.event_type = w.type;
  if (type !== undefined) view.type = type;
  else view.by_type = Object.fromEntries([...w.types].map(([t, a]) => [t, aggregateView(a, figures(t))]));
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
  alerts: (actor: Actor): AlertRecordView[] => actor.recentAlerts().map(alertRecordView),
  deadLetters: (actor: Actor): DeadLetterView[] => actor.outbox.deadLetters().map(deadLetterView),
  outbox: (actor: Actor, channels: readonly SinkChannel[]): OutboxView => ({
    key: splitActorName(actor.key).key,
    backlog: Object.fromEntries(actor.outbox.sinks.map((sink) => [sink, actor.outbox.backlog(sink)])),
    dead_letters: actor.outbox.deadLetters().length,
    sinks: channels.map((c) => sinkStatusView(c.status())),
  }),
};

import type { ActorSnapshot, LateEntry } from "../actor/actor.ts";
import type { DeadLetter, EventRecord, WindowRecord } from "../actor/outbox.ts";
import type { Aggregate, ClosedWindow, WindowState } from "../actor/windows.ts";

/** Renders the actor's internal shapes as the HTTP API's JSON (snake_case, ISO-8601 times). */

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface AggregateView {
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  avg: number | null;
}

export function aggregateView(agg: Aggregate): AggregateView {
  return { count: agg.count, sum: agg.sum, min: agg.min, max: agg.max, avg: agg.valued ? agg.sum / agg.valued : null };
}

function isClosed(w: WindowState | ClosedWindow): w is ClosedWindow {
  return "closedAt" in w;
}

export function windowView(w: WindowState | ClosedWindow, type?: string) {
  const agg = type === undefined ? w.all : w.types[type];
  const view: Record<string, unknown> = {
    size: w.spec,
    start: iso(w.start),
    end: iso(w.end),
    ...aggregateView(agg ?? { count: 0, valued: 0, sum: 0, min: null, max: null }),
    closed: isClosed(w),
  };
  if (type !== undefined) view.type = type;
  else view.by_type = Object.fromEntries(Object.entries(w.types).map(([t, a]) => [t, aggregateView(a)]));
  if (isClosed(w)) {
    view.closed_at = iso(w.closedAt);
    view.closed_by = w.closedBy;
  }
  return view;
}

export interface WindowQuery {
  spec?: string;
  type?: string;
  from?: number;
  to?: number;
  limit: number;
}

/** Windows of a snapshot that match the query (overlapping [from, to)), oldest first, newest `limit`. */
export function selectWindows(windows: Array<WindowState | ClosedWindow>, q: WindowQuery) {
  const picked = windows.filter(
    (w) =>
      (q.spec === undefined || w.spec === q.spec) &&
      (q.type === undefined || w.types[q.type] !== undefined) &&
      (q.from === undefined || w.end > q.from) &&
      (q.to === undefined || w.start < q.to),
  );
  picked.sort((a, b) => a.start - b.start || a.end - b.end || a.spec.localeCompare(b.spec));
  return picked.slice(Math.max(0, picked.length - q.limit)).map((w) => windowView(w, q.type));
}

export const RECENT_CLOSED = 20;

export function actorView(s: ActorSnapshot) {
  return {
    key: s.key,
    totals: { events: s.totals.events, duplicates: s.totals.duplicates, late: s.totals.late, by_type: { ...s.totals.byType } },
    first_event_at: iso(s.firstEventAt),
    last_event_at: iso(s.lastEventAt),
    last_arrival_at: iso(s.lastArrival),
    watermark: iso(s.watermark),
    open_windows: s.open.map((w) => windowView(w)),
    recently_closed_windows: s.closed.slice(-RECENT_CLOSED).map((w) => windowView(w)),
    closed_windows_retained: s.closed.length,
    dedupe_ids: s.dedupeIds,
    late_log_size: s.lateLogSize,
  };
}

export function lateView(entry: LateEntry) {
  const view: Record<string, unknown> = {
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

/** A record as sinks see it, for the API: the event or window fields in snake_case. */
export function recordView(record: EventRecord | WindowRecord) {
  if (record.kind === "event") {
    const view: Record<string, unknown> = {
      kind: "event",
      event_id: record.id,
      event_type: record.type,
      key: record.key,
      timestamp: iso(record.ts),
      received_at: iso(record.receivedAt),
      late: record.late,
    };
    if (record.value !== undefined) view.value = record.value;
    if (record.properties !== undefined) view.properties = record.properties;
    return view;
  }
  return {
    kind: "window",
    key: record.key,
    size: record.spec,
    start: iso(record.start),
    end: iso(record.end),
    revision: record.revision,
    final: record.final,
    ...aggregateView(record.all),
    by_type: Object.fromEntries(Object.entries(record.types).map(([t, a]) => [t, aggregateView(a)])),
  };
}

export function deadLetterView(entry: DeadLetter) {
  return {
    id: entry.id,
    sink: entry.sink,
    error: entry.error,
    attempts: entry.attempts,
    failed_at: iso(entry.failedAt),
    record: recordView(entry.record),
  };
}

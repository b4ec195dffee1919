import { formatDuration, parseDuration } from "./duration.ts";
import type { WindowShape } from "./analytics.ts";
import { extrasFromJSON, type Extras, type ExtrasJSON, type ExtrasView } from "./window-extras.ts";

/** A window shape: tumbling when hop === size, hopping when hop < size. Epoch-aligned, half-open [start, end). */
export interface WindowSpec {
  name: string;
  size: number;
  hop: number;
}

/** "1m" is tumbling; "5m/1m" is a 5-minute window every minute. */
export function parseWindowSpec(text: string): WindowSpec | string {
  const [sizeText, hopText, extra] = text.trim().split("/");
  if (extra !== undefined) return `"${text}" has more than one "/"`;
  const size = parseDuration(sizeText ?? "");
  if (!size) return `"${text}": window size must be a positive duration like 30s, 1m, 1h`;
  const hop = hopText === undefined ? size : parseDuration(hopText);
  if (!hop) return `"${text}": hop must be a positive duration like 1m`;
  if (hop > size || size % hop !== 0) return `"${text}": size must be a whole multiple of the hop`;
  return { name: specName(size, hop), size, hop };
}

export function specName(size: number, hop: number): string {
  return hop === size ? formatDuration(size) : `${formatDuration(size)}/${formatDuration(hop)}`;
}

/** Start times of every window of `spec` that contains `ts`, newest first. */
export function windowStarts(spec: WindowSpec, ts: number): number[] {
  const last = Math.floor(ts / spec.hop) * spec.hop;
  const starts: number[] = [];
  for (let start = last; start > ts - spec.size && start >= 0; start -= spec.hop) starts.push(start);
  return starts;
}

export interface Aggregate {
  count: number;
  /** Events that carried a numeric measure; sum/min/max/avg cover only these. */
  valued: number;
  sum: number;
  min: number | null;
  max: number | null;
}

export function emptyAggregate(): Aggregate {
  return { count: 0, valued: 0, sum: 0, min: null, max: null };
}

export function addToAggregate(agg: Aggregate, value: number | undefined): void {
  agg.count++;
  if (value === undefined) return;
  agg.valued++;
  agg.sum += value;
  agg.min = agg.min === null || value < agg.min ? value : agg.min;
  agg.max = agg.max === null || value > agg.max ? value : agg.max;
}

/** Aggregates per event type. A Map: event types are client data, never property names. */
export type TypeAggregates = Map<string, Aggregate>;

export interface WindowState {
  spec: string;
  start: number;
  end: number;
  all: Aggregate;
  types: TypeAggregates;
  /** Revisions emitted to sinks so far (emit=updates); the final emission is revision rev + 1. */
  rev?: number;
  /** A type's own window (keyflow.config.json, typed-windows.ts): its event type; absent for the key's windows, which count every type. */
  type?: string;
  /** The shape's kind; absent for the key's windows (tumbling, or hopping when the spec has a hop). */
  shape?: WindowShape["kind"];
  /** Open windows: each type's distinct counter and percentile sketch, where configured. */
  extras?: Map<string, Extras>;
  /** Closed windows: what `extras` came to (numbers; the sketches are dropped at close). */
  figures?: Map<string, ExtrasView>;
}

export interface ClosedWindow extends WindowState {
  closedAt: number;
  closedBy: "watermark" | "idle";
}

/** A read of an actor's windows: one spec and/or event type, those overlapping [from, to), the newest `limit`. */
export interface WindowQuery {
  spec?: string;
  type?: string;
  from?: number;
  to?: number;
  limit: number;
}

/** Windows that match the query, oldest first, the newest `limit` of them. */
export function selectWindows<W extends WindowState>(windows: W[], q: WindowQuery): W[] {
  const picked = windows.filter(
    (w) =>
      (q.spec === undefined || w.spec === q.spec) &&
      (q.type === undefined || w.types.has(q.type)) &&
      (q.from === undefined || w.end > q.from) &&
      (q.to === undefined || w.start < q.to),
  );
  picked.sort((a, b) => a.start - b.start || a.end - b.end || a.spec.localeCompare(b.spec));
  return picked.slice(Math.max(0, picked.length - q.limit));
}

/** A window as persisted: maps keyed by client data (types) as [type, value] pairs (JSON has no Map). */
export type WindowRow<W extends WindowState = WindowState> = Omit<W, "types" | "extras" | "figures"> & {
  types: Array<[string, Aggregate]>;
  extras?: Array<[string, ExtrasJSON]>;
  figures?: Array<[string, ExtrasView]>;
};

export function windowRow<W extends WindowState>(w: W): WindowRow<W> {
  const row = { ...w, types: [...w.types] } as unknown as WindowRow<W>;
  // The sketches' toJSON gives their stored form.
  if (w.extras) row.extras = [...w.extras] as unknown as Array<[string, ExtrasJSON]>;
  if (w.figures) row.figures = [...w.figures];
  return row;
}

/**
 * The window a row holds. Rows written before version 2 kept types as an object: its own entries are
 * read with Object.entries, which never consults the prototype.
 */
export function windowFromRow<W extends WindowState>(row: WindowRow<W> | (Omit<W, "types"> & { types: Record<string, Aggregate> })): W {
  const types = Array.isArray(row.types) ? row.types : Object.entries(row.types);
  const w = { ...row, types: new Map(types) } as unknown as W;
  const stored = row as { extras?: Array<[string, ExtrasJSON]>; figures?: Array<[string, ExtrasView]> };
  if (stored.extras) w.extras = new Map(stored.extras.map(([t, e]) => [t, extrasFromJSON(e)]));
  if (stored.figures) w.figures = new Map(stored.figures);
  return w;
}

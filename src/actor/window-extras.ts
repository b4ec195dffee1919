import type { ExtraAggregates } from "./analytics.ts";
import { DistinctCount, type DistinctJSON } from "./distinct.ts";
import { QuantileSketch, type QuantilesJSON } from "./quantiles.ts";

/**
 * The extra aggregates of a type's windows (keyflow.config.json "distinct" and "percentiles"): a
 * distinct counter (exact, then HyperLogLog: distinct.ts) and a DDSketch of the measure (quantiles.ts,
 * 1% relative error). Records and reads carry their numbers, never the sketches.
 */
export interface Extras {
  distinct?: DistinctCount;
  quantiles?: QuantileSketch;
}

/** Extras as stored in a checkpoint (the sketches' own JSON). */
export interface ExtrasJSON {
  distinct?: DistinctJSON;
  quantiles?: QuantilesJSON;
}

/** The numbers of a window's extras, as records and reads carry them. */
export interface ExtrasView {
  distinct?: number;
  /** [percentile, value] pairs in configured order; value null when no event carried a measure. */
  percentiles?: Array<[number, number | null]>;
}

/** What one event adds: its measure and the canonical string of its distinct path's value, if any. */
export interface Measured {
  v?: number;
  d?: string;
}

export function hasExtras(config: ExtraAggregates | undefined): config is ExtraAggregates {
  return config !== undefined && (config.distinct !== undefined || config.percentiles !== undefined);
}

export function emptyExtras(config: ExtraAggregates): Extras {
  const extras: Extras = {};
  if (config.distinct) extras.distinct = new DistinctCount({ exactUpTo: config.distinct.exactUpTo });
  if (config.percentiles) extras.quantiles = new QuantileSketch();
  return extras;
}

export function addToExtras(extras: Extras, m: Measured): void {
  if (m.d !== undefined) extras.distinct?.add(m.d);
  if (m.v !== undefined) extras.quantiles?.add(m.v);
}

export function mergeExtras(a: Extras, b: Extras): Extras {
  if (a.distinct && b.distinct) a.distinct.merge(b.distinct);
  if (a.quantiles && b.quantiles) a.quantiles.merge(b.quantiles);
  return a;
}

export function cloneExtras(e: Extras): Extras {
  const copy: Extras = {};
  if (e.distinct) copy.distinct = e.distinct.clone();
  if (e.quantiles) copy.quantiles = e.quantiles.clone();
  return copy;
}

export function extrasFromJSON(json: ExtrasJSON): Extras {
  const extras: Extras = {};
  if (json.distinct) extras.distinct = DistinctCount.fromJSON(json.distinct);
  if (json.quantiles) extras.quantiles = QuantileSketch.fromJSON(json.quantiles);
  return extras;
}

export function extrasView(extras: Extras, config: ExtraAggregates): ExtrasView {
  const view: ExtrasView = {};
  if (extras.distinct) view.distinct = extras.distinct.count();
  if (extras.quantiles && config.percentiles) view.percentiles = config.percentiles.map((p) => [p, extras.quantiles!.quantile(p / 100)]);
  return view;
}

/** A value of a distinct path as a canonical string ("s:red", "n:42", "b:true"); objects and missing values are not counted. */
export function distinctKey(found: unknown): string | undefined {
  if (typeof found === "string") return `s:${found}`;
  if (typeof found === "number") return Number.isFinite(found) ? `n:${found}` : undefined;
  if (typeof found === "boolean") return `b:${found}`;
  return undefined;
}

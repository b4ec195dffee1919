import { mergeAggregate, type AggregateOps } from "./aggregate-ops.ts";
import type { AggregateName, ExtraAggregates } from "./analytics.ts";
import { addToExtras, cloneExtras, emptyExtras, extrasFromJSON, mergeExtras, type Extras, type ExtrasJSON, type Measured } from "./window-extras.ts";
import { addToAggregate, emptyAggregate, type Aggregate } from "./windows.ts";

/** A window's aggregate with its extras: what rules read, and what a type's own windows keep. */

/** An aggregate by a rule's name, from a window's aggregate and extras; undefined where it has none. */
export function aggregateValue(agg: Aggregate | undefined, extras: Extras | undefined, name: AggregateName): number | undefined {
  if (!agg) return name === "count" || name === "distinct" ? 0 : undefined;
  switch (name) {
    case "count":
      return agg.count;
    case "sum":
      return agg.valued ? agg.sum : undefined;
    case "min":
      return agg.min ?? undefined;
    case "max":
      return agg.max ?? undefined;
    case "avg":
      return agg.valued ? agg.sum / agg.valued : undefined;
    case "distinct":
      return extras?.distinct?.count();
    default:
      return extras?.quantiles?.quantile(Number(name.slice(1)) / 100) ?? undefined;
  }
}

/** A per-type window's aggregate (sliding, session and per-type tumbling/hopping windows). */
export interface SeriesAggregate {
  agg: Aggregate;
  extras: Extras;
}

/** As stored: the sketches as their JSON. */
export interface SeriesAggregateJSON {
  agg: Aggregate;
  extras: ExtrasJSON;
}

export function seriesAggregateFromJSON(json: SeriesAggregateJSON): SeriesAggregate {
  return { agg: json.agg, extras: extrasFromJSON(json.extras) };
}

/**
 * AggregateOps of a type's own windows. Aggregates hold sketches (classes): a checkpoint stores them
 * through their toJSON, and seriesAggregateFromJSON revives them before the window store takes them.
 */
export function seriesOps(config: ExtraAggregates): AggregateOps<SeriesAggregate, Measured> {
  return {
    empty: () => ({ agg: emptyAggregate(), extras: emptyExtras(config) }),
    add(a, m) {
      addToAggregate(a.agg, m.v);
      addToExtras(a.extras, m);
      return a;
    },
    merge(a, b) {
      mergeAggregate(a.agg, b.agg);
      mergeExtras(a.extras, b.extras);
      return a;
    },
    clone: (a) => ({ agg: { ...a.agg }, extras: cloneExtras(a.extras) }),
  };
}

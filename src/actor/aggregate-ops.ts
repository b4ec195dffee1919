import { addToAggregate, emptyAggregate, type Aggregate } from "./windows.ts";

/**
 * How a window shape (sliding-windows.ts, session-windows.ts) builds the aggregate `A` of its
 * windows from event values `V`, so callers can plug in count/sum/min/max, per-type aggregates or
 * sketches. `add` and `merge` may update their first argument in place and return it; the window
 * shape never reuses an argument after passing it. A and V are stored in checkpoints as they are:
 * they must come back unchanged through JSON.stringify/JSON.parse (no Map, no NaN or Infinity, and
 * undefined only as an absent property).
 */
export interface AggregateOps<A, V> {
  empty(): A;
  add(a: A, value: V): A;
  /** The aggregate of both operands' events (sessions merge; sliding windows never need it). */
  merge(a: A, b: A): A;
  /** An independent copy: what callers receive, so that later updates do not reach them. */
  clone(a: A): A;
}

/** `a` updated in place to also cover `b`'s events. */
export function mergeAggregate(a: Aggregate, b: Aggregate): Aggregate {
  a.count += b.count;
  a.valued += b.valued;
  a.sum += b.sum;
  if (b.min !== null && (a.min === null || b.min < a.min)) a.min = b.min;
  if (b.max !== null && (a.max === null || b.max > a.max)) a.max = b.max;
  return a;
}

/** count, valued, sum, min, max of an event's measure (undefined: counted, not valued). */
export const aggregateOps: AggregateOps<Aggregate, number | undefined> = {
  empty: emptyAggregate,
  add(a, value) {
    addToAggregate(a, value);
    return a;
  },
  merge: mergeAggregate,
  clone: (a) => ({ ...a }),
};

/** An event as the per-type aggregate sees it. */
export interface TypedValue {
  type: string;
  value?: number;
}

/**
 * All events' aggregate and each event type's. Types are client data: kept as [type, aggregate]
 * pairs sorted by type (the WindowRow form of windows.ts), never as object keys.
 */
export interface TypedAggregate {
  all: Aggregate;
  types: Array<[string, Aggregate]>;
}

function typeSlot(types: Array<[string, Aggregate]>, type: string): Aggregate {
  let lo = 0;
  let hi = types.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (types[mid]![0] < type) lo = mid + 1;
    else hi = mid;
  }
  const found = types[lo];
  if (found && found[0] === type) return found[1];
  const agg = emptyAggregate();
  types.splice(lo, 0, [type, agg]);
  return agg;
}

export const typedAggregateOps: AggregateOps<TypedAggregate, TypedValue> = {
  empty: () => ({ all: emptyAggregate(), types: [] }),
  add(a, { type, value }) {
    addToAggregate(a.all, value);
    addToAggregate(typeSlot(a.types, type), value);
    return a;
  },
  merge(a, b) {
    mergeAggregate(a.all, b.all);
    for (const [type, agg] of b.types) mergeAggregate(typeSlot(a.types, type), agg);
    return a;
  },
  clone: (a) => ({ all: { ...a.all }, types: a.types.map(([type, agg]) => [type, { ...agg }]) }),
};

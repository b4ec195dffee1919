/**
 * Per event type analytics (issue 12), as the actor uses it: which window shapes and measure apply
 * to which event types, enrichment rules applied before aggregation, and detection rules on window
 * aggregates. src/settings validates keyflow.config.json into these types; the pieces that evaluate
 * them are pure modules of this layer, so every host and the simulator run them identically.
 */

/**
 * A window shape. Tumbling and hopping windows are epoch-aligned and half-open [start, end).
 * Sliding windows follow Kafka Streams' SlidingWindows (windows of `sizeMs` aligned to the events'
 * own timestamps, inclusive at both ends: each distinct set of events within `sizeMs` of each other
 * is aggregated once). Session windows merge a key's events whose gaps are at most `gapMs` (inclusive, as Kafka Streams' SessionWindows).
 */
export type WindowShape =
  | { kind: "tumbling"; sizeMs: number }
  | { kind: "hopping"; sizeMs: number; hopMs: number }
  | { kind: "sliding"; sizeMs: number }
  | { kind: "session"; gapMs: number };

/** A window shape's name, in records and queries: "1m", "5m/1m", "sliding:10m", "session:30m". */
export type WindowShapeName = string;

/** Extra aggregates of a type's windows, where they are cheap and exact (or their error is stated). */
export interface ExtraAggregates {
  /** Distinct values of a property path: exact up to `exactUpTo` values, a stated-error sketch beyond. */
  distinct?: { path: string; exactUpTo: number };
  /** Percentiles of the measure (e.g. [50, 90, 99]) from a sketch with a stated relative error. */
  percentiles?: number[];
}

export interface TypeAnalytics {
  /** Where the measure comes from: "value" (the event's value; the default) or a property path like "properties.amount". */
  measure: string;
  windows: WindowShape[];
  aggregates: ExtraAggregates;
}

export type Comparison = ">" | ">=" | "<" | "<=" | "==" | "!=";

/** A condition on an event and its actor's state. Paths start at the event: "properties.amount", "value", "type". */
export type Condition =
  | { path: string; op: Comparison; value: number | string | boolean }
  /** The actor had accepted no event of this type before this one. */
  | { first: string }
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition };

/** Adds `set` = `value` to the event's `enriched` fields when `when` holds (for `types`, or every type). */
export interface EnrichRule {
  set: string;
  value: string | number | boolean;
  when: Condition;
  types?: string[];
}

/** What a detection rule looks at: an aggregate of one event type's windows of one shape. */
export type AggregateName = "count" | "sum" | "min" | "max" | "avg" | "distinct" | `p${number}`;

interface RuleTarget {
  /** Unique among the rules: an alert's identity is (rule, key, window). */
  name: string;
  /** The event type whose windows it watches. */
  type: string;
  /** A window shape name configured for that type. */
  window: WindowShapeName;
  aggregate: AggregateName;
}

/**
 * Fires at most once per rule and window:
 * - threshold: when the window's aggregate first satisfies `op threshold`;
 * - change: when the window's aggregate compared with the previous window's (same shape) as a ratio satisfies `op ratio`;
 * - zscore: when (value - mean) / stddev of the key's own last `baseline` closed windows exceeds `above`,
 *   once at least `warmup` closed windows exist.
 */
export type DetectionRule =
  | (RuleTarget & { kind: "threshold"; op: Comparison; threshold: number })
  | (RuleTarget & { kind: "change"; op: Comparison; ratio: number })
  | (RuleTarget & { kind: "zscore"; above: number; baseline: number; warmup: number });

export interface AnalyticsConfig {
  /** By event type; "*" applies to every type not listed. A Map: event types are client data. */
  types: ReadonlyMap<string, TypeAnalytics>;
  enrich: readonly EnrichRule[];
  rules: readonly DetectionRule[];
}

/** A rule that fired: sent to every sink (alerts topic/table/stream) and to live views, deduped by (rule, key, window). */
export interface AlertRecord {
  kind: "alert";
  rule: string;
  key: string;
  window: { shape: WindowShapeName; start: number; end: number };
  aggregate: AggregateName;
  value: number;
  /** zscore rules: the baseline the value was compared with; change rules: the previous window's value. */
  baseline?: { mean: number; stddev: number; windows: number } | { previous: number };
  /** The event whose arrival made the rule fire. */
  eventId: string;
  firedAt: number;
}

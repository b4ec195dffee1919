import { z } from "zod";
import { assert } from "../ports/assert.ts";
import type { Comparison, Condition, EnrichRule } from "./analytics.ts";
import type { Event } from "./event.ts";
import { FORBIDDEN_SEGMENTS, readPath, type EnrichedFields } from "./paths.ts";

/**
 * Enrichment (issue 12): fields added to an accepted event from the event itself and the actor's
 * state, before aggregation, identically on every host. Pure: the caller passes the state in.
 *
 * Comparisons are type-correct: a condition holds only when the value read and the configured value
 * have the same type. Numbers compare numerically (both finite); strings compare by equality and by
 * UTF-16 code-unit order (JavaScript's `<`, never locale-dependent); booleans by == and != only.
 * Anything else (a missing path, null, an object, "1000" against 1000) satisfies no comparison,
 * `!=` included: `{ not: { path, op: "==", value } }` is "missing or different".
 *
 * Rules apply in order, each seeing the fields earlier rules set (`enriched.<name>` in `when`);
 * a later rule that sets the same field overwrites it.
 */

export type { EnrichedFields } from "./paths.ts";

/**
 * The actor's past as conditions read it: which event types it has accepted, before this event.
 * A Set of types fits, and so does the actor's accepted-events-per-type Map (totals.byType), which is
 * already persisted: enrichment must then run before the event is counted there.
 */
export interface SeenTypes {
  has(type: string): boolean;
}

/** Deepest nesting of all/any/not a condition may have: config validation keeps to it. */
export const MAX_CONDITION_DEPTH = 16;

/** An enriched field's name: an identifier, so that `enriched.<name>` can read it and no name reaches a prototype. */
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** What is wrong with an enriched field's name, if anything (for config validation). */
export function fieldNameProblem(name: string): string | undefined {
  if (!FIELD_NAME.test(name)) return "must be an identifier of 1-64 characters: letters, digits, _ (not starting with a digit)";
  if (FORBIDDEN_SEGMENTS.has(name)) return `"${name}" is not allowed`;
  return undefined;
}

function ordered<T extends number | string>(actual: T, op: Comparison, expected: T): boolean {
  switch (op) {
    case ">":
      return actual > expected;
    case ">=":
      return actual >= expected;
    case "<":
      return actual < expected;
    case "<=":
      return actual <= expected;
    case "==":
      return actual === expected;
    case "!=":
      return actual !== expected;
  }
}

/** Whether `actual op expected` holds, type-correctly (see the module comment). */
export function compare(actual: unknown, op: Comparison, expected: number | string | boolean): boolean {
  if (typeof expected === "number") {
    return typeof actual === "number" && Number.isFinite(actual) && Number.isFinite(expected) && ordered(actual, op, expected);
  }
  if (typeof expected === "string") return typeof actual === "string" && ordered(actual, op, expected);
  if (typeof actual !== "boolean") return false;
  return op === "==" ? actual === expected : op === "!=" ? actual !== expected : false;
}

function holds(condition: Condition, event: Event, seen: SeenTypes, enriched: EnrichedFields | undefined, depth: number): boolean {
  assert(depth <= MAX_CONDITION_DEPTH, `conditions nest at most ${MAX_CONDITION_DEPTH} levels (config validation)`);
  const next = (c: Condition) => holds(c, event, seen, enriched, depth + 1);
  if ("all" in condition) return condition.all.every(next);
  if ("any" in condition) return condition.any.some(next);
  if ("not" in condition) return !next(condition.not);
  if ("first" in condition) return !seen.has(condition.first);
  return compare(readPath(event, condition.path, enriched), condition.op, condition.value);
}

/**
 * Whether `condition` holds for `event`, given the types the actor accepted before it and the fields
 * enrichment has set so far. `{ all: [] }` holds, `{ any: [] }` does not. `first` is in acceptance
 * order (arrival), not event time: a late event of a type seen before is not first.
 */
export function evaluate(condition: Condition, event: Event, seen: SeenTypes, enriched?: EnrichedFields): boolean {
  return holds(condition, event, seen, enriched, 0);
}

function checkRule(rule: EnrichRule): void {
  const problem = fieldNameProblem(rule.set);
  assert(problem === undefined, `enriched field "${rule.set}" ${problem} (config validation)`);
  const value = rule.value;
  assert(typeof value !== "number" || Number.isFinite(value), "an enriched value is a finite number, a string or a boolean");
}

/**
 * The fields `rules` add to `event` (a null-prototype object), or undefined when none applies.
 * A rule with `types` applies to events of those types only (`types: []`: to none).
 * Call it for accepted events only, before `seen` counts this one.
 */
export function enrich(rules: readonly EnrichRule[], event: Event, seen: SeenTypes): EnrichedFields | undefined {
  let fields: EnrichedFields | undefined;
  for (const rule of rules) {
    checkRule(rule);
    if (rule.types !== undefined && !rule.types.includes(event.type)) continue;
    if (!evaluate(rule.when, event, seen, fields)) continue;
    fields ??= Object.create(null) as EnrichedFields;
    fields[rule.set] = rule.value;
  }
  return fields;
}

/**
 * A standalone seen-types state, for a caller that does not keep per-type counts: its JSON is the
 * sorted list of types, the same on every host whatever order they were seen in.
 */
export function seenTypesToJSON(seen: Iterable<string>): string[] {
  return [...seen].sort();
}

const seenTypesJson = z.array(z.string());

/** The set `seenTypesToJSON` wrote; throws on anything else. */
export function seenTypesFromJSON(json: unknown): Set<string> {
  return new Set(seenTypesJson.parse(json));
}

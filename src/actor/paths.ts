import type { Event } from "./event.ts";

/**
 * Paths into an event, as enrichment conditions and measures name them: "value", "type", "ts",
 * "properties.amount", "properties.items.0.sku", "enriched.category". Reading is safe on client data:
 * only own properties are read (Object.hasOwn), "__proto__", "constructor" and "prototype" segments
 * read nothing, and arrays are indexed by canonical decimal segments ("0", "12"; not "01", "-1", "1.0").
 * A path that reads nothing yields undefined.
 */

/** Fields of the event a path may start at. Not `assigned` or `requestId`: they describe the request, not the event. */
export const EVENT_FIELDS: ReadonlySet<string> = new Set(["id", "type", "key", "ts", "value", "properties"]);
/** The first segment that reads the fields enrichment set (enrich.ts). */
export const ENRICHED = "enriched";
export const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);
/** Longest path accepted, in segments: properties are limited in depth anyway (config.maxPropertiesDepth). */
export const MAX_PATH_SEGMENTS = 32;

const INDEX = /^(0|[1-9][0-9]{0,8})$/;

/** Fields enrichment set on an event: a null-prototype object (see enrich.ts). */
export type EnrichedFields = Record<string, string | number | boolean>;

/** What is wrong with a path, if anything (for config validation: a path that can never read anything). */
export function pathProblem(path: string): string | undefined {
  const segments = path.split(".");
  if (segments.length > MAX_PATH_SEGMENTS) return `has more than ${MAX_PATH_SEGMENTS} segments`;
  if (segments.some((s) => s === "")) return "has an empty segment";
  const bad = segments.find((s) => FORBIDDEN_SEGMENTS.has(s));
  if (bad !== undefined) return `segment "${bad}" is not allowed`;
  const [head] = segments as [string, ...string[]];
  if (head === ENRICHED) return segments.length === 2 ? undefined : `"${ENRICHED}" takes exactly one field name`;
  if (!EVENT_FIELDS.has(head)) return `must start with one of ${[...EVENT_FIELDS, ENRICHED].join(", ")}`;
  if (head !== "properties" && segments.length > 1) return `"${head}" has no fields`;
  return undefined;
}

/** The own member `segment` of `node`: a property of a plain object, an element of an array, else undefined. */
export function member(node: unknown, segment: string): unknown {
  if (typeof node !== "object" || node === null || FORBIDDEN_SEGMENTS.has(segment)) return undefined;
  if (Array.isArray(node)) {
    if (!INDEX.test(segment)) return undefined;
    const index = Number(segment);
    return index < node.length ? node[index] : undefined;
  }
  return Object.hasOwn(node, segment) ? (node as Record<string, unknown>)[segment] : undefined;
}

/** The value at `path` in `event` (and its enriched fields, when given); undefined where the path reads nothing. */
export function readPath(event: Event, path: string, enriched?: EnrichedFields): unknown {
  const segments = path.split(".");
  if (segments.length > MAX_PATH_SEGMENTS || segments.includes("")) return undefined;
  const [head, ...rest] = segments as [string, ...string[]];
  if (head === ENRICHED) return rest.length === 1 ? member(enriched, rest[0]!) : undefined;
  if (!EVENT_FIELDS.has(head)) return undefined;
  let node: unknown = member(event, head);
  for (const segment of rest) {
    if (node === undefined) return undefined;
    node = member(node, segment);
  }
  return node;
}

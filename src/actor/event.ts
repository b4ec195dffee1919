import { z } from "zod";
import type { ActorConfig } from "./config.ts";

/** A validated event, as the actor sees it. */
export interface Event {
  id: string;
  /** True when the client sent no event_id and the server assigned one (such an event cannot be deduped on retry). */
  assigned: boolean;
  type: string;
  key: string;
  ts: number;
  value?: number;
  properties?: Record<string, unknown>;
  /** The correlation ID of the request that brought it (x-request-id), carried into every sink record. */
  requestId?: string;
}

export const EVENT_TYPE = /^[a-z0-9_.:-]{1,64}$/;
const PRINTABLE = /^[^\x00-\x1f\x7f]*$/;
/** A UTF-16 surrogate without its partner: not Unicode text, refused by PostgreSQL's jsonb and by encodeURIComponent. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** What is wrong with a client-chosen identifier (actor key or event id), if anything. */
function identifierProblem(text: string, maxLength: number): string | undefined {
  if (text.length < 1 || text.length > maxLength) return `must be 1-${maxLength} characters`;
  if (!PRINTABLE.test(text)) return "must not contain control characters";
  if (LONE_SURROGATE.test(text)) return "must be well-formed Unicode (it holds a lone surrogate)";
  return undefined;
}

/** An actor key is also a path segment of the API: "." and ".." would be normalised away there. */
function keyProblem(text: string): string | undefined {
  if (text === "." || text === "..") return `must not be "${text}": it could not be read back at /v1/actors/{key}`;
  return identifierProblem(text, 256);
}

const isKeyText = (v: unknown): v is string => typeof v === "string" && keyProblem(v) === undefined;
const isEventId = (v: unknown): v is string => typeof v === "string" && identifierProblem(v, 128) === undefined;

const refined = (problem: (text: string) => string | undefined) => (text: string, ctx: z.RefinementCtx) => {
  const message = problem(text);
  if (message) ctx.addIssue({ code: "custom", message });
};

const key = z
  .union([z.string(), z.number().int()], { error: "must be a string or an integer" })
  .transform(String)
  .superRefine(refined(keyProblem));

/** One event as clients send it; the descriptions are its documentation (GET /openapi.json). */
export const wire = z.object({
  event_id: z
    .string({ error: "must be a string" })
    .superRefine(refined((id) => identifierProblem(id, 128)))
    .nullish()
    .describe("1-128 printable characters, unique per key: a retry with the same id is answered as a duplicate. Assigned by the server when absent."),
  event_type: z.string({ error: "is required and must be a string" }).regex(EVENT_TYPE, "must match [a-z0-9_.:-]{1,64}"),
  key: key.nullish().describe('The actor key (1-256 printable characters, not "." or ".."); key or user_id is required.'),
  user_id: key.nullish().describe("The actor key, when key is absent."),
  timestamp: z
    .union([z.string(), z.number()], { error: "must be an ISO-8601 string or epoch milliseconds" })
    .nullish()
    .describe("When the event happened: ISO-8601 (UTC when no offset) or epoch milliseconds; the arrival time when absent."),
  value: z.number({ error: "must be a finite number" }).nullish().describe("The measure summed into windows; properties.amount when absent."),
  properties: z.unknown().optional().meta({ type: "object", description: "A JSON object: limited depth and encoded size, no __proto__/constructor/prototype keys, no NUL." }),
});

/** Parses an ISO-8601 date-time (UTC when no offset is given) without relying on engine-specific Date.parse. */
export function parseIsoTimestamp(text: string): number | undefined {
  const m = ISO_8601.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as number[];
  if (month! < 1 || month! > 12 || day! < 1 || hour! > 23 || minute! > 59 || second! > 59) return undefined;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year!, month! - 1, day!);
  date.setUTCHours(hour!, minute!, second!, Number(frac.padEnd(3, "0").slice(0, 3)));
  if (date.getUTCDate() !== day) return undefined;
  let offset = 0;
  if (zone && zone.toUpperCase() !== "Z") {
    const digits = zone.slice(1).replace(":", "");
    const [offsetHours, offsetMinutes] = [Number(digits.slice(0, 2)), Number(digits.slice(2))];
    if (offsetHours > 23 || offsetMinutes > 59) return undefined;
    offset = (zone.startsWith("-") ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  }
  return date.getTime() - offset;
}

const NUL = "\u0000";
const PLAIN_NAME = /^[A-Za-z_$][\w$]*$/;
const member = (path: string, name: string) => (PLAIN_NAME.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(name)}]`);

/**
 * What keeps a string of `properties` from reaching every sink: a lone surrogate (not Unicode text)
 * or NUL (PostgreSQL's text and jsonb cannot store it).
 */
function textProblem(text: string): string | undefined {
  if (text.includes(NUL)) return "holds the NUL character (\\u0000), which PostgreSQL cannot store";
  if (LONE_SURROGATE.test(text)) return "holds a lone surrogate (not well-formed Unicode)";
  return undefined;
}

/** Checks depth, forbidden keys, strings and encoded size of `properties`; returns the first problem. */
function checkProperties(value: unknown, config: ActorConfig): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "must be a JSON object";
  const walk = (node: unknown, depth: number, path: string): string | undefined => {
    if (typeof node === "string") {
      const problem = textProblem(node);
      return problem && `the string at ${path} ${problem}`;
    }
    if (typeof node !== "object" || node === null) return undefined;
    if (depth > config.maxPropertiesDepth) return `nesting deeper than ${config.maxPropertiesDepth} levels at ${path}`;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const problem = walk(node[i], depth + 1, `${path}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    }
    for (const k of Object.keys(node)) {
      if (FORBIDDEN_KEYS.has(k)) return `key "${k}" is not allowed (at ${path})`;
      const nameProblem = textProblem(k);
      if (nameProblem) return `a property name at ${path} ${nameProblem}`;
      const problem = walk((node as Record<string, unknown>)[k], depth + 1, member(path, k));
      if (problem) return problem;
    }
    return undefined;
  };
  const problem = walk(value, 1, "properties");
  if (problem) return problem;
  const text = JSON.stringify(value);
  const limit = config.maxPropertiesBytes;
  if (text.length > limit || (text.length * 3 > limit && new TextEncoder().encode(text).length > limit)) {
    return `encoded size exceeds ${limit} bytes`;
  }
  return undefined;
}

/** One problem with one field of an event, for the 400 response that names it. */
export interface FieldProblem {
  field: string;
  message: string;
}

export type Normalized = { ok: true; event: Event } | { ok: false; problems: FieldProblem[] };

/**
 * Validates one wire event and resolves its defaults: actor key (key, else user_id),
 * timestamp (arrival time when absent), measure (value, else properties.amount), and an id.
 * Well-formed events of the usual shape take a direct path; anything else, and every error,
 * goes through the zod schema, which names each problem. Both give the same answer
 * (tests/unit/event.test.ts checks this on random inputs).
 */
export function normalizeEvent(raw: unknown, config: ActorConfig, now: number, newId: () => string): Normalized {
  const event = directNormalize(raw, config, now, newId);
  return event ? { ok: true, event } : schemaNormalize(raw, config, now, newId);
}

const isAbsent = (v: unknown) => v === undefined || v === null;

/** The usual shape only (string ids and keys, numeric or ISO timestamps); undefined means "ask the schema". */
function directNormalize(raw: unknown, config: ActorConfig, now: number, newId: () => string): Event | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const input = raw as Record<string, unknown>;
  const { event_id: id, event_type: type, key, user_id: userId, timestamp, value, properties } = input;
  if (!isAbsent(id) && !isEventId(id)) return undefined;
  if (typeof type !== "string" || !EVENT_TYPE.test(type)) return undefined;
  if (!isAbsent(key) && !isKeyText(key)) return undefined;
  if (!isAbsent(userId) && !isKeyText(userId)) return undefined;
  const actorKey = (isAbsent(key) ? userId : key) as string | null | undefined;
  if (isAbsent(actorKey)) return undefined;
  let ts = now;
  if (typeof timestamp === "number") {
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) return undefined;
    ts = timestamp;
  } else if (typeof timestamp === "string") {
    const parsed = parseIsoTimestamp(timestamp);
    if (parsed === undefined || parsed < 0) return undefined;
    ts = parsed;
  } else if (!isAbsent(timestamp)) return undefined;
  if (ts > now + config.maxFutureSkewMs) return undefined;
  if (!isAbsent(value) && !(typeof value === "number" && Number.isFinite(value))) return undefined;
  if (!isAbsent(properties) && checkProperties(properties, config) !== undefined) return undefined;
  const event: Event = { id: isAbsent(id) ? newId() : (id as string), assigned: isAbsent(id), type, key: actorKey!, ts };
  const amount = isAbsent(properties) ? undefined : (properties as Record<string, unknown>).amount;
  if (typeof value === "number") event.value = value;
  else if (typeof amount === "number" && Number.isFinite(amount)) event.value = amount;
  if (!isAbsent(properties)) event.properties = properties as Record<string, unknown>;
  return event;
}

/** The general path: the zod schema plus the checks it cannot express, every problem named. */
export function schemaNormalize(raw: unknown, config: ActorConfig, now: number, newId: () => string): Normalized {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, problems: [{ field: "(event)", message: "must be a JSON object" }] };
  }
  const parsed = wire.safeParse(raw);
  const problems: FieldProblem[] = parsed.success
    ? []
    : parsed.error.issues.map((issue) => ({ field: issue.path.join(".") || "(event)", message: issue.message }));
  const input = raw as Record<string, unknown>;

  let ts = now;
  const timestamp = input.timestamp;
  if (typeof timestamp === "string") {
    const parsedTs = parseIsoTimestamp(timestamp);
    if (parsedTs === undefined) problems.push({ field: "timestamp", message: `"${timestamp}" is not an ISO-8601 date-time` });
    else ts = parsedTs;
  } else if (typeof timestamp === "number") {
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
      problems.push({ field: "timestamp", message: "epoch milliseconds must be a non-negative integer" });
    } else ts = timestamp;
  }
  if (ts < 0) problems.push({ field: "timestamp", message: "must not be before 1970-01-01" });
  if (ts > now + config.maxFutureSkewMs) {
    problems.push({ field: "timestamp", message: `is more than ${config.maxFutureSkewMs} ms in the future` });
  }
  if (input.properties !== undefined && input.properties !== null) {
    const problem = checkProperties(input.properties, config);
    if (problem) problems.push({ field: "properties", message: problem });
  }
  const keyGiven = (input.key ?? input.user_id) !== undefined && (input.key ?? input.user_id) !== null;
  if (!keyGiven) problems.push({ field: "key", message: "is required: give key or user_id" });
  if (!parsed.success || problems.length) {
    return { ok: false, problems: dedupeProblems(problems) };
  }
  const data = parsed.data;
  const actorKey = (data.key ?? data.user_id)!;
  const properties = (input.properties ?? undefined) as Record<string, unknown> | undefined;
  const amount = properties?.amount;
  const value = data.value ?? (typeof amount === "number" && Number.isFinite(amount) ? amount : undefined);
  const event: Event = { id: data.event_id ?? newId(), assigned: !data.event_id, type: data.event_type, key: actorKey, ts };
  if (value !== undefined) event.value = value;
  if (properties !== undefined) event.properties = properties;
  return { ok: true, event };
}

function dedupeProblems(problems: FieldProblem[]): FieldProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const id = `${p.field}\u0000${p.message}`;
    return seen.has(id) ? false : (seen.add(id), true);
  });
}

/** Indexes of `events` per actor key, in first-seen key order and event order. */
export function groupByKey(events: readonly Event[]): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  events.forEach((e, i) => {
    const list = byKey.get(e.key);
    if (list) list.push(i);
    else byKey.set(e.key, [i]);
  });
  return byKey;
}

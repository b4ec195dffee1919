import { SinkError } from "../../delivery/sink.ts";
import type { OutboxAlert, OutboxRecord, WindowRecord } from "../../actor/outbox.ts";
import { aggregateView, shapeOf } from "../../delivery/records.ts";
import { DEFAULT_TENANT, splitActorName } from "../../actor/tenant.ts";

/**
 * What the Redis sink sends, whichever client sends it (the Upstash REST pipeline in sink.ts, an
 * ioredis pipeline in native.ts): the commands of a batch are built here once, and each client maps
 * them one to one onto its own calls, so the two can never write different keys or fields.
 */

// Writes a window hash only if its revision is newer than the stored one, so a replayed or
// redelivered older revision never overwrites a newer one. ARGV: revision, ttl, field, value, …
export const WINDOW_SCRIPT = `
local stored = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if tonumber(ARGV[1]) <= stored then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

// A superseded session: its hash goes unless it already holds a later revision. ARGV: the retracted revision.
export const RETRACT_SCRIPT = `
local stored = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if stored > tonumber(ARGV[1]) then return 0 end
return redis.call('DEL', KEYS[1])`;

// Redis errors that mean "try again later"; any other Redis error refuses the command.
const TRANSIENT_REDIS = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS)\b/;
const REDIS_ERROR = /^(ERR|WRONGTYPE|NOSCRIPT|EXECABORT|OOM)\b/;
// XADD with an explicit id at or below the stream's top: the entry is already there.
const ALREADY_ADDED = /equal or smaller than the target stream top item/;

/** The placeholder KEYFLOW_REDIS_PREFIX may hold. */
export const TENANT_PLACEHOLDER = "{tenant}";

/**
 * The prefix of a tenant's keys. A prefix with "{tenant}" has it replaced by the tenant's name (every
 * tenant, the default one too). Without it, the default tenant's keys are those of a keyflow from
 * before tenants (`kf:events:<key>`), and another tenant's have `t:<tenant>:` after the prefix
 * (`kf:t:acme:events:<key>`): never a default tenant's key, which goes on with "events:",
 * "window:" or "alerts:". Tenant names hold no ':' (TENANT_NAME), so two tenants' keys never meet either.
 */
export function tenantPrefix(prefix: string, tenant: string): string {
  if (prefix.includes(TENANT_PLACEHOLDER)) return prefix.replaceAll(TENANT_PLACEHOLDER, tenant);
  return tenant === DEFAULT_TENANT ? prefix : `${prefix}t:${tenant}:`;
}

export const streamName = (tenantPrefix: string, key: string) => `${tenantPrefix}events:${key}`;
export const windowName = (tenantPrefix: string, key: string, spec: string, start: number, type?: string) =>
  `${tenantPrefix}window:${key}:${spec}:${start}${type === undefined ? "" : `:${type}`}`;
export const alertStreamName = (tenantPrefix: string, key: string) => `${tenantPrefix}alerts:${key}`;


/** The settings the commands depend on (RedisSinkOptions has them). */
export interface RedisLayout {
  prefix: string;
  ttlSeconds: number;
  streamMaxLen: number;
}

/** One command of a batch. */
export type RedisCommand =
  /** XADD key MAXLEN ~ streamMaxLen id field value … */
  | { op: "xadd"; key: string; id: string; fields: Record<string, string> }
  /** WINDOW_SCRIPT on one key. */
  | { op: "window"; key: string; args: string[] }
  /** RETRACT_SCRIPT on one key. */
  | { op: "retract"; key: string; args: string[] }
  | { op: "expire"; key: string; seconds: number };

export interface RedisBatch {
  commands: RedisCommand[];
  /** owner[c]: the first record command c is for (a stream's EXPIRE: the stream's first record). */
  owner: number[];
  /** Commands before this index write records; the rest are EXPIREs. */
  perRecord: number;
}

/**
 * The commands of a batch: per event an XADD to its key's stream with the outbox position as entry
 * id (a redelivery is refused as already present), per window the revision-guarded script, per
 * alert an XADD to the key's alert stream, then one EXPIRE per stream after its entries.
 * `prefixOf(tenant)`: the tenant's key prefix (tenantPrefix, cached by the caller).
 */
export function redisBatch(records: OutboxRecord[], layout: RedisLayout, prefixOf: (tenant: string) => string): RedisBatch {
  const { ttlSeconds } = layout;
  const commands: RedisCommand[] = [];
  const owner: number[] = [];
  const streams = new Map<string, number>();
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.kind === "event") {
      const { tenant, key } = splitActorName(r.key);
      const stream = streamName(prefixOf(tenant), key);
      const fields: Record<string, string> = {
        tenant,
        event_id: r.id,
        event_type: r.type,
        timestamp: String(r.ts),
        late: r.late ? "1" : "0",
        data: JSON.stringify({ value: r.value ?? null, properties: r.properties ?? null, received_at: r.receivedAt, ...(r.enriched ? { enriched: r.enriched } : {}) }),
      };
      if (r.value !== undefined) fields.value = String(r.value);
      if (r.requestId !== undefined) fields.request_id = r.requestId;
      commands.push({ op: "xadd", key: stream, id: `${r.n + 1}-0`, fields });
      owner.push(i);
      if (!streams.has(stream)) streams.set(stream, i);
    } else if (r.kind === "window") {
      const { tenant, key } = splitActorName(r.key);
      const hash = windowName(prefixOf(tenant), key, r.spec, r.start, r.type);
      if (r.retracted) commands.push({ op: "retract", key: hash, args: [String(r.revision)] });
      else commands.push({ op: "window", key: hash, args: [String(r.revision), String(ttlSeconds), ...windowFields(r)] });
      owner.push(i);
    } else if (r.kind === "alert") {
      const { tenant, key } = splitActorName(r.key);
      const stream = alertStreamName(prefixOf(tenant), key);
      commands.push({ op: "xadd", key: stream, id: `${r.n + 1}-0`, fields: alertFields(r, tenant) });
      owner.push(i);
      if (!streams.has(stream)) streams.set(stream, i);
    }
  }
  const perRecord = commands.length;
  if (perRecord && ttlSeconds > 0) {
    for (const [stream, first] of streams) {
      commands.push({ op: "expire", key: stream, seconds: ttlSeconds });
      owner.push(first);
    }
  }
  return { commands, owner, perRecord };
}

/**
 * The batch's failure from each command's error message (undefined: it succeeded), or undefined
 * when every record is written. The records before the earliest failing command's record are fully
 * written; an XADD refused as already there is a success; a Redis error that refuses the data is
 * permanent for its record, anything else (a lost connection, LOADING, a timeout) transient.
 */
export function batchFailure(errors: ReadonlyArray<string | undefined>, batch: RedisBatch): SinkError | undefined {
  const { owner, perRecord } = batch;
  let failed = -1;
  let failure: SinkError | undefined;
  for (let c = 0; c < errors.length; c++) {
    const error = errors[c];
    if (!error || ALREADY_ADDED.test(error) || (failed >= 0 && owner[c]! >= failed)) continue;
    // An EXPIRE that failed leaves its stream's entries in place: send them again, never dead-letter them.
    const permanent = c < perRecord && REDIS_ERROR.test(error) && !TRANSIENT_REDIS.test(error);
    failed = owner[c]!;
    failure = new SinkError(`redis: ${error}`, permanent, failed);
  }
  return failure;
}

/** An alert's stream entry: times in epoch ms, as an event's; event_id empty when the wall clock closed the window. */
export function alertFields(r: OutboxAlert, tenant: string): Record<string, string> {
  const fields: Record<string, string> = {
    tenant,
    rule: r.rule,
    shape: r.window.shape,
    start: String(r.window.start),
    end: String(r.window.end),
    aggregate: r.aggregate,
    value: String(r.value),
    event_id: r.eventId,
    fired_at: String(r.firedAt),
  };
  if (r.baseline !== undefined) fields.baseline = JSON.stringify(r.baseline);
  return fields;
}

/**
 * Flat field/value list of a window hash: its tenant and client key, its identity, overall
 * aggregates, then "<type>:<field>" per event type.
 */
export function windowFields(r: WindowRecord): string[] {
  const { tenant, key } = splitActorName(r.key);
  const fields: string[] = [
    "tenant", tenant, "key", key, "size", r.spec, "start", String(r.start), "end", String(r.end),
    "revision", String(r.revision), "final", r.final ? "1" : "0", "shape", shapeOf(r),
  ];
  if (r.type !== undefined) fields.push("event_type", r.type);
  const extrasOf = (type: string) => (r.extras && Object.hasOwn(r.extras, type) ? r.extras[type] : undefined);
  const add = (prefix: string, agg: ReturnType<typeof aggregateView>) => {
    for (const [name, value] of Object.entries(agg)) {
      fields.push(prefix + name, value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));
    }
  };
  add("", aggregateView(r.all, r.type === undefined ? undefined : extrasOf(r.type)));
  for (const [type, agg] of Object.entries(r.types)) add(`${type}:`, aggregateView(agg, extrasOf(type)));
  return fields;
}

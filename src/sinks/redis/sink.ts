import { Redis } from "@upstash/redis";
import { SinkError, TOO_LARGE, type Sink } from "../../delivery/sink.ts";
import type { OutboxAlert, OutboxRecord, WindowRecord } from "../../actor/outbox.ts";
import { aggregateView, shapeOf } from "../../delivery/records.ts";
import { DEFAULT_TENANT, splitActorName } from "../../actor/tenant.ts";

export interface RedisSinkOptions {
  url: string;
  token: string;
  /** Before every key; "{tenant}" in it is replaced by the record's tenant (see tenantPrefix). */
  prefix: string;
  ttlSeconds: number;
  streamMaxLen: number;
  /** How long one pipelined request may take (KEYFLOW_SINK_TIMEOUT); default 10 s. */
  timeoutMs?: number;
}

// Writes a window hash only if its revision is newer than the stored one, so a replayed or
// redelivered older revision never overwrites a newer one. ARGV: revision, ttl, field, value, …
const WINDOW_SCRIPT = `
local stored = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if tonumber(ARGV[1]) <= stored then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

// A superseded session: its hash goes unless it already holds a later revision. ARGV: the retracted revision.
const RETRACT_SCRIPT = `
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

const streamName = (tenantPrefix: string, key: string) => `${tenantPrefix}events:${key}`;
const windowName = (tenantPrefix: string, key: string, spec: string, start: number, type?: string) =>
  `${tenantPrefix}window:${key}:${spec}:${start}${type === undefined ? "" : `:${type}`}`;
const alertStreamName = (tenantPrefix: string, key: string) => `${tenantPrefix}alerts:${key}`;

/**
 * Redis through the Upstash REST API: a per-key stream of processed events and one of alerts (XADD
 * with the outbox position as entry id, so a redelivery is refused as already present; MAXLEN-bounded)
 * and one hash per window with its latest aggregates (guarded by revision). One pipelined request per
 * batch, with one EXPIRE per stream after its entries.
 */
export class RedisSink implements Sink {
  readonly name = "redis";
  private readonly redis: Redis;
  private readonly trim: { trim: { type: "MAXLEN"; threshold: number; comparison: "~" } };
  /** Each tenant's prefix, made once. */
  private readonly prefixes = new Map<string, string>();

  constructor(private readonly opts: RedisSinkOptions) {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.redis = new Redis({
      url: opts.url,
      token: opts.token,
      retry: false, // the delivery channel retries, with backoff and a breaker
      enableTelemetry: false,
      enableAutoPipelining: false,
      readYourWrites: false,
      // Replies are entry ids, counts and errors: no base64 to decode, no JSON to try on each.
      responseEncoding: false,
      automaticDeserialization: false,
      // A function: a fresh timeout per request, and an abort rejects (a plain signal would answer "Aborted").
      signal: () => AbortSignal.timeout(timeoutMs),
    });
    this.trim = { trim: { type: "MAXLEN", threshold: opts.streamMaxLen, comparison: "~" } };
  }

  /** The stream of a tenant's key (`key`: the client's key, not the actor name); `prefix` as configured. */
  static streamKey(prefix: string, tenant: string, key: string): string {
    return streamName(tenantPrefix(prefix, tenant), key);
  }

  /** The stream of a tenant's key's alerts; `prefix` as configured. */
  static alertStreamKey(prefix: string, tenant: string, key: string): string {
    return alertStreamName(tenantPrefix(prefix, tenant), key);
  }

  /** The hash of a tenant's key's window; `prefix` as configured. */
  static windowKey(prefix: string, tenant: string, key: string, spec: string, start: number, type?: string): string {
    return windowName(tenantPrefix(prefix, tenant), key, spec, start, type);
  }

  private prefixOf(tenant: string): string {
    let prefix = this.prefixes.get(tenant);
    if (prefix === undefined) this.prefixes.set(tenant, (prefix = tenantPrefix(this.opts.prefix, tenant)));
    return prefix;
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    const { ttlSeconds } = this.opts;
    // owner[c]: the first record command c is for (a stream's EXPIRE: the stream's first record).
    const owner: number[] = [];
    const streams = new Map<string, number>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.kind === "event") {
        const { tenant, key } = splitActorName(r.key);
        const stream = streamName(this.prefixOf(tenant), key);
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
        pipeline.xadd(stream, `${r.n + 1}-0`, fields, this.trim);
        owner.push(i);
        if (!streams.has(stream)) streams.set(stream, i);
      } else if (r.kind === "window") {
        const { tenant, key } = splitActorName(r.key);
        const hash = windowName(this.prefixOf(tenant), key, r.spec, r.start, r.type);
        if (r.retracted) pipeline.eval(RETRACT_SCRIPT, [hash], [String(r.revision)]);
        else pipeline.eval(WINDOW_SCRIPT, [hash], [String(r.revision), String(ttlSeconds), ...windowFields(r)]);
        owner.push(i);
      } else if (r.kind === "alert") {
        const { tenant, key } = splitActorName(r.key);
        const stream = alertStreamName(this.prefixOf(tenant), key);
        pipeline.xadd(stream, `${r.n + 1}-0`, alertFields(r, tenant), this.trim);
        owner.push(i);
        if (!streams.has(stream)) streams.set(stream, i);
      }
    }
    if (!owner.length) return;
    const perRecord = owner.length; // commands before this one write records; the rest are EXPIREs
    if (ttlSeconds > 0) {
      for (const [stream, first] of streams) {
        pipeline.expire(stream, ttlSeconds);
        owner.push(first);
      }
    }
    let results: Array<{ error?: string }>;
    try {
      results = (await pipeline.exec({ keepErrors: true })) as Array<{ error?: string }>;
    } catch (error) {
      // The client's message quotes the whole request ("…, command was: [[…]]"): keep the reason.
      const message = ((error as Error)?.message ?? String(error)).split(", command was:")[0]!.slice(0, 500);
      // Upstash refuses a request over its size limit ("max request size exceeded"): the channel halves the batch.
      const tooLarge = TOO_LARGE.test(message);
      throw new SinkError(`redis: ${message}`, tooLarge, undefined, tooLarge);
    }
    // The records before the earliest failing command's record are fully written.
    let failed = -1;
    let failure: SinkError | undefined;
    for (let c = 0; c < results.length; c++) {
      const error = results[c]?.error;
      if (!error || ALREADY_ADDED.test(error) || (failed >= 0 && owner[c]! >= failed)) continue;
      // An EXPIRE that failed leaves its stream's entries in place: send them again, never dead-letter them.
      const permanent = c < perRecord && REDIS_ERROR.test(error) && !TRANSIENT_REDIS.test(error);
      failed = owner[c]!;
      failure = new SinkError(`redis: ${error}`, permanent, failed);
    }
    if (failure) throw failure;
  }
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

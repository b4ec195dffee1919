import { Redis } from "@upstash/redis";
import { SinkError, TOO_LARGE, type Sink } from "../../delivery/sink.ts";
import type { OutboxRecord } from "../../actor/outbox.ts";
import {
  alertStreamName,
  batchFailure,
  redisBatch,
  RETRACT_SCRIPT,
  streamName,
  tenantPrefix,
  WINDOW_SCRIPT,
  windowName,
  type RedisLayout,
} from "./commands.ts";

export { alertFields, TENANT_PLACEHOLDER, tenantPrefix, windowFields } from "./commands.ts";

export interface RedisSinkOptions extends RedisLayout {
  /**
   * https:// (or http://): the Upstash REST API, with `token`; redis:// or rediss://: a Redis server
   * spoken to natively (the self-hosted server only: native.ts), credentials and db in the URL.
   */
  url: string;
  /** The REST API's token; none for a redis:// URL. */
  token?: string;
  /** Before every key; "{tenant}" in it is replaced by the record's tenant (see tenantPrefix). */
  prefix: string;
  ttlSeconds: number;
  streamMaxLen: number;
  /** How long one pipelined request may take (KEYFLOW_SINK_TIMEOUT); default 10 s. */
  timeoutMs?: number;
}

/** redis:// and rediss:// URLs need the native client (the self-hosted server); http(s):// the REST one. */
export function isNativeRedisUrl(url: string): boolean {
  return /^rediss?:\/\//i.test(url);
}

/** Each tenant's key prefix, made once per tenant. */
export function prefixCache(prefix: string): (tenant: string) => string {
  const prefixes = new Map<string, string>();
  return (tenant) => {
    let p = prefixes.get(tenant);
    if (p === undefined) prefixes.set(tenant, (p = tenantPrefix(prefix, tenant)));
    return p;
  };
}

/**
 * Redis through the Upstash REST API: a per-key stream of processed events and one of alerts (XADD
 * with the outbox position as entry id, so a redelivery is refused as already present; MAXLEN-bounded)
 * and one hash per window with its latest aggregates (guarded by revision). One pipelined request per
 * batch, with one EXPIRE per stream after its entries (the commands: commands.ts, shared with the
 * native client).
 */
export class RedisSink implements Sink {
  readonly name = "redis";
  private readonly redis: Redis;
  private readonly trim: { trim: { type: "MAXLEN"; threshold: number; comparison: "~" } };
  private readonly prefixOf: (tenant: string) => string;

  constructor(private readonly opts: RedisSinkOptions) {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.redis = new Redis({
      url: opts.url,
      token: opts.token ?? "",
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
    this.prefixOf = prefixCache(opts.prefix);
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

  async deliver(records: OutboxRecord[]): Promise<void> {
    const batch = redisBatch(records, this.opts, this.prefixOf);
    if (!batch.perRecord) return;
    const pipeline = this.redis.pipeline();
    for (const c of batch.commands) {
      if (c.op === "xadd") pipeline.xadd(c.key, c.id, c.fields, this.trim);
      else if (c.op === "window") pipeline.eval(WINDOW_SCRIPT, [c.key], c.args);
      else if (c.op === "retract") pipeline.eval(RETRACT_SCRIPT, [c.key], c.args);
      else pipeline.expire(c.key, c.seconds);
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
    const failure = batchFailure(results.map((r) => r?.error), batch);
    if (failure) throw failure;
  }
}

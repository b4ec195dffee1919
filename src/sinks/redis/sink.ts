import { Redis } from "@upstash/redis";
import { SinkError, type Sink } from "../../delivery/sink.ts";
import type { OutboxRecord, WindowRecord } from "../../actor/outbox.ts";
import { aggregateView } from "../../delivery/records.ts";

export interface RedisSinkOptions {
  url: string;
  token: string;
  prefix: string;
  ttlSeconds: number;
  streamMaxLen: number;
}

// Writes a window hash only if its revision is newer than the stored one, so a replayed or
// redelivered older revision never overwrites a newer one. ARGV: revision, ttl, field, value, …
const WINDOW_SCRIPT = `
local stored = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if tonumber(ARGV[1]) <= stored then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

// Redis errors that mean "try again later"; any other Redis error refuses the command.
const TRANSIENT_REDIS = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS)\b/;
const REDIS_ERROR = /^(ERR|WRONGTYPE|NOSCRIPT|EXECABORT|OOM)\b/;
// XADD with an explicit id at or below the stream's top: the entry is already there.
const ALREADY_ADDED = /equal or smaller than the target stream top item/;

/**
 * Redis through the Upstash REST API: a per-key stream of processed events (XADD with the outbox
 * position as entry id, so a redelivery is refused as already present; MAXLEN-bounded) and one hash
 * per window with its latest aggregates (guarded by revision). One pipelined request per batch.
 */
export class RedisSink implements Sink {
  readonly name = "redis";
  private readonly redis: Redis;

  constructor(private readonly opts: RedisSinkOptions) {
    this.redis = new Redis({
      url: opts.url,
      token: opts.token,
      retry: false,
      enableTelemetry: false,
      enableAutoPipelining: false,
      readYourWrites: false,
    });
  }

  static streamKey(prefix: string, key: string): string {
    return `${prefix}events:${key}`;
  }

  static windowKey(prefix: string, key: string, spec: string, start: number): string {
    return `${prefix}window:${key}:${spec}:${start}`;
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    const owner: number[] = [];
    records.forEach((r, i) => {
      if (r.kind === "event") {
        const stream = RedisSink.streamKey(this.opts.prefix, r.key);
        const fields: Record<string, string> = {
          event_id: r.id,
          event_type: r.type,
          timestamp: String(r.ts),
          late: r.late ? "1" : "0",
          data: JSON.stringify({ value: r.value ?? null, properties: r.properties ?? null, received_at: r.receivedAt }),
        };
        if (r.value !== undefined) fields.value = String(r.value);
        pipeline.xadd(stream, `${r.n + 1}-0`, fields, { trim: { type: "MAXLEN", threshold: this.opts.streamMaxLen, comparison: "~" } });
        owner.push(i);
        if (this.opts.ttlSeconds > 0) {
          pipeline.expire(stream, this.opts.ttlSeconds);
          owner.push(i);
        }
      } else if (r.kind === "window") {
        const key = RedisSink.windowKey(this.opts.prefix, r.key, r.spec, r.start);
        pipeline.eval(WINDOW_SCRIPT, [key], [String(r.revision), String(this.opts.ttlSeconds), ...windowFields(r)]);
        owner.push(i);
      }
    });
    if (!owner.length) return;
    let results: Array<{ error?: string }>;
    try {
      results = (await pipeline.exec({ keepErrors: true })) as Array<{ error?: string }>;
    } catch (error) {
      throw new SinkError(`redis: ${(error as Error)?.message ?? error}`, false);
    }
    results.forEach((res, c) => {
      if (!res?.error || ALREADY_ADDED.test(res.error)) return;
      const permanent = REDIS_ERROR.test(res.error) && !TRANSIENT_REDIS.test(res.error);
      throw new SinkError(`redis: ${res.error}`, permanent, owner[c]);
    });
  }
}

/** Flat field/value list of a window hash: overall aggregates, then "<type>:<field>" per event type. */
export function windowFields(r: WindowRecord): string[] {
  const fields: string[] = [
    "key", r.key, "size", r.spec, "start", String(r.start), "end", String(r.end),
    "revision", String(r.revision), "final", r.final ? "1" : "0",
  ];
  const add = (prefix: string, agg: ReturnType<typeof aggregateView>) => {
    for (const [name, value] of Object.entries(agg)) fields.push(prefix + name, value === null ? "" : String(value));
  };
  add("", aggregateView(r.all));
  for (const [type, agg] of Object.entries(r.types)) add(`${type}:`, aggregateView(agg));
  return fields;
}

import { Redis, type ChainableCommander } from "ioredis";
import { SinkError, type Sink } from "../../delivery/sink.ts";
import type { OutboxRecord } from "../../actor/outbox.ts";
import { batchFailure, redisBatch, RETRACT_SCRIPT, WINDOW_SCRIPT } from "./commands.ts";
import { prefixCache, type RedisSinkOptions } from "./sink.ts";

/** The scripts as ioredis commands: EVALSHA, or EVAL where the connection has not loaded them yet (and after NOSCRIPT). */
type ScriptPipeline = ChainableCommander & {
  keyflowWindow(key: string, ...args: string[]): ChainableCommander;
  keyflowRetract(key: string, ...args: string[]): ChainableCommander;
};

/** Reconnect delays: 50 ms, doubling, at most this long, for as long as it takes. */
const RECONNECT_MAX_MS = 2_000;

/**
 * Redis spoken to natively (ioredis, over TCP or TLS: a redis:// or rediss:// URL) on the
 * self-hosted server. The same commands as the REST sink (commands.ts), one pipeline per batch.
 *
 * A lost connection never ends the process: the client has an 'error' listener and reconnects by
 * itself, with capped backoff, for ever; meanwhile a batch fails at once (no offline queue) and the
 * delivery channel retries it. Commands in flight when a connection drops fail too (no resend:
 * the channel sends the batch again, and every command is idempotent).
 */
export class NativeRedisSink implements Sink {
  readonly name = "redis";
  private readonly redis: Redis;
  private readonly prefixOf: (tenant: string) => string;
  private connecting: Promise<void> | undefined;
  /** An outage was logged and the client has not been ready since: one line per outage, not per attempt. */
  private down = false;
  private closing = false;

  constructor(private readonly opts: RedisSinkOptions) {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.redis = new Redis(opts.url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), RECONNECT_MAX_MS),
    });
    this.redis.defineCommand("keyflowWindow", { numberOfKeys: 1, lua: WINDOW_SCRIPT });
    this.redis.defineCommand("keyflowRetract", { numberOfKeys: 1, lua: RETRACT_SCRIPT });
    this.redis.on("error", (error: Error) => {
      if (this.closing || this.down) return;
      this.down = true;
      console.warn(`keyflow redis sink: connection lost (${error.message}); reconnecting`);
    });
    this.redis.on("ready", () => {
      if (this.down && !this.closing) console.warn("keyflow redis sink: reconnected");
      this.down = false;
    });
    this.prefixOf = prefixCache(opts.prefix);
  }

  /** Connects on the first batch; while the client reconnects, a batch fails (transiently) rather than waits. */
  private async ready(): Promise<void> {
    const status = this.redis.status;
    if (status === "ready") return;
    if (status === "wait") this.connecting ??= this.redis.connect().finally(() => (this.connecting = undefined));
    if (this.connecting) {
      try {
        return await this.connecting;
      } catch (error) {
        throw new SinkError(`redis: ${(error as Error)?.message ?? String(error)}`, false);
      }
    }
    throw new SinkError(`redis: not connected (${status}); the client reconnects by itself`, false);
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const batch = redisBatch(records, this.opts, this.prefixOf);
    if (!batch.perRecord) return;
    await this.ready();
    const pipeline = this.redis.pipeline() as ScriptPipeline;
    const maxLen = String(this.opts.streamMaxLen);
    for (const c of batch.commands) {
      if (c.op === "xadd") pipeline.call("XADD", c.key, "MAXLEN", "~", maxLen, c.id, ...Object.entries(c.fields).flat());
      else if (c.op === "window") pipeline.keyflowWindow(c.key, ...c.args);
      else if (c.op === "retract") pipeline.keyflowRetract(c.key, ...c.args);
      else pipeline.expire(c.key, c.seconds);
    }
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      throw new SinkError(`redis: ${(error as Error)?.message ?? String(error)}`, false);
    }
    if (!results) throw new SinkError("redis: the pipeline was not sent", false);
    const failure = batchFailure(results.map(([error]) => (error ? error.message || String(error) : undefined)), batch);
    if (failure) throw failure;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.redis.status === "wait" || this.redis.status === "end") return;
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

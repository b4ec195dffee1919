import type { EnvReader } from "../../settings/reader.ts";
import { redisUrl } from "../urls.ts";
import { isNativeRedisUrl, type RedisSinkOptions } from "./sink.ts";

/**
 * KEYFLOW_REDIS_URL (or UPSTASH_REDIS_REST_URL) turns the Redis sink on: an https:// URL is
 * Upstash's REST API and needs its token; a redis:// or rediss:// URL is a Redis server spoken to
 * natively (the self-hosted server), its password, user and db in the URL.
 */
export function redisSettings(r: EnvReader, timeoutMs: number): RedisSinkOptions | undefined {
  const found = r.get("KEYFLOW_REDIS_URL", "UPSTASH_REDIS_REST_URL");
  if (!found) return undefined;
  const url = r.check(redisUrl, found.name, found.value);
  const native = url !== undefined && isNativeRedisUrl(url);
  const token = native ? undefined : r.required(found.name, "KEYFLOW_REDIS_TOKEN", "UPSTASH_REDIS_REST_TOKEN");
  const ttlMs = r.durationMs("KEYFLOW_REDIS_TTL", "7d");
  const streamMaxLen = r.whole("KEYFLOW_REDIS_STREAM_MAXLEN", 10_000);
  if (!url || (!native && !token)) return undefined;
  return { url, ...(token ? { token } : {}), prefix: r.env.KEYFLOW_REDIS_PREFIX ?? "kf:", ttlSeconds: Math.round(ttlMs / 1000), streamMaxLen, timeoutMs };
}

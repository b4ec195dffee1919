import type { EnvReader } from "../../settings/reader.ts";
import { httpUrl } from "../urls.ts";
import type { RedisSinkOptions } from "./sink.ts";

/** KEYFLOW_REDIS_URL (or UPSTASH_REDIS_REST_URL) turns the Redis sink on. */
export function redisSettings(r: EnvReader, timeoutMs: number): RedisSinkOptions | undefined {
  const found = r.get("KEYFLOW_REDIS_URL", "UPSTASH_REDIS_REST_URL");
  if (!found) return undefined;
  const url = r.check(httpUrl, found.name, found.value);
  const token = r.required(found.name, "KEYFLOW_REDIS_TOKEN", "UPSTASH_REDIS_REST_TOKEN");
  const ttlMs = r.durationMs("KEYFLOW_REDIS_TTL", "7d");
  const streamMaxLen = r.whole("KEYFLOW_REDIS_STREAM_MAXLEN", 10_000);
  if (!url || !token) return undefined;
  return { url, token, prefix: r.env.KEYFLOW_REDIS_PREFIX ?? "kf:", ttlSeconds: Math.round(ttlMs / 1000), streamMaxLen, timeoutMs };
}

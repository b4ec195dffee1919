/**
 * Start the local protocol fronts (scripts/fronts/*) and throwaway redis-servers as subprocesses for tests.
 *
 *   const front = await startUpstashFront();            // Upstash REST -> redis 127.0.0.1:6379
 *   new Redis({ url: front.url, token: front.token });
 *   const proxy = await startNeonProxy();               // ws://127.0.0.1:<port>/v1 -> postgres
 *   neonConfig.wsProxy = (host, port) => `${proxy.address}?address=${host}:${port}`;
 *   ...; await front.stop(); await proxy.stop();
 */
import { join } from "node:path";
import { BIN, freePort, spawnUntil, type RunningProcess } from "./process.ts";

export { freePort, spawnUntil, type RunningProcess };

export interface UpstashFront extends RunningProcess {
  /** http://127.0.0.1:<port> — pass as `url` to `new Redis({ url, token })`. */
  url: string;
  port: number;
  token: string;
  redisUrl: string;
}

export interface NeonProxy extends RunningProcess {
  /** ws://127.0.0.1:<port>/v1 */
  url: string;
  port: number;
  /** "127.0.0.1:<port>/v1" — the neonConfig.wsProxy form (no scheme). */
  address: string;
}

export interface RedisServer extends RunningProcess {
  port: number;
  url: string;
}


export interface UpstashFrontOptions {
  /** Port to listen on; default: a free one. */
  port?: number;
  token?: string;
  /** Redis behind the front; default redis://127.0.0.1:6379. */
  redisUrl?: string;
  env?: Record<string, string>;
}

/** Starts scripts/fronts/upstash-redis.ts and waits for its ready line. */
export async function startUpstashFront(opts: UpstashFrontOptions = {}): Promise<UpstashFront> {
  const token = opts.token ?? "keyflow-local-token";
  const redisUrl = opts.redisUrl ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const p = await spawnUntil(
    [join(BIN, "bun"), "scripts/fronts/upstash-redis.ts"],
    /upstash-redis front listening on (http:\/\/[^\s]+) ->/,
    {
      UPSTASH_FRONT_HOST: "127.0.0.1",
      UPSTASH_FRONT_PORT: String(opts.port ?? 0),
      UPSTASH_FRONT_TOKEN: token,
      REDIS_URL: redisUrl,
      ...opts.env,
    },
  );
  const url = p.match[1]!;
  return { ...p, url, port: Number(new URL(url).port), token, redisUrl };
}

export interface NeonProxyOptions {
  /** Port to listen on; default: a free one. */
  port?: number;
  /** Regex source for allowed destinations; default ^(127\.0\.0\.1|localhost):5432$. */
  allow?: string;
  env?: Record<string, string>;
}

/** Starts scripts/fronts/neon-wsproxy.ts and waits for its ready line. */
export async function startNeonProxy(opts: NeonProxyOptions = {}): Promise<NeonProxy> {
  const p = await spawnUntil(
    [join(BIN, "bun"), "scripts/fronts/neon-wsproxy.ts"],
    /neon wsproxy listening on (ws:\/\/[^\s]+)/,
    {
      NEON_PROXY_HOST: "127.0.0.1",
      NEON_PROXY_PORT: String(opts.port ?? 0),
      ...(opts.allow ? { NEON_PROXY_ALLOW: opts.allow } : {}),
      ...opts.env,
    },
  );
  const url = p.match[1]!;
  return { ...p, url, port: Number(new URL(url).port), address: url.replace(/^ws:\/\//, "") };
}

/** Starts a throwaway redis-server (no persistence) in the foreground on `port` (default: a free one). */
export async function startRedisServer(port?: number): Promise<RedisServer> {
  const p0 = port ?? (await freePort());
  const p = await spawnUntil(
    ["redis-server", "--port", String(p0), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
    /Ready to accept connections/,
  );
  return { ...p, port: p0, url: `redis://127.0.0.1:${p0}` };
}

/**
 * Start the local protocol fronts (scripts/fronts/*) and throwaway redis-servers as subprocesses for tests.
 *
 *   const front = await startUpstashFront();            // Upstash REST -> redis 127.0.0.1:6379
 *   new Redis({ url: front.url, token: front.token });
 *   const proxy = await startNeonProxy();               // ws://127.0.0.1:<port>/v1 -> postgres
 *   neonConfig.wsProxy = (host, port) => `${proxy.address}?address=${host}:${port}`;
 *   ...; await front.stop(); await proxy.stop();
 */
import { createServer } from "node:net";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
const BIN = join(ROOT, "node_modules/.bin");

export interface RunningProcess {
  proc: ReturnType<typeof Bun.spawn>;
  /** Everything printed so far (stdout and stderr). */
  output(): string;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and resolves with its exit code. */
  stop(): Promise<number>;
}

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

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Spawns `cmd` and resolves once its output matches `ready` (rejects on exit or timeout). */
export async function spawnUntil(
  cmd: string[],
  ready: RegExp,
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<RunningProcess & { match: RegExpExecArray }> {
  const proc = Bun.spawn(cmd, {
    cwd: ROOT,
    env: { ...process.env, PATH: `${BIN}:${process.env.PATH}`, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let log = "";
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    }
    return await proc.exited;
  };
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      proc.kill("SIGKILL");
      reject(new Error(`${cmd.join(" ")} not ready within ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        log += decoder.decode(chunk);
        const m = ready.exec(log);
        if (m && !settled) {
          settled = true;
          clearTimeout(timer);
          resolve(m);
        }
      }
    };
    void collect(proc.stdout as ReadableStream<Uint8Array>);
    void collect(proc.stderr as ReadableStream<Uint8Array>);
    void proc.exited.then((code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${cmd.join(" ")} exited with ${code} before it was ready:\n${log}`));
    });
  });
  return { proc, match, output: () => log, stop };
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

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openBunSqlite } from "../../src/runtimes/bun-sqlite.ts";
import { selfHosted } from "../../src/runtimes/self-hosted.ts";
import { serverSettings } from "../../src/settings/env.ts";
import { BIN, ROOT, spawnUntil, type RunningProcess } from "./process.ts";

/** A running keyflow host, driven over its HTTP API. */
export interface Target {
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Stops the host and starts it again on the same persisted state. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Settings every contract host runs with: small lateness and idle timeout so closing is observable quickly. */
export const CONTRACT_ENV = {
  KEYFLOW_WINDOWS: "1s,1m,1h,5m/1m",
  KEYFLOW_ALLOWED_LATENESS: "2s",
  KEYFLOW_IDLE_TIMEOUT: "1s",
  KEYFLOW_MAX_BATCH_EVENTS: "10000",
};

export { ROOT };

export function tempDir(label: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `keyflow-${label}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** The shared Hono app and runtime in this process, on SQLite in a temp dir. */
export function inProcessTarget(extraEnv: Record<string, string> = {}): Target {
  const dir = tempDir("inproc");
  // Request log lines would land in the test runner's own output: warn and above only, unless a test asks.
  const settings = serverSettings({ ...CONTRACT_ENV, KEYFLOW_LOG_LEVEL: "warn", ...extraEnv, KEYFLOW_DATA_DIR: dir.path });
  let host = selfHosted(settings, openBunSqlite, "memory");
  return {
    fetch: async (path, init) => host.app.request(path, init),
    async restart() {
      await host.shutdown();
      host = selfHosted(settings, openBunSqlite, "memory");
    },
    async stop() {
      await host.shutdown();
      dir.remove();
    },
  };
}

export interface ServerProcess extends RunningProcess {
  url: string;
}

/** Spawns a server command and waits for its "listening on http://…" line. */
export async function spawnServer(cmd: string[], env: Record<string, string>, timeoutMs = 30_000, keepOutput = true): Promise<ServerProcess> {
  const started = await spawnUntil(cmd, /listening on (http:\/\/[^\s]+)/, env, timeoutMs, keepOutput);
  return { ...started, url: started.match[1]! };
}

/** A host started as its own process (bun or deno), on SQLite in a temp dir; restarts keep the dir. */
export function processTarget(cmd: string[], extraEnv: Record<string, string> = {}): Target & { start(): Promise<void>; readonly url: string } {
  const dir = tempDir("proc");
  const env = { ...CONTRACT_ENV, ...extraEnv, PORT: "0", HOST: "127.0.0.1", KEYFLOW_DATA_DIR: dir.path };
  let server: ServerProcess | undefined;
  return {
    async start() {
      server = await spawnServer(cmd, env);
    },
    fetch: (path, init) => fetch(server!.url + path, init),
    get url() {
      return server!.url;
    },
    async restart() {
      const code = await server!.stop();
      if (code !== 0) throw new Error(`server exited with ${code} on SIGTERM:\n${server!.output()}`);
      server = await spawnServer(cmd, env);
    },
    async stop() {
      await server?.stop();
      dir.remove();
    },
  };
}

export const BUN_SERVER = [join(BIN, "bun"), "src/runtimes/bun.ts"];
export const WORKERD_SERVER = ["node", join(ROOT, "tests/support/workerd-host.mjs")];
export const DENO_SERVER = [
  join(BIN, "deno"),
  "run",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-ffi",
  "src/runtimes/deno.ts",
];

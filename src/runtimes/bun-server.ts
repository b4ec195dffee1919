import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { ReadAsset } from "../http/assets.ts";
import type { EnvVars } from "../settings/reader.ts";
import { bunServeOptions } from "./bun-serve.ts";
import { openBunSqlite } from "./bun-sqlite.ts";
import { selfHosted, serverSettingsOrExit } from "./self-hosted.ts";

/** The self-hosted server on Bun (`npm start`, `keyflow serve`, the compiled binary). */
export interface BunServer {
  url: string;
  /** Resolves once a SIGINT or SIGTERM has stopped the listener and shut the host down (stored, flushed, closed). */
  stopped: Promise<void>;
}

/**
 * Starts the server from `env` (a bad variable ends the process with exit code 2 and a message
 * naming it) and stops it cleanly on SIGINT and SIGTERM.
 */
export function startBunServer(env: EnvVars): BunServer {
  const settings = serverSettingsOrExit(env);
  const sha256 = { into: (text: string, out: Uint8Array) => void Bun.CryptoHasher.hash("sha256", text, out) };
  const host = selfHosted(settings, openBunSqlite, "bun", sha256, compiledAssets());
  for (const warning of host.warnings) console.warn(warning);
  const server = Bun.serve(bunServeOptions(settings.host, settings.port, host.app.fetch));
  const url = `http://${server.hostname}:${server.port}`;
  console.log(`keyflow ${host.describe} listening on ${url}`);
  const stopped = new Promise<void>((resolve) => {
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      server.stop(true);
      await host.shutdown();
      resolve();
    };
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, stop);
  });
  return { url, stopped };
}

/**
 * In a binary made by `npm run build` (bun build --compile --asset src/http/public), the packaged
 * pages live in the binary's own file system as public/…, next to the entry point; elsewhere
 * (undefined) the host reads src/http/public/ from the source tree.
 */
function compiledAssets(): ReadAsset | undefined {
  const root = `${import.meta.dir}/public/`;
  if (!/[$~]bunfs|~BUN/i.test(import.meta.dir) || !existsSync(root)) return undefined;
  const read = new Map<string, Promise<Uint8Array<ArrayBuffer> | null>>();
  return (path) => {
    let bytes = read.get(path);
    if (!bytes) read.set(path, (bytes = readFile(root + path).then((b) => new Uint8Array(b), () => null)));
    return bytes;
  };
}

import { ProcessHost, type HostObserver } from "../hosts/process/host.ts";
import type { SqliteSync } from "../hosts/process/sqlite-store.ts";
import { createApp } from "../http/app.ts";
import { MemoryKvStore, type KvStore } from "../ports/kv-store.ts";
import { systemEnv, systemTimers } from "../ports/system.ts";
import { ConfigError } from "../settings/config.ts";
import { serverSettings, type ServerSettings } from "../settings/env.ts";
import type { EnvVars } from "../settings/reader.ts";
import { createSinks } from "../sinks/index.ts";
import { nativeSinks } from "../sinks/native.ts";
import { withTransactionalId } from "./kafka-transactional-id.ts";
import { accessFor } from "../http/access.ts";
import { KeyflowMetrics } from "../metrics/keyflow.ts";
import { Logger, sinkTroubleLog } from "../logging/logger.ts";
import { lazySentry } from "../reporting/reporter.ts";
import { VERSION } from "../version.ts";
import { webCryptoSha256, type Sha256 } from "../auth/key-ring.ts";
import { readFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import type { ReadAsset } from "../http/assets.ts";

export type OpenSqlite = (path: string, sync: SqliteSync) => KvStore;

/** Store + process host + app for the self-hosted server (Bun, Deno); the entry point adds only the listener. */
export function selfHosted(settings: ServerSettings, openSqlite: OpenSqlite, hostName: string, sha256: Sha256 = webCryptoSha256, assets: ReadAsset = packagedAssets()) {
  const storePath = `${settings.dataDir}/keyflow.db`;
  const store = settings.storage === "sqlite" ? openSqlite(storePath, settings.sqliteSync) : new MemoryKvStore();
  const sinks = createSinks(withTransactionalId(settings.sinks), { poolPerDelivery: false, native: nativeSinks });
  const { config } = settings;
  const metrics = settings.metrics ? new KeyflowMetrics() : undefined;
  const elapsedMs = () => performance.now();
  const stdout = batchedStdout();
  const logger = new Logger(settings.logLevel, stdout.write, () => systemEnv.clock.now());
  const observer = hostObserver(metrics, logger, elapsedMs);
  const runtime = new ProcessHost({ store, config, clock: systemEnv.clock, random: systemEnv.random, timers: systemTimers, sinks, observer });
  // Without keys the server is open: serverSettings let it start only on loopback (or with KEYFLOW_AUTH=off).
  const access = accessFor(settings.auth, true, sha256);
  if (metrics) collectHostMetrics(metrics, runtime);
  const reportError = settings.sentryDsn ? lazySentry(settings.sentryDsn, hostName, VERSION) : undefined;
  const app = createApp({ backend: runtime, config, env: systemEnv, host: hostName, access, metrics, elapsedMs, logger, reportError, assets });
  const storage = settings.storage === "sqlite" ? `sqlite ${storePath}` : "memory (not persisted)";
  const replayed = runtime.stats.replayed;
  const recovery = replayed ? `, recovered ${replayed} journal entries of an unclean stop` : "";
  const keys = access.mode === "keys" ? `${settings.auth.keys.length} API key${settings.auth.keys.length === 1 ? "" : "s"}` : "OPEN (no API keys)";
  const { analytics } = settings;
  const rules = analytics ? `, analytics: ${analytics.types.size} types, ${analytics.enrich.length} enrichment rules, ${analytics.rules.length} detection rules` : "";
  const describe = `${storage}, sinks: ${config.sinks.join(", ") || "none"}, auth: ${keys}${rules}${recovery}`;
  const warnings = access.mode === "keys" ? [] : [openWarning(settings)];
  const shutdown = async () => {
    await runtime.close();
    await Promise.all(sinks.map((s) => s.close?.()));
    store.close();
    stdout.flush();
  };
  return { app, describe, warnings, shutdown };
}

/** The files under src/http/public/, read once each and kept (they change only with a new version). */
function packagedAssets(): ReadAsset {
  const root = new URL("../http/public/", import.meta.url);
  const read = new Map<string, Promise<Uint8Array<ArrayBuffer> | null>>();
  return (path) => {
    let bytes = read.get(path);
    if (!bytes) read.set(path, (bytes = readFile(new URL(path, root)).then((b) => new Uint8Array(b), () => null)));
    return bytes;
  };
}

/** Commit and delivery durations to the metrics; sink failures and breaker changes to the log, at warn. */
function hostObserver(metrics: KeyflowMetrics | undefined, logger: Logger, elapsedMs: () => number): HostObserver {
  const timings = metrics?.hostObserver(elapsedMs);
  return {
    elapsedMs,
    commit: (ms, checkpoints) => timings?.commit(ms, checkpoints),
    delivery: (sink, ms) => timings?.delivery(sink, ms),
    sinkTrouble: sinkTroubleLog(logger),
  };
}

/** Log lines wait at most this long to be written with the ones after them. */
const LOG_LINGER_MS = 10;
const LOG_BATCH_LINES = 512;

/**
 * Log lines to stdout, gathered for up to LOG_LINGER_MS (or LOG_BATCH_LINES) and written together:
 * one write per batch instead of one per request or per event-loop turn (each write is a system
 * call, and at 20,000 requests/s they cost more than building the lines). Flushed at shutdown.
 */
function batchedStdout(): { write(line: string): void; flush(): void } {
  let lines: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (!lines.length) return;
    const text = `${lines.join("\n")}\n`;
    lines = [];
    process.stdout.write(text);
  };
  const write = (line: string) => {
    const count = lines.push(line);
    if (count >= LOG_BATCH_LINES) flush();
    else if (count === 1) timer = setTimeout(flush, LOG_LINGER_MS);
  };
  return { write, flush };
}

/** What the self-hosted server adds to the HTTP layer's metrics at each scrape: the process host's state and the process's memory. */
function collectHostMetrics(metrics: KeyflowMetrics, runtime: ProcessHost): void {
  metrics.collectHost(() => ({
    now: systemEnv.clock.now(),
    actorsInMemory: runtime.loadedActors,
    journalRows: runtime.journalRows,
    ...runtime.stats,
    sinks: runtime.delivery.channels.map((c) => c.status()),
    ...runtime.outboxSummary(),
  }));
  const rss = metrics.registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
  const heap = metrics.registry.gauge("keyflow_heap_used_bytes", "JavaScript heap in use, in bytes.");
  metrics.registry.onCollect(() => {
    const memory = process.memoryUsage();
    rss.set([], memory.rss);
    heap.set([], memory.heapUsed);
  });
}

function openWarning(settings: ServerSettings): string {
  const where = `http://${settings.host}:${settings.port}`;
  if (settings.auth.off) return `keyflow: WARNING: KEYFLOW_AUTH=off: the API at ${where} is open to anyone who can reach it: every key's state, dead letters and replays`;
  return (
    `keyflow: WARNING: no API keys are configured (KEYFLOW_API_KEYS): the API is open to anyone on this machine (${where}). ` +
    "Create keys with `npm run keys -- create` before binding another address; without keys the server refuses to."
  );
}

/** The server's settings from the environment (and KEYFLOW_CONFIG's file); a bad variable ends the process with a message naming it. */
export function serverSettingsOrExit(env: EnvVars): ServerSettings {
  try {
    return serverSettings(env, { read: (path) => readFileSync(path, "utf8") });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`keyflow: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
}

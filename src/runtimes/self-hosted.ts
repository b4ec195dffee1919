import { ProcessHost } from "../hosts/process/host.ts";
import type { SqliteSync } from "../hosts/process/sqlite-store.ts";
import { createApp } from "../http/app.ts";
import { MemoryKvStore, type KvStore } from "../ports/kv-store.ts";
import { systemEnv, systemTimers } from "../ports/system.ts";
import { ConfigError } from "../settings/config.ts";
import { serverSettings, type ServerSettings } from "../settings/env.ts";
import type { EnvVars } from "../settings/reader.ts";
import { createSinks } from "../sinks/index.ts";

export type OpenSqlite = (path: string, sync: SqliteSync) => KvStore;

/** Store + process host + app for the self-hosted server (Bun, Deno); the entry point adds only the listener. */
export function selfHosted(settings: ServerSettings, openSqlite: OpenSqlite, hostName: string) {
  const storePath = `${settings.dataDir}/keyflow.db`;
  const store = settings.storage === "sqlite" ? openSqlite(storePath, settings.sqliteSync) : new MemoryKvStore();
  const sinks = createSinks(settings.sinks, { poolPerDelivery: false });
  const { config } = settings;
  const runtime = new ProcessHost({ store, config, clock: systemEnv.clock, random: systemEnv.random, timers: systemTimers, sinks });
  const app = createApp({ backend: runtime, config, env: systemEnv, host: hostName });
  const storage = settings.storage === "sqlite" ? `sqlite ${storePath}` : "memory (not persisted)";
  const replayed = runtime.stats.replayed;
  const recovery = replayed ? `, recovered ${replayed} journal entries of an unclean stop` : "";
  const describe = `${storage}, sinks: ${config.sinks.join(", ") || "none"}${recovery}`;
  const shutdown = async () => {
    await runtime.close();
    await Promise.all(sinks.map((s) => s.close?.()));
    store.close();
  };
  return { app, describe, shutdown };
}

/** The server's settings from the environment; a bad variable ends the process with a message naming it. */
export function serverSettingsOrExit(env: EnvVars): ServerSettings {
  try {
    return serverSettings(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`keyflow: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
}

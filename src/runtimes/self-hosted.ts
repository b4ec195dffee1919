import { z } from "zod";
import { createApp } from "../http/app.ts";
import { configFromEnv, ConfigError, type Config } from "../actor/config.ts";
import { LocalRuntime } from "../hosts/process/host.ts";
import { MemoryKvStore, type KvStore } from "../ports/kv-store.ts";
import type { Sink } from "../delivery/channel.ts";
import { createSinks, sinkSettings, type SinkSettings } from "../sinks/settings.ts";
import type { SqliteSync } from "../hosts/process/sqlite-store.ts";
import { systemEnv, systemTimers } from "../ports/system.ts";

export interface ServerSettings {
  host: string;
  port: number;
  storage: "sqlite" | "memory";
  dataDir: string;
  sqliteSync: SqliteSync;
  config: Config;
  sinks: SinkSettings;
}

const settingsSchema = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.string().regex(/^\d+$/, "must be a port number").transform(Number).pipe(z.number().int().min(0).max(65535)).default(8787),
  KEYFLOW_STORAGE: z.enum(["sqlite", "memory"]).default("sqlite"),
  KEYFLOW_DATA_DIR: z.string().min(1).default(".keyflow"),
  KEYFLOW_SQLITE_SYNC: z.enum(["full", "normal", "off"]).default("full"),
});

/** Reads the server's environment; throws ConfigError naming each bad variable. */
export function serverSettings(env: Record<string, string | undefined>): ServerSettings {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = settingsSchema.safeParse(cleaned);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((i) => `${String(i.path[0])}=${JSON.stringify(env[String(i.path[0])])}: ${i.message}`);
  const collect = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
      return undefined;
    }
  };
  const config = collect(() => configFromEnv(env));
  const sinks = collect(() => sinkSettings(env));
  if (!parsed.success || !config || !sinks) throw new ConfigError(problems);
  const s = parsed.data;
  return {
    host: s.HOST,
    port: s.PORT,
    storage: s.KEYFLOW_STORAGE,
    dataDir: s.KEYFLOW_DATA_DIR,
    sqliteSync: s.KEYFLOW_SQLITE_SYNC,
    config,
    sinks,
  };
}

export type OpenSqlite = (path: string, sync: SqliteSync) => KvStore;

/** Store + runtime + app for the self-hosted server; the runtime adapter only adds the listener. */
export function selfHosted(settings: ServerSettings, openSqlite: OpenSqlite, hostName: string) {
  const storePath = `${settings.dataDir}/keyflow.db`;
  const store = settings.storage === "sqlite" ? openSqlite(storePath, settings.sqliteSync) : new MemoryKvStore();
  const sinks: Sink[] = createSinks(settings.sinks, { poolPerDelivery: false });
  const config: Config = { ...settings.config, sinks: sinks.map((s) => s.name) };
  const runtime = new LocalRuntime({ store, config, clock: systemEnv.clock, random: systemEnv.random, timers: systemTimers, sinks });
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
  return { app, runtime, store, describe, shutdown };
}

export function exitOnConfigError(error: unknown): never {
  if (error instanceof ConfigError) {
    console.error(`keyflow: ${error.message}`);
    process.exit(2);
  }
  throw error;
}

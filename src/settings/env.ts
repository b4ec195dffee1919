import { z } from "zod";
import { parseDuration } from "../actor/duration.ts";
import { parseWindowSpec, type WindowSpec } from "../actor/windows.ts";
import type { DeliveryPolicy } from "../delivery/policy.ts";
import type { SqliteSync } from "../hosts/process/sqlite-store.ts";
import { deadLetterMirror, enabledSinks, readSinkSettings, type SinkSettings } from "../sinks/settings.ts";
import { ConfigError, DEFAULT_CONFIG, type Config, type TenantLimit } from "./config.ts";
import { TENANT_NAME } from "../actor/tenant.ts";
import { LOG_LEVELS, type LogLevel } from "../logging/logger.ts";
import { EnvReader, type EnvVars } from "./reader.ts";
import { isLoopback, readAuthSettings, type AuthSettings } from "../auth/settings.ts";
import type { AnalyticsConfig } from "../actor/analytics.ts";
import { readAnalytics, type ConfigFileSource } from "./analytics.ts";

const duration = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) ctx.addIssue({ code: "custom", message: `"${text}" is not a duration like 500ms, 30s, 1m, 1h, 7d` });
  return ms ?? 0;
});
const count = (min: number) =>
  z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.number().int().min(min).max(Number.MAX_SAFE_INTEGER));
const windows = z.string().transform((text, ctx) => {
  const specs: WindowSpec[] = [];
  for (const part of text.split(",").filter((p) => p.trim())) {
    const spec = parseWindowSpec(part);
    if (typeof spec === "string") ctx.addIssue({ code: "custom", message: spec });
    else if (!specs.some((s) => s.name === spec.name)) specs.push(spec);
  }
  if (specs.length === 0) ctx.addIssue({ code: "custom", message: "at least one window is required, e.g. 1m,1h,5m/1m" });
  return specs;
});

const BYTE_UNITS: Record<string, number> = { "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
const wholeCount = (text: string) => (/^\d+$/.test(text) ? Number(text) : undefined);
const byteSize = (text: string) => {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : undefined;
};
/** "1000", "5000,acme=100000,trial=100": a limit for every tenant and/or some tenants' own. */
const tenantLimit = (parse: (text: string) => number | undefined, what: string) =>
  z.string().transform((text, ctx) => {
    const byTenant = new Map<string, number>();
    let all: number | undefined;
    for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
      const [name, value] = part.includes("=") ? (part.split("=", 2) as [string, string]) : [undefined, part];
      const n = parse(value.trim());
      if (n === undefined) ctx.addIssue({ code: "custom", message: `"${value}" is not ${what}` });
      else if (name === undefined) all = n;
      else if (!TENANT_NAME.test(name.trim())) ctx.addIssue({ code: "custom", message: `"${name}" is not a tenant name` });
      else byTenant.set(name.trim(), n);
    }
    return { all, byTenant } as TenantLimit;
  });

/** The KEYFLOW_* variables of the actors, their hosts and the HTTP layer: variable -> config field and its parser. */
const VARIABLES = {
  KEYFLOW_WINDOWS: ["windows", windows],
  KEYFLOW_ALLOWED_LATENESS: ["allowedLatenessMs", duration],
  KEYFLOW_IDLE_TIMEOUT: ["idleTimeoutMs", duration],
  KEYFLOW_CLOSED_RETENTION: ["closedRetentionMs", duration],
  KEYFLOW_MAX_CLOSED_WINDOWS: ["maxClosedWindows", count(1)],
  KEYFLOW_DEDUPE_HORIZON: ["dedupeHorizonMs", duration],
  KEYFLOW_DEDUPE_MAX_IDS: ["dedupeMaxIds", count(1)],
  KEYFLOW_LATE_LOG_SIZE: ["lateLogSize", count(0)],
  KEYFLOW_MAX_FUTURE_SKEW: ["maxFutureSkewMs", duration],
  KEYFLOW_MAX_PROPERTIES_DEPTH: ["maxPropertiesDepth", count(1)],
  KEYFLOW_MAX_PROPERTIES_BYTES: ["maxPropertiesBytes", count(2)],
  KEYFLOW_MAX_BATCH_EVENTS: ["maxBatchEvents", count(1)],
  KEYFLOW_MAX_BODY_BYTES: ["maxBodyBytes", count(1)],
  KEYFLOW_MAX_ACTORS_IN_MEMORY: ["maxActorsInMemory", count(1)],
  KEYFLOW_CHECKPOINT_INTERVAL: ["checkpointIntervalMs", duration],
  KEYFLOW_EMIT: ["emit", z.enum(["final", "updates"], { error: 'must be "final" or "updates"' })],
  KEYFLOW_OUTBOX_MAX: ["outboxMax", count(1)],
  KEYFLOW_SINK_MAX_DELAY: ["sinkMaxDelayMs", duration],
  KEYFLOW_SINK_BATCH_SIZE: ["delivery.batchSize", count(1)],
  KEYFLOW_SINK_MAX_BATCH_SIZE: ["delivery.maxBatchSize", count(1)],
  KEYFLOW_SINK_MAX_IN_FLIGHT: ["delivery.maxInFlight", count(1)],
  KEYFLOW_SINK_RETRY_BUDGET: ["delivery.retryBudgetMs", duration],
  KEYFLOW_SINK_BACKOFF_BASE: ["delivery.backoffBaseMs", duration],
  KEYFLOW_SINK_BACKOFF_MAX: ["delivery.backoffMaxMs", duration],
  KEYFLOW_BREAKER_THRESHOLD: ["delivery.breakerThreshold", count(1)],
  KEYFLOW_BREAKER_COOLDOWN: ["delivery.breakerCooldownMs", duration],
  KEYFLOW_READY_SINK_DOWN_AFTER: ["readySinkDownAfterMs", duration],
  KEYFLOW_LIVE_RETAIN: ["liveRetain", count(1)],
  KEYFLOW_LIVE_MAX_QUEUED: ["liveMaxQueued", count(1)],
  KEYFLOW_LIVE_MAX_STREAMS: ["liveMaxStreams", count(1)],
  KEYFLOW_TENANT_MAX_KEYS: ["tenantMaxKeys", tenantLimit(wholeCount, "a whole number (e.g. 10000, or 10000,acme=50000)")],
  KEYFLOW_TENANT_MAX_BYTES: ["tenantMaxBytes", tenantLimit(byteSize, "a size like 500MiB, 2GB or 1048576 (e.g. 1GiB,trial=10MiB)")],
} as const satisfies Record<string, readonly [ConfigPath, z.ZodType]>;

type ConfigPath = Exclude<keyof Config, "delivery" | "sinks" | "deadLetterMirror"> | `delivery.${keyof DeliveryPolicy}`;

export const CONFIG_VARIABLES = Object.keys(VARIABLES);

/** Reads the KEYFLOW_* config variables over the defaults; throws ConfigError naming every bad variable. */
export function configFromEnv(env: EnvVars, base: Config = DEFAULT_CONFIG): Config {
  const r = new EnvReader(env);
  const config = readConfig(r, base);
  if (r.problems.length) throw new ConfigError(r.problems);
  return config;
}

function readConfig(r: EnvReader, base: Config): Config {
  const config: Config = { ...base, delivery: { ...base.delivery } };
  for (const [name, [field, parser]] of Object.entries(VARIABLES)) {
    const raw = r.env[name];
    if (raw === undefined || raw === "") continue;
    const value = r.check(parser as z.ZodType, name, raw);
    if (value === undefined) continue;
    const [head, tail] = field.split(".") as [string, string | undefined];
    const target = (tail ? (config as unknown as Record<string, object>)[head] : config) as Record<string, unknown>;
    target[tail ?? head] = value;
  }
  return config;
}

/** The settings of one deployment: actors and delivery, the sinks that are on, and (self-hosted) the server. */
export interface Settings {
  /** config.sinks and config.deadLetterMirror follow the sink settings. */
  config: Config;
  sinks: SinkSettings;
  auth: AuthSettings;
  /** SENTRY_DSN: unexpected errors are reported to Sentry (toucan-js). */
  sentryDsn?: string;
  /** KEYFLOW_LOG_LEVEL: request lines at info (stdout self-hosted, Workers Logs on Workers). */
  logLevel: LogLevel;
  /** keyflow.config.json (KEYFLOW_CONFIG self-hosted, bundled on Workers): per event type analytics; absent without a file. */
  analytics?: AnalyticsConfig;
}

export interface ServerSettings extends Settings {
  host: string;
  port: number;
  storage: "sqlite" | "memory";
  dataDir: string;
  sqliteSync: SqliteSync;
  /** GET /metrics and the counting behind it (KEYFLOW_METRICS=off turns both off). */
  metrics: boolean;
}

/**
 * Every entry point's settings (Worker, Durable Object, Bun, Deno); throws ConfigError naming each bad variable.
 * `configFile`: where the host finds keyflow.config.json (none: no analytics file is read).
 */
export function readSettings(env: EnvVars, configFile?: ConfigFileSource): Settings {
  const r = new EnvReader(env);
  const settings = collectSettings(r, configFile);
  if (r.problems.length) throw new ConfigError(r.problems);
  return settings;
}

function collectSettings(r: EnvReader, configFile: ConfigFileSource | undefined): Settings {
  const sinks = readSinkSettings(r);
  const config = readConfig(r, DEFAULT_CONFIG);
  config.sinks = enabledSinks(sinks);
  const mirror = deadLetterMirror(sinks);
  if (mirror) config.deadLetterMirror = mirror;
  const dsn = r.env.SENTRY_DSN;
  // The DSN holds a key: it is named, never echoed.
  if (dsn && !/^https?:\/\/[^@/\s]+@[^/\s]+\/\S+$/.test(dsn)) r.problems.push("SENTRY_DSN: must be a Sentry DSN like https://<key>@o0.ingest.sentry.io/<project>");
  const logLevel = r.env.KEYFLOW_LOG_LEVEL ? r.check(LOG_LEVEL, "KEYFLOW_LOG_LEVEL", r.env.KEYFLOW_LOG_LEVEL) : "info";
  const analytics = readAnalytics(r, configFile, config.windows);
  if (analytics) config.analytics = analytics;
  return { config, sinks, auth: readAuthSettings(r), logLevel: logLevel ?? "info", ...(dsn ? { sentryDsn: dsn } : {}), ...(analytics ? { analytics } : {}) };
}

const SERVER_VARIABLES = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.string().regex(/^\d+$/, "must be a port number").transform(Number).pipe(z.number().int().min(0).max(65535)).default(8787),
  KEYFLOW_STORAGE: z.enum(["sqlite", "memory"]).default("sqlite"),
  KEYFLOW_DATA_DIR: z.string().min(1).default(".keyflow"),
  KEYFLOW_SQLITE_SYNC: z.enum(["full", "normal", "off"]).default("full"),
  KEYFLOW_METRICS: z.enum(["on", "off"]).default("on"),
});

const LOG_LEVEL = z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` });

/** The self-hosted server's settings (Bun, Deno); throws ConfigError naming each bad variable. `configFile` reads KEYFLOW_CONFIG's file. */
export function serverSettings(env: EnvVars, configFile?: ConfigFileSource): ServerSettings {
  const r = new EnvReader(env);
  const settings = collectSettings(r, configFile);
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = SERVER_VARIABLES.safeParse(present);
  if (!parsed.success) for (const i of parsed.error.issues) r.problem(String(i.path[0]), String(env[String(i.path[0])]), i.message);
  if (parsed.success && !settings.auth.off && settings.auth.keys.length === 0 && !isLoopback(parsed.data.HOST)) {
    r.problems.push(
      `HOST=${parsed.data.HOST}: no API keys are configured, so the server would be open to anyone who can reach it; ` +
        "set KEYFLOW_API_KEYS (npm run keys -- create makes a key), bind HOST=127.0.0.1, or set KEYFLOW_AUTH=off to run it open on purpose",
    );
  }
  if (r.problems.length || !parsed.success) throw new ConfigError(r.problems);
  const s = parsed.data;
  return { ...settings, host: s.HOST, port: s.PORT, storage: s.KEYFLOW_STORAGE, dataDir: s.KEYFLOW_DATA_DIR, sqliteSync: s.KEYFLOW_SQLITE_SYNC, metrics: s.KEYFLOW_METRICS === "on" };
}

/** The sink settings alone (npm run migrate, tests); throws ConfigError naming each bad variable. */
export function sinkSettings(env: EnvVars): SinkSettings {
  const r = new EnvReader(env);
  const sinks = readSinkSettings(r);
  if (r.problems.length) throw new ConfigError(r.problems);
  return sinks;
}

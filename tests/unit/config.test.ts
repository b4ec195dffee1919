import { describe, expect, test } from "bun:test";
import { CONFIG_VARIABLES, configFromEnv } from "../../src/settings/env.ts";
import { ConfigError, DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { parseWindowSpec } from "../../src/actor/windows.ts";
import { serverSettings } from "../../src/settings/env.ts";

/** Runs `fn` and returns the ConfigError it throws (fails the test otherwise). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe("configFromEnv: defaults", () => {
  test("an empty environment gives the defaults", () => {
    expect(configFromEnv({})).toEqual(DEFAULT_CONFIG);
  });

  test("the defaults", () => {
    expect(DEFAULT_CONFIG).toEqual({
      windows: [
        { name: "1m", size: MINUTE, hop: MINUTE },
        { name: "1h", size: HOUR, hop: HOUR },
      ],
      allowedLatenessMs: MINUTE,
      idleTimeoutMs: MINUTE,
      closedRetentionMs: DAY,
      maxClosedWindows: 10_000,
      dedupeHorizonMs: 7 * DAY,
      dedupeMaxIds: 1_000_000,
      lateLogSize: 1_000,
      maxFutureSkewMs: 5 * MINUTE,
      maxPropertiesDepth: 16,
      maxPropertiesBytes: 32 * 1024,
      maxBatchEvents: 10_000,
      maxBodyBytes: 5 * 1024 * 1024,
      maxActorsInMemory: 10_000,
      checkpointIntervalMs: 1_000,
      sinks: [],
      emit: "final",
      outboxMax: 100_000,
      sinkMaxDelayMs: 5,
      readySinkDownAfterMs: 60_000,
      tenantMaxKeys: { byTenant: new Map() },
      tenantMaxBytes: { byTenant: new Map() },
      liveRetain: 1_000,
      liveMaxQueued: 1_000,
      liveMaxStreams: 100,
      delivery: {
        batchSize: 500,
        maxBatchSize: 5_000,
        maxInFlight: 2,
        retryBudgetMs: HOUR,
        backoffBaseMs: 100,
        backoffMaxMs: 30_000,
        breakerThreshold: 5,
        breakerCooldownMs: 5_000,
      },
    });
  });

  test("empty strings and undefined mean 'use the default'", () => {
    const env: Record<string, string | undefined> = {};
    for (const name of CONFIG_VARIABLES) env[name] = "";
    env.KEYFLOW_WINDOWS = undefined;
    expect(configFromEnv(env)).toEqual(DEFAULT_CONFIG);
  });

  test("unrelated variables are ignored", () => {
    expect(configFromEnv({ PATH: "/bin", KEYFLOW_UNKNOWN: "x", keyflow_windows: "5m" })).toEqual(DEFAULT_CONFIG);
  });

  test("the defaults are not mutated", () => {
    const before = structuredClone(DEFAULT_CONFIG);
    configFromEnv({ KEYFLOW_WINDOWS: "5m", KEYFLOW_MAX_BATCH_EVENTS: "5" });
    expect(DEFAULT_CONFIG).toEqual(before);
  });

  test("a base config is used instead of the defaults", () => {
    const base: Config = { ...DEFAULT_CONFIG, maxBatchEvents: 7, lateLogSize: 3 };
    const config = configFromEnv({ KEYFLOW_LATE_LOG_SIZE: "9" }, base);
    expect(config.maxBatchEvents).toBe(7);
    expect(config.lateLogSize).toBe(9);
    expect(base.lateLogSize).toBe(3);
  });
});

/** Reads a field by path ("delivery.batchSize" reads config.delivery.batchSize). */
function at(config: Config, path: string): unknown {
  return path.split(".").reduce<any>((node, part) => node[part], config);
}

/** A copy of `config` with the field at `path` set back to its default. */
function withDefault(config: Config, path: string): Config {
  const copy = structuredClone(config);
  const parts = path.split(".");
  const parent = parts.slice(0, -1).reduce<any>((node, part) => node[part], copy);
  parent[parts.at(-1)!] = at(DEFAULT_CONFIG, path);
  return copy;
}

describe("configFromEnv: each variable", () => {
  const cases: Array<[string, string, string, unknown]> = [
    ["KEYFLOW_ALLOWED_LATENESS", "30s", "allowedLatenessMs", 30_000],
    ["KEYFLOW_IDLE_TIMEOUT", "2m", "idleTimeoutMs", 2 * MINUTE],
    ["KEYFLOW_CLOSED_RETENTION", "3d", "closedRetentionMs", 3 * DAY],
    ["KEYFLOW_MAX_CLOSED_WINDOWS", "50", "maxClosedWindows", 50],
    ["KEYFLOW_DEDUPE_HORIZON", "12h", "dedupeHorizonMs", 12 * HOUR],
    ["KEYFLOW_DEDUPE_MAX_IDS", "1000", "dedupeMaxIds", 1000],
    ["KEYFLOW_LATE_LOG_SIZE", "25", "lateLogSize", 25],
    ["KEYFLOW_MAX_FUTURE_SKEW", "250ms", "maxFutureSkewMs", 250],
    ["KEYFLOW_MAX_PROPERTIES_DEPTH", "4", "maxPropertiesDepth", 4],
    ["KEYFLOW_MAX_PROPERTIES_BYTES", "1024", "maxPropertiesBytes", 1024],
    ["KEYFLOW_MAX_BATCH_EVENTS", "100", "maxBatchEvents", 100],
    ["KEYFLOW_MAX_BODY_BYTES", "65536", "maxBodyBytes", 65536],
    ["KEYFLOW_MAX_ACTORS_IN_MEMORY", "5", "maxActorsInMemory", 5],
    ["KEYFLOW_CHECKPOINT_INTERVAL", "250ms", "checkpointIntervalMs", 250],
    ["KEYFLOW_WINDOWS", "5m", "windows", [{ name: "5m", size: 5 * MINUTE, hop: 5 * MINUTE }]],
    ["KEYFLOW_EMIT", "updates", "emit", "updates"],
    ["KEYFLOW_OUTBOX_MAX", "42", "outboxMax", 42],
    ["KEYFLOW_SINK_MAX_DELAY", "250ms", "sinkMaxDelayMs", 250],
    ["KEYFLOW_SINK_BATCH_SIZE", "64", "delivery.batchSize", 64],
    ["KEYFLOW_SINK_MAX_BATCH_SIZE", "2000", "delivery.maxBatchSize", 2_000],
    ["KEYFLOW_SINK_MAX_IN_FLIGHT", "3", "delivery.maxInFlight", 3],
    ["KEYFLOW_SINK_RETRY_BUDGET", "10m", "delivery.retryBudgetMs", 10 * MINUTE],
    ["KEYFLOW_SINK_BACKOFF_BASE", "50ms", "delivery.backoffBaseMs", 50],
    ["KEYFLOW_SINK_BACKOFF_MAX", "1m", "delivery.backoffMaxMs", MINUTE],
    ["KEYFLOW_BREAKER_THRESHOLD", "3", "delivery.breakerThreshold", 3],
    ["KEYFLOW_BREAKER_COOLDOWN", "2s", "delivery.breakerCooldownMs", 2_000],
    ["KEYFLOW_READY_SINK_DOWN_AFTER", "2m", "readySinkDownAfterMs", 2 * MINUTE],
    ["KEYFLOW_LIVE_RETAIN", "50", "liveRetain", 50],
    ["KEYFLOW_LIVE_MAX_QUEUED", "20", "liveMaxQueued", 20],
    ["KEYFLOW_LIVE_MAX_STREAMS", "3", "liveMaxStreams", 3],
    ["KEYFLOW_TENANT_MAX_KEYS", "100", "tenantMaxKeys", { all: 100, byTenant: new Map() }],
    ["KEYFLOW_TENANT_MAX_BYTES", "1MiB", "tenantMaxBytes", { all: 2 ** 20, byTenant: new Map() }],
  ];

  test("the table covers every variable", () => {
    expect(cases.map((c) => c[0]).sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  test.each(cases)("%s=%s sets %s", (name, raw, field, expected) => {
    const config = configFromEnv({ [name]: raw });
    expect(at(config, field)).toEqual(expected);
    // Nothing else changes.
    expect(withDefault(config, field)).toEqual(DEFAULT_CONFIG);
  });

  test("all variables at once", () => {
    const env = Object.fromEntries(cases.map(([name, raw]) => [name, raw]));
    const config = configFromEnv(env);
    for (const [, , field, expected] of cases) expect(at(config, field)).toEqual(expected);
  });

  test("zero is allowed where the minimum is 0, and for durations", () => {
    expect(configFromEnv({ KEYFLOW_LATE_LOG_SIZE: "0" }).lateLogSize).toBe(0);
    expect(configFromEnv({ KEYFLOW_ALLOWED_LATENESS: "0s" }).allowedLatenessMs).toBe(0);
    expect(configFromEnv({ KEYFLOW_MAX_FUTURE_SKEW: "0ms" }).maxFutureSkewMs).toBe(0);
  });

  test("maxPropertiesBytes accepts its minimum of 2", () => {
    expect(configFromEnv({ KEYFLOW_MAX_PROPERTIES_BYTES: "2" }).maxPropertiesBytes).toBe(2);
  });

  test("leading zeros and the largest safe integer", () => {
    expect(configFromEnv({ KEYFLOW_MAX_BATCH_EVENTS: "007" }).maxBatchEvents).toBe(7);
    expect(configFromEnv({ KEYFLOW_DEDUPE_MAX_IDS: String(Number.MAX_SAFE_INTEGER) }).dedupeMaxIds).toBe(
      Number.MAX_SAFE_INTEGER,
    );
  });

  test("durations in every unit; surrounding spaces are trimmed", () => {
    expect(configFromEnv({ KEYFLOW_IDLE_TIMEOUT: "1500ms" }).idleTimeoutMs).toBe(1500);
    expect(configFromEnv({ KEYFLOW_IDLE_TIMEOUT: "45s" }).idleTimeoutMs).toBe(45_000);
    expect(configFromEnv({ KEYFLOW_IDLE_TIMEOUT: "90m" }).idleTimeoutMs).toBe(90 * MINUTE);
    expect(configFromEnv({ KEYFLOW_IDLE_TIMEOUT: "36h" }).idleTimeoutMs).toBe(36 * HOUR);
    expect(configFromEnv({ KEYFLOW_IDLE_TIMEOUT: "14d" }).idleTimeoutMs).toBe(14 * DAY);
    expect(configFromEnv({ KEYFLOW_IDLE_TIMEOUT: " 5m " }).idleTimeoutMs).toBe(5 * MINUTE);
  });
});

describe("configFromEnv: bad values", () => {
  test("the error is a ConfigError naming the variable and its value", () => {
    const error = configError(() => configFromEnv({ KEYFLOW_IDLE_TIMEOUT: "soon" }));
    expect(error.name).toBe("ConfigError");
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain("KEYFLOW_IDLE_TIMEOUT");
    expect(error.message).toContain('"soon"');
  });

  test.each([
    ["KEYFLOW_ALLOWED_LATENESS", "1.5h"],
    ["KEYFLOW_ALLOWED_LATENESS", "-1m"],
    ["KEYFLOW_IDLE_TIMEOUT", "60"],
    ["KEYFLOW_IDLE_TIMEOUT", "1M"],
    ["KEYFLOW_CLOSED_RETENTION", "1w"],
    ["KEYFLOW_CLOSED_RETENTION", "1h30m"],
    ["KEYFLOW_DEDUPE_HORIZON", "d"],
    ["KEYFLOW_MAX_FUTURE_SKEW", "5 m"],
    ["KEYFLOW_MAX_CLOSED_WINDOWS", "0"],
    ["KEYFLOW_MAX_CLOSED_WINDOWS", "ten"],
    ["KEYFLOW_DEDUPE_MAX_IDS", "-5"],
    ["KEYFLOW_DEDUPE_MAX_IDS", "1e6"],
    ["KEYFLOW_LATE_LOG_SIZE", "1.5"],
    ["KEYFLOW_LATE_LOG_SIZE", " 10"],
    ["KEYFLOW_MAX_PROPERTIES_DEPTH", "0"],
    ["KEYFLOW_MAX_PROPERTIES_BYTES", "1"],
    ["KEYFLOW_MAX_BATCH_EVENTS", "0"],
    ["KEYFLOW_MAX_BATCH_EVENTS", "0x10"],
    ["KEYFLOW_MAX_BODY_BYTES", "99999999999999999999"],
    ["KEYFLOW_MAX_BODY_BYTES", "5MB"],
    ["KEYFLOW_MAX_ACTORS_IN_MEMORY", "0"],
    ["KEYFLOW_WINDOWS", "1x"],
  ])("%s=%p is rejected", (name, raw) => {
    const error = configError(() => configFromEnv({ [name]: raw }));
    expect(error.message).toContain(`${name}=${JSON.stringify(raw)}`);
  });

  test("every bad variable is named in one error; good ones are not", () => {
    const error = configError(() =>
      configFromEnv({
        KEYFLOW_WINDOWS: "5m/2m",
        KEYFLOW_IDLE_TIMEOUT: "1.5h",
        KEYFLOW_MAX_BATCH_EVENTS: "0",
        KEYFLOW_LATE_LOG_SIZE: "10",
        KEYFLOW_MAX_BODY_BYTES: "lots",
      }),
    );
    for (const name of ["KEYFLOW_WINDOWS", "KEYFLOW_IDLE_TIMEOUT", "KEYFLOW_MAX_BATCH_EVENTS", "KEYFLOW_MAX_BODY_BYTES"]) {
      expect(error.message).toContain(name);
    }
    expect(error.message).not.toContain("KEYFLOW_LATE_LOG_SIZE");
    expect(error.message.split("\n").filter((line) => line.includes("KEYFLOW_"))).toHaveLength(4);
  });

  test("a duration error explains the expected form", () => {
    const error = configError(() => configFromEnv({ KEYFLOW_DEDUPE_HORIZON: "forever" }));
    expect(error.message).toContain("is not a duration");
  });

  test("a count error says it must be a whole number", () => {
    const error = configError(() => configFromEnv({ KEYFLOW_MAX_BATCH_EVENTS: "many" }));
    expect(error.message).toContain("whole number");
  });
});

describe("configFromEnv: KEYFLOW_WINDOWS", () => {
  const names = (raw: string) => configFromEnv({ KEYFLOW_WINDOWS: raw }).windows.map((w) => w.name);

  test("the example list 1m,1h,5m/1m", () => {
    expect(configFromEnv({ KEYFLOW_WINDOWS: "1m,1h,5m/1m" }).windows).toEqual([
      { name: "1m", size: MINUTE, hop: MINUTE },
      { name: "1h", size: HOUR, hop: HOUR },
      { name: "5m/1m", size: 5 * MINUTE, hop: MINUTE },
    ]);
  });

  test("spaces around entries and empty entries are ignored", () => {
    expect(names(" 1m , 1h ,, 5m/1m ,")).toEqual(["1m", "1h", "5m/1m"]);
  });

  test("names are canonical: 60s is 1m, 3600s is 1h, 10m/60s is 10m/1m", () => {
    expect(names("60s,3600s,10m/60s")).toEqual(["1m", "1h", "10m/1m"]);
  });

  test("duplicates (by canonical name) are dropped, first order kept", () => {
    expect(names("1h,1m,60s,1h")).toEqual(["1h", "1m"]);
  });

  test("hop equal to size is tumbling", () => {
    expect(configFromEnv({ KEYFLOW_WINDOWS: "5m/5m" }).windows).toEqual([{ name: "5m", size: 5 * MINUTE, hop: 5 * MINUTE }]);
  });

  test("sub-minute and multi-day windows", () => {
    expect(names("500ms,30s,1d/1h")).toEqual(["500ms", "30s", "1d/1h"]);
  });

  test("a hop of 90s divides 1h", () => {
    expect(configFromEnv({ KEYFLOW_WINDOWS: "1h/90s" }).windows).toEqual([{ name: "1h/90s", size: HOUR, hop: 90_000 }]);
  });

  test.each([
    ["5m/2m", "whole multiple"],
    ["1h/7m", "whole multiple"],
    ["1m/5m", "whole multiple"],
    ["0m", "positive"],
    ["5m/0s", "hop"],
    ["5m/", "hop"],
    ["/1m", "size"],
    ["5m/1m/1s", 'more than one "/"'],
    ["5", "size"],
    [" , ,", "at least one window"],
  ])("%p is rejected (%s)", (raw, why) => {
    const error = configError(() => configFromEnv({ KEYFLOW_WINDOWS: raw }));
    expect(error.message).toContain("KEYFLOW_WINDOWS");
    expect(error.message).toContain(why);
  });

  test("every bad entry is named, even next to good ones", () => {
    const error = configError(() => configFromEnv({ KEYFLOW_WINDOWS: "1m,5m/2m,1h,1x" }));
    expect(error.message).toContain('"5m/2m"');
    expect(error.message).toContain('"1x"');
  });
});

describe("parseWindowSpec", () => {
  test("tumbling and hopping windows", () => {
    expect(parseWindowSpec("1m")).toEqual({ name: "1m", size: MINUTE, hop: MINUTE });
    expect(parseWindowSpec("5m/1m")).toEqual({ name: "5m/1m", size: 5 * MINUTE, hop: MINUTE });
    expect(parseWindowSpec(" 15m / 5m ")).toEqual({ name: "15m/5m", size: 15 * MINUTE, hop: 5 * MINUTE });
  });

  test("errors are strings that quote the input", () => {
    for (const text of ["5m/2m", "0s", "1m/2m", "a/b/c", "", "1m/0ms"]) {
      const result = parseWindowSpec(text);
      expect(typeof result).toBe("string");
      expect(result as string).toContain(`"${text}"`);
    }
  });
});

describe("tenant quotas", () => {
  test("a limit for every tenant and some tenants' own; sizes with units", () => {
    const config = configFromEnv({ KEYFLOW_TENANT_MAX_KEYS: "1000, trial=10", KEYFLOW_TENANT_MAX_BYTES: "acme=2GiB,trial=500kb" });
    expect(config.tenantMaxKeys).toEqual({ all: 1000, byTenant: new Map([["trial", 10]]) });
    expect(config.tenantMaxBytes).toEqual({ all: undefined, byTenant: new Map([["acme", 2 * 2 ** 30], ["trial", 500_000]]) });
  });

  test("bad limits are named", () => {
    for (const [name, value] of [["KEYFLOW_TENANT_MAX_KEYS", "ten"], ["KEYFLOW_TENANT_MAX_KEYS", "Acme=1"], ["KEYFLOW_TENANT_MAX_BYTES", "1 parsec"]] as const) {
      expect(() => configFromEnv({ [name]: value }), value).toThrow(name);
    }
  });
});

describe("serverSettings", () => {
  test("defaults", () => {
    expect(serverSettings({})).toEqual({
      host: "127.0.0.1",
      port: 8787,
      storage: "sqlite",
      dataDir: ".keyflow",
      sqliteSync: "full",
      metrics: true,
      logLevel: "info",
      config: DEFAULT_CONFIG,
      sinks: {},
      auth: { off: false, keys: [], corsOrigins: [], rateLimits: {} },
    });
  });

  test("empty strings and undefined mean 'use the default'", () => {
    const settings = serverSettings({ HOST: "", PORT: "", KEYFLOW_STORAGE: undefined, KEYFLOW_DATA_DIR: "", KEYFLOW_SQLITE_SYNC: "" });
    expect(settings).toMatchObject({ host: "127.0.0.1", port: 8787, storage: "sqlite", dataDir: ".keyflow", sqliteSync: "full" });
  });

  test("each variable is read", () => {
    const settings = serverSettings({
      HOST: "0.0.0.0",
      PORT: "9000",
      KEYFLOW_STORAGE: "memory",
      KEYFLOW_DATA_DIR: "/var/lib/keyflow",
      KEYFLOW_SQLITE_SYNC: "normal",
      KEYFLOW_AUTH: "off",
    });
    expect(settings).toMatchObject({
      host: "0.0.0.0",
      port: 9000,
      storage: "memory",
      dataDir: "/var/lib/keyflow",
      sqliteSync: "normal",
    });
  });

  test.each(["full", "normal", "off"])("KEYFLOW_SQLITE_SYNC=%s", (sync) => {
    expect(serverSettings({ KEYFLOW_SQLITE_SYNC: sync }).sqliteSync).toBe(sync);
  });

  test("PORT bounds 0 and 65535 are accepted", () => {
    expect(serverSettings({ PORT: "0" }).port).toBe(0);
    expect(serverSettings({ PORT: "65535" }).port).toBe(65535);
  });

  test("the KEYFLOW_* config is included", () => {
    const settings = serverSettings({ KEYFLOW_WINDOWS: "5m/1m", KEYFLOW_MAX_BATCH_EVENTS: "3" });
    expect(settings.config.windows.map((w) => w.name)).toEqual(["5m/1m"]);
    expect(settings.config.maxBatchEvents).toBe(3);
  });

  test.each([
    ["PORT", "65536"],
    ["PORT", "-1"],
    ["PORT", "http"],
    ["PORT", "80.5"],
    ["PORT", " 80"],
    ["KEYFLOW_STORAGE", "postgres"],
    ["KEYFLOW_STORAGE", "SQLITE"],
    ["KEYFLOW_SQLITE_SYNC", "extra"],
    ["KEYFLOW_SQLITE_SYNC", "FULL"],
  ])("%s=%p is rejected with a ConfigError naming it", (name, raw) => {
    const error = configError(() => serverSettings({ [name]: raw }));
    expect(error.message).toContain(`${name}=${JSON.stringify(raw)}`);
  });

  test("every bad server variable is named at once", () => {
    const error = configError(() => serverSettings({ PORT: "99999", KEYFLOW_STORAGE: "disk", KEYFLOW_SQLITE_SYNC: "sometimes" }));
    expect(error.message).toContain("PORT");
    expect(error.message).toContain("KEYFLOW_STORAGE");
    expect(error.message).toContain("KEYFLOW_SQLITE_SYNC");
  });

  test("a bad KEYFLOW_* config variable is a ConfigError too", () => {
    const error = configError(() => serverSettings({ KEYFLOW_MAX_BODY_BYTES: "big" }));
    expect(error.message).toContain("KEYFLOW_MAX_BODY_BYTES");
  });

  test("bad server and config variables are named in the same error", () => {
    const error = configError(() => serverSettings({ PORT: "abc", KEYFLOW_WINDOWS: "5m/2m" }));
    expect(error.message).toContain("PORT");
    expect(error.message).toContain("KEYFLOW_WINDOWS");
  });
});

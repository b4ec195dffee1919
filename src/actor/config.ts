import { z } from "zod";
import { parseDuration } from "./duration.ts";
import type { DeliveryPolicy } from "../delivery/channel.ts";
import { parseWindowSpec, type WindowSpec } from "./windows.ts";

export interface Config {
  windows: WindowSpec[];
  allowedLatenessMs: number;
  /** With no event for this long, a key's watermark advances with the wall clock so its windows still close. */
  idleTimeoutMs: number;
  closedRetentionMs: number;
  maxClosedWindows: number;
  dedupeHorizonMs: number;
  dedupeMaxIds: number;
  lateLogSize: number;
  maxFutureSkewMs: number;
  maxPropertiesDepth: number;
  maxPropertiesBytes: number;
  maxBatchEvents: number;
  maxBodyBytes: number;
  maxActorsInMemory: number;
  /**
   * Self-hosted: how long an actor's changes may live only in the commit journal before they are
   * checkpointed into its own rows. Longer means fewer writes under load and a longer replay on restart.
   */
  checkpointIntervalMs: number;
  /** Names of the sinks this deployment forwards to (the host sets them from its sink settings). */
  sinks: string[];
  /** "final": a window is emitted once, when it closes; "updates": also every revision while open. */
  emit: "final" | "updates";
  /** Undelivered records per actor and sink beyond which ingest answers 429. */
  outboxMax: number;
  /**
   * How long an idle sink lingers before sending a batch that is not full, so that a burst goes out
   * together. A busy sink sends the next batch as soon as the last one lands.
   */
  sinkMaxDelayMs: number;
  delivery: DeliveryPolicy;
}

export const DEFAULT_CONFIG: Config = {
  windows: [parseWindowSpec("1m") as WindowSpec, parseWindowSpec("1h") as WindowSpec],
  allowedLatenessMs: 60_000,
  idleTimeoutMs: 60_000,
  closedRetentionMs: 86_400_000,
  maxClosedWindows: 10_000,
  dedupeHorizonMs: 7 * 86_400_000,
  dedupeMaxIds: 1_000_000,
  lateLogSize: 1_000,
  maxFutureSkewMs: 300_000,
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
  delivery: {
    batchSize: 500,
    retryBudgetMs: 3_600_000,
    backoffBaseMs: 100,
    backoffMaxMs: 30_000,
    breakerThreshold: 5,
    breakerCooldownMs: 5_000,
  },
};

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

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

/** Environment variable -> config field and its parser. */
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
  KEYFLOW_SINK_RETRY_BUDGET: ["delivery.retryBudgetMs", duration],
  KEYFLOW_SINK_BACKOFF_BASE: ["delivery.backoffBaseMs", duration],
  KEYFLOW_SINK_BACKOFF_MAX: ["delivery.backoffMaxMs", duration],
  KEYFLOW_BREAKER_THRESHOLD: ["delivery.breakerThreshold", count(1)],
  KEYFLOW_BREAKER_COOLDOWN: ["delivery.breakerCooldownMs", duration],
} as const satisfies Record<string, readonly [ConfigPath, z.ZodType]>;

type ConfigPath = Exclude<keyof Config, "delivery"> | `delivery.${keyof DeliveryPolicy}`;

export const CONFIG_VARIABLES = Object.keys(VARIABLES);

/** Reads KEYFLOW_* variables over the defaults; throws ConfigError naming every bad variable. */
export function configFromEnv(env: Record<string, string | undefined>, base: Config = DEFAULT_CONFIG): Config {
  const config: Config = { ...base, delivery: { ...base.delivery } };
  const problems: string[] = [];
  for (const [name, [field, parser]] of Object.entries(VARIABLES)) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    const parsed = (parser as z.ZodType).safeParse(raw);
    const [head, tail] = field.split(".") as [string, string | undefined];
    const target = (tail ? (config as unknown as Record<string, object>)[head] : config) as Record<string, unknown>;
    if (parsed.success) target[tail ?? head] = parsed.data;
    else problems.push(`${name}=${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

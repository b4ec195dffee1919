import { DEFAULT_CONFIG, type Config } from "../settings/config.ts";
import { parseWindowSpec, type WindowSpec } from "../actor/windows.ts";
import type { ModelConfig } from "./model.ts";
import type { Broken } from "./context.ts";
import type { Prng } from "./prng.ts";
import type { DeliveryPolicy } from "../delivery/policy.ts";
import type { AnalyticsConfig } from "../actor/analytics.ts";
import { parseAnalyticsConfig } from "../settings/analytics.ts";
import { windowShapeName } from "../actor/window-shapes.ts";

const S = 1_000;
const M = 60_000;
const H = 3_600_000;
const D = 86_400_000;

const WINDOWS = ["10s", "30s", "1m", "30s/10s", "5m/1m", "1h"];
/** The sink that mirrors dead letters, as Postgres does in production. */
export const MIRROR_SINK = "postgres";
const SINKS = [MIRROR_SINK, "redis", "webhook"];

export interface Knobs {
  /** A short retry budget: records may be dead-lettered after transient failures too. */
  shortBudget: boolean;
}

/** The runtime configuration for one seed: the defaults, with a random subset of knobs turned small. */
export function chooseConfig(prng: Prng): { config: Config; knobs: Knobs } {
  const windows = prng.subset(WINDOWS, 0.3).map((w) => parseWindowSpec(w) as WindowSpec);
  const shortBudget = prng.chance(0.2);
  const config: Config = {
    ...DEFAULT_CONFIG,
    windows,
    allowedLatenessMs: prng.pick([0, 1 * S, 5 * S, 30 * S, 60 * S]),
    idleTimeoutMs: prng.pick([5 * S, 20 * S, 60 * S]),
    closedRetentionMs: prng.chance(0.2) ? prng.pick([30 * S, 5 * M]) : D,
    maxClosedWindows: prng.chance(0.3) ? prng.range(1, 10) : 10_000,
    dedupeHorizonMs: prng.chance(0.15) ? prng.pick([10 * S, 60 * S]) : 7 * D,
    dedupeMaxIds: prng.chance(0.2) ? prng.range(3, 40) : 1_000_000,
    lateLogSize: prng.pick([0, 5, 1_000]),
    sinks: prng.subset(SINKS, 0.5),
    deadLetterMirror: MIRROR_SINK,
    emit: prng.chance(0.4) ? "updates" : "final",
    outboxMax: prng.chance(0.3) ? prng.range(5, 60) : 100_000,
    sinkMaxDelayMs: prng.pick([0, 100, 1_000]),
    delivery: deliveryPolicy(prng, shortBudget),
  };
  return { config, knobs: { shortBudget } };
}

/** Shapes a type may have of its own (KEYFLOW_WINDOWS' names among them are the key's windows). */
const TYPE_WINDOWS = ["sliding:10s", "sliding:1m", "session:5s", "session:30s", "20s", "40s/20s", ...WINDOWS];
/** The workload's event types (workload.ts), "*" for the others. */
const CONFIG_TYPES = ["view", "click", "buy", "__proto__", "*"];

/**
 * Half the seeds run keyflow.config.json analytics: a few types get windows of their own (sliding,
 * session, other sizes) and threshold rules watch windows of any shape. Built as JSON and read through
 * the real validation, as a deployment's file is.
 */
export function chooseAnalytics(prng: Prng, windows: WindowSpec[]): AnalyticsConfig | undefined {
  if (!prng.chance(0.5)) return undefined;
  const types: Record<string, { windows: string[] }> = {};
  for (const type of prng.subset(CONFIG_TYPES, 0.4)) {
    const shapes = prng.subset(TYPE_WINDOWS, 0.25);
    types[type] = { windows: shapes.length ? shapes : [prng.pick(TYPE_WINDOWS)] };
  }
  // Rules watch a window of a type: its own, or (for types without an entry, and without "*") the key's.
  const keyWindows = windows.map((w) => w.name);
  const targets: Array<[string, string]> = [];
  for (const type of ["view", "click", "buy", "__proto__", "constructor"]) {
    const own = Object.hasOwn(types, type) ? types[type]!.windows : Object.hasOwn(types, "*") ? types["*"]!.windows : keyWindows;
    for (const w of own) targets.push([type, w]);
  }
  const rules = [];
  const count = targets.length ? prng.range(0, 4) : 0;
  for (let i = 0; i < count; i++) {
    const [type, window] = prng.pick(targets);
    const aggregate = prng.pick(["count", "count", "sum", "max", "avg"]);
    const kind = prng.pick(["threshold", "threshold", "change", "zscore"]);
    const target = { name: `r${i}`, type, window, aggregate };
    if (kind === "change") rules.push({ ...target, change: { op: prng.pick([">", "<", ">="]), ratio: prng.pick([0.5, 1, 1.5, 3]) } });
    else if (kind === "zscore") rules.push({ ...target, zscore: { above: prng.pick([0.5, 1, 2]), baseline: prng.range(2, 6), warmup: prng.range(0, 2) } });
    else rules.push({ ...target, op: prng.pick([">", ">=", "<", "=="]), threshold: aggregate === "count" ? prng.range(1, 6) : prng.range(-20, 800) });
  }
  const json = { types: Object.fromEntries(Object.entries(types)), rules };
  return parseAnalyticsConfig(json, windows);
}

/**
 * One sink batch in flight, of a fixed size (the Durable Object host's way); the process host's run
 * draws its own in-flight and growth knobs later, so these draws keep their order for every seed.
 */
function deliveryPolicy(prng: Prng, shortBudget: boolean): DeliveryPolicy {
  const batchSize = prng.pick([1, 2, 7, 50, 500]);
  return {
    batchSize,
    maxBatchSize: batchSize,
    maxInFlight: 1,
    retryBudgetMs: shortBudget ? prng.pick([2 * S, 10 * S, 30 * S]) : H,
    backoffBaseMs: prng.pick([10, 100, 500]),
    backoffMaxMs: prng.pick([1 * S, 5 * S, 30 * S]),
    breakerThreshold: prng.pick([1, 3, 5]),
    breakerCooldownMs: prng.pick([500, 5 * S, 20 * S]),
  };
}

export function modelConfig(config: Config, broken: Broken = "none"): ModelConfig {
  return {
    windows: config.windows.map((w) => ({ name: w.name, size: w.size, hop: w.hop })),
    allowedLatenessMs: config.allowedLatenessMs,
    idleTimeoutMs: config.idleTimeoutMs,
    closedRetentionMs: config.closedRetentionMs,
    maxClosedWindows: config.maxClosedWindows,
    dedupeHorizonMs: config.dedupeHorizonMs,
    dedupeMaxIds: config.dedupeMaxIds,
    lateLogSize: config.lateLogSize,
    emit: config.emit,
    brokenCount: broken === "model-count",
    ...(broken === "model-session-gap" || broken === "model-rule-once" ? { brokenAnalytics: broken } : {}),
    ...(config.analytics ? { analytics: config.analytics } : {}),
  };
}

/** One line describing the configuration of a seed. */
export function describeConfig(c: Config): string {
  const d = c.delivery;
  return [
    `windows=${c.windows.map((w) => w.name).join(",")}`,
    `lateness=${c.allowedLatenessMs}`,
    `idle=${c.idleTimeoutMs}`,
    `emit=${c.emit}`,
    `sinks=${c.sinks.join(",")}`,
    `batch=${d.batchSize}`,
    `budget=${d.retryBudgetMs}`,
    `breaker=${d.breakerThreshold}/${d.breakerCooldownMs}`,
    `outboxMax=${c.outboxMax}`,
    `maxDelay=${c.sinkMaxDelayMs}`,
    `dedupeMaxIds=${c.dedupeMaxIds}`,
    `dedupeHorizonMs=${c.dedupeHorizonMs}`,
    `maxClosed=${c.maxClosedWindows}`,
    `retention=${c.closedRetentionMs}`,
    `lateLog=${c.lateLogSize}`,
    ...(c.analytics ? [`analytics=${describeAnalytics(c.analytics)}`] : []),
  ].join(" ");
}

/** The process host's own knobs: memory bound (eviction), checkpoint interval, delivery concurrency. */
export function processKnobs(prng: Prng, config: Config): Pick<Config, "maxActorsInMemory" | "checkpointIntervalMs" | "delivery"> {
  return {
    maxActorsInMemory: prng.pick([1, 2, 3, 10_000]),
    checkpointIntervalMs: prng.pick([0, 50, 1_000, 10_000]),
    delivery: { ...config.delivery, maxInFlight: prng.pick([1, 2, 4]), maxBatchSize: config.delivery.batchSize * prng.pick([1, 4]) },
  };
}

/** A seed's analytics in one word: each type's windows, then the rules. */
function describeAnalytics(a: AnalyticsConfig): string {
  const types = [...a.types].map(([type, t]) => `${type}:${t.windows.map(windowShapeName).join("+")}`).join(",");
  const what = (r: AnalyticsConfig["rules"][number]) =>
    r.kind === "threshold" ? `${r.op}${r.threshold}` : r.kind === "change" ? `change${r.op}${r.ratio}` : `z>${r.above}/${r.baseline}/${r.warmup}`;
  const rules = a.rules.map((r) => `${r.type}/${r.window}/${r.aggregate}${what(r)}`).join(",");
  return `[${types}]${rules ? `[${rules}]` : ""}`;
}

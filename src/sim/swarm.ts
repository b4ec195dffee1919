import { DEFAULT_CONFIG, type Config } from "../settings/config.ts";
import { parseWindowSpec, type WindowSpec } from "../actor/windows.ts";
import type { ModelConfig } from "./model.ts";
import type { Prng } from "./prng.ts";
import type { DeliveryPolicy } from "../delivery/policy.ts";

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

export function modelConfig(config: Config, brokenCount: boolean): ModelConfig {
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
    brokenCount,
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

import { parseWindowSpec, type WindowSpec } from "./windows.ts";
import type { AnalyticsConfig } from "./analytics.ts";

/** What one actor needs to know: its windows, bounds, event limits and the sinks its outbox feeds. */
export interface ActorConfig {
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
  /** Names of the sinks this deployment forwards to (the host sets them from its sink settings). */
  sinks: string[];
  /** The sink that also receives a copy of every dead letter (Postgres' failed_events table), if any. */
  deadLetterMirror?: string;
  /** "final": a window is emitted once, when it closes; "updates": also every revision while open. */
  emit: "final" | "updates";
  /** Undelivered records per actor and sink beyond which ingest answers 429. */
  outboxMax: number;
  /** keyflow.config.json: enrichment and each type's measure (issue 12); absent, events are taken as they come. */
  analytics?: AnalyticsConfig;
}

export const DEFAULT_ACTOR_CONFIG: ActorConfig = {
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
  sinks: [],
  emit: "final",
  outboxMax: 100_000,
};

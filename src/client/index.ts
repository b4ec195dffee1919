/**
 * keyflow's client (`import { createClient } from "keyflow/client"`): track events in batches with
 * IDs assigned once (so a retry is a duplicate, never a second event), retries with backoff that
 * honour Retry-After, a bounded buffer, page-hide and Worker waitUntil flushing, and typed reads.
 * Portable: only fetch, crypto.getRandomValues, timers, TextDecoder and ReadableStream — browsers,
 * Workers, Bun, Deno and Node ≥ 20. Usage: docs/client.md.
 */
export { createClient } from "./client.ts";
export type { ClientOptions, ClientStats, ContextClient, DeliveryProblem, DeliveryReport, KeyflowClient, Problem, TrackOptions, WaitUntil } from "./client.ts";
export { KeyflowError } from "./errors.ts";
export type { OverflowPolicy } from "./buffer.ts";
export type { LiveOptions } from "./live.ts";
export type { PageLifecycle } from "./page.ts";
export { browserPage } from "./page.ts";
export type { Timers } from "./http.ts";
export { SseParser, type SseMessage } from "./sse.ts";
export { uuidv7, uuidv7Generator, uuidv7Time } from "./uuidv7.ts";
export { backoffMs, retryDelayMs } from "./retry.ts";
export type * from "./types.ts";

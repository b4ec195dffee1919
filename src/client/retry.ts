/**
 * When to retry and how long to wait. Retrying a batch is always safe: every event carries the ID
 * `track()` gave it, so an event the server already stored answers as a duplicate.
 */

export interface BackoffOptions {
  /** The first retry's ceiling, in ms. */
  baseMs: number;
  /** No wait is longer than this (a Retry-After is honoured up to MAX_RETRY_AFTER_MS). */
  maxMs: number;
}

/** A Retry-After beyond this is taken as this: a server's answer should not park a client for longer. */
export const MAX_RETRY_AFTER_MS = 300_000;

/**
 * "Full jitter" exponential backoff: a uniformly random wait in [0, min(maxMs, baseMs·2^attempt)),
 * attempt counting from 0. `random` returns [0, 1) like Math.random.
 */
export function backoffMs(attempt: number, { baseMs, maxMs }: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

/**
 * The wait before retry number `attempt + 1`: a server's Retry-After when it gave one (at least that
 * long, plus up to `baseMs` of jitter so that clients told the same second do not return together),
 * else full-jitter backoff.
 */
export function retryDelayMs(attempt: number, retryAfterMs: number | undefined, options: BackoffOptions, random: () => number): number {
  if (retryAfterMs === undefined) return backoffMs(attempt, options, random);
  return Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) + Math.floor(random() * options.baseMs);
}

/** Statuses worth retrying: 408, 429 and every 5xx (the server's 500 too: a retry is deduplicated). Other 4xx are final. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Codes of a batch's per-event rejections that a retry can cure: a key's sinks behind (`backpressure`),
 * a failed commit or Durable Object (`storage_unavailable`, `actor_unavailable`); the server also marks
 * such entries `details.retryable`.
 */
const RETRYABLE_CODES = new Set(["backpressure", "storage_unavailable", "actor_unavailable", "rate_limited"]);

export function retryableRejection(error: { code: string; details?: unknown }): boolean {
  if (RETRYABLE_CODES.has(error.code)) return true;
  const details = error.details;
  return typeof details === "object" && details !== null && (details as { retryable?: unknown }).retryable === true;
}

/** A rejection's own retry hint (`details.retry_after_s` of `backpressure`), in ms. */
export function rejectionRetryAfterMs(error: { details?: unknown }): number | undefined {
  const seconds = (error.details as { retry_after_s?: unknown } | undefined)?.retry_after_s;
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

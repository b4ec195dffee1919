/**
 * The API's errors as one typed class. Every keyflow error answer is
 * `{"error":{"code","message","details"}}`; `code` is stable (switch on it), `message` is for people,
 * `details` depends on the code (the field problems of `invalid_event`, the limits of
 * `quota_exceeded`, …). Failures that never reached an answer have status 0.
 */
export class KeyflowError extends Error {
  override name = "KeyflowError";
  /** The HTTP status; 0 when there was no answer (network error, timeout, unreadable body). */
  readonly status: number;
  /** The API's error code (`invalid_event`, `rate_limited`, …), or `network_error`, `timeout`, `bad_response`, `http_<status>`. */
  readonly code: string;
  readonly details: unknown;
  /** The answer's Retry-After, in milliseconds, when it had one. */
  readonly retryAfterMs: number | undefined;
  /** The answer's x-request-id: the correlation ID to quote to the server's operator. */
  readonly requestId: string | undefined;

  constructor(status: number, code: string, message: string, options: { details?: unknown; retryAfterMs?: number; requestId?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
    this.requestId = options.requestId ?? undefined;
  }

  /** The field problems of an `invalid_event` error (`[{field, message}]`), else an empty list. */
  get fieldErrors(): Array<{ field: string; message: string }> {
    if (!Array.isArray(this.details)) return [];
    return this.details.filter((d): d is { field: string; message: string } => typeof d?.field === "string" && typeof d?.message === "string");
  }
}

/** The Retry-After header in milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // An HTTP date names its day and month ("Wed, 21 Oct 2026 07:28:00 GMT"); Date.parse alone would take "-1".
  const date = /[a-z]{3}/i.test(text) ? Date.parse(text) : NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/** The error an answer that is not a 2xx stands for, from its JSON body when it has one. */
export async function errorOf(response: Response, nowMs: number): Promise<KeyflowError> {
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), nowMs);
  const requestId = response.headers.get("x-request-id") ?? undefined;
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body was lost: the status alone says what happened.
  }
  const body = parseJson(text);
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  if (error && typeof error.code === "string") {
    const message = typeof error.message === "string" ? error.message : error.code;
    return new KeyflowError(response.status, error.code, message, { details: error.details, retryAfterMs, requestId });
  }
  const message = `HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
  return new KeyflowError(response.status, `http_${response.status}`, message, { retryAfterMs, requestId });
}

/** A failure with no answer: the request may or may not have been applied. */
export function noAnswer(cause: unknown, timedOut: boolean): KeyflowError {
  if (timedOut) return new KeyflowError(0, "timeout", "the request timed out (it may have been applied; a retry is deduplicated)", { cause });
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new KeyflowError(0, "network_error", `no answer: ${detail}`, { cause });
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

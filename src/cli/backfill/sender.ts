import { rejectionRetryAfterMs, retryableRejection, retryableStatus, retryDelayMs, type BackoffOptions } from "../../client/retry.ts";
import { batchBody, type Batch, type Rejection } from "./batch.ts";
import type { Clock } from "./clock.ts";
import type { RateLimiter } from "./rate.ts";

export interface SendOptions {
  /** The server's base URL (no trailing /v1/events). */
  url: string;
  apiKey?: string;
  limiter: RateLimiter;
  clock: Clock;
  random: () => number;
  /** Attempts per request before the run gives up (a retry of the same events is deduplicated). */
  maxAttempts: number;
  backoff: BackoffOptions;
  timeoutMs: number;
}

export interface SendResult {
  accepted: number;
  duplicates: number;
  late: number;
  /** Events the server gave an id to (their line had "event_id" only nested, or null): not idempotent. */
  assigned: number;
  rejected: Rejection[];
  retries: number;
}

/** The run cannot go on: auth refused, wrong URL, or the server stayed unavailable through every retry. */
export class FatalSendError extends Error {}

interface Piece {
  body: Uint8Array;
  lines: number[];
}

interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

interface BatchAnswer {
  accepted: number;
  duplicates: number;
  late?: number;
  rejected: Array<{ index: number; error: ErrorBody }>;
  assigned_ids?: unknown[];
}

/** The lines of a body (each event is one line ending in "\n"). */
function splitLines(body: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (;;) {
    const nl = body.indexOf(10, start);
    if (nl < 0) break;
    out.push(body.subarray(start, nl + 1));
    start = nl + 1;
  }
  return out;
}

function subPiece(piece: Piece, indexes: number[]): Piece {
  const lines = splitLines(piece.body);
  return { body: Buffer.concat(indexes.map((i) => lines[i]!)), lines: indexes.map((i) => piece.lines[i]!) };
}

/** Retry-After as delta-seconds or an HTTP date, in ms. */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

const isBatchAnswer = (v: unknown): v is BatchAnswer =>
  typeof v === "object" && v !== null && typeof (v as BatchAnswer).accepted === "number" && typeof (v as BatchAnswer).duplicates === "number" && Array.isArray((v as BatchAnswer).rejected);

function errorOf(v: unknown, status: number): ErrorBody {
  const e = (v as { error?: Partial<ErrorBody> } | null)?.error;
  return { code: typeof e?.code === "string" ? e.code : `http_${status}`, message: typeof e?.message === "string" ? e.message : `HTTP ${status}`, details: e?.details };
}

/**
 * Posts a batch as NDJSON and settles every event in it: accepted, duplicate or rejected (with its
 * line). Retries 408, 429 and 5xx (honouring Retry-After) and network errors with full-jitter backoff,
 * re-sends only the events a batch answer marked retryable, and halves a batch the server finds too big.
 */
export async function sendBatch(batch: Batch, opts: SendOptions): Promise<SendResult> {
  const result: SendResult = { accepted: 0, duplicates: 0, late: 0, assigned: 0, rejected: [...batch.rejected], retries: 0 };
  if (batch.lines.length === 0) return result;
  const headers: Record<string, string> = { "content-type": "application/x-ndjson" };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const queue: Piece[] = [{ body: batchBody(batch), lines: batch.lines }];
  while (queue.length) {
    let piece = queue.shift()!;
    for (let attempt = 0; ; ) {
      await opts.limiter.take(piece.lines.length);
      let status = 0;
      let answer: unknown;
      let waitMs: number | undefined;
      let failure: string;
      try {
        const res = await fetch(`${opts.url}/v1/events`, { method: "POST", headers, body: piece.body as Uint8Array<ArrayBuffer>, signal: AbortSignal.timeout(opts.timeoutMs) });
        status = res.status;
        waitMs = retryAfterMs(res.headers.get("retry-after"));
        const text = await res.text();
        try {
          answer = JSON.parse(text);
        } catch {
          answer = undefined;
        }
        failure = `HTTP ${status}${answer ? `: ${errorOf(answer, status).message}` : ""}`;
      } catch (error) {
        failure = `request failed: ${(error as Error).message}`;
      }
      if (status === 200 && isBatchAnswer(answer)) {
        result.accepted += answer.accepted;
        result.duplicates += answer.duplicates;
        result.late += answer.late ?? 0;
        result.assigned += answer.assigned_ids?.length ?? 0;
        const again: number[] = [];
        for (const r of answer.rejected) {
          const error = errorOf(r, 0);
          if (retryableRejection(error) && attempt + 1 < opts.maxAttempts) {
            again.push(r.index);
            waitMs = Math.max(waitMs ?? 0, rejectionRetryAfterMs(error) ?? 0);
          } else {
            // The server numbers lines within the request; the summary names the file's line instead.
            const message = error.message.replace(/^malformed JSON on line \d+: /, "malformed JSON: ");
            result.rejected.push({ line: piece.lines[r.index] ?? 0, code: error.code, message });
          }
        }
        if (!again.length) break;
        piece = subPiece(piece, again);
      } else if (status === 200 || (status >= 200 && status < 300)) {
        throw new FatalSendError(`${opts.url}/v1/events answered ${status} with a body that is not a batch answer: is --url a keyflow server?`);
      } else if (status === 413 && piece.lines.length > 1) {
        const half = Math.ceil(piece.lines.length / 2);
        const indexes = piece.lines.map((_, i) => i);
        queue.unshift(subPiece(piece, indexes.slice(0, half)), subPiece(piece, indexes.slice(half)));
        break;
      } else if (status === 401 || status === 403 || status === 404 || status === 415) {
        const error = errorOf(answer, status);
        throw new FatalSendError(`${opts.url}/v1/events answered ${status} ${error.code}: ${error.message}`);
      } else if (status !== 0 && !retryableStatus(status)) {
        const error = errorOf(answer, status);
        for (const line of piece.lines) result.rejected.push({ line, code: error.code, message: error.message });
        break;
      }
      attempt++;
      if (attempt >= opts.maxAttempts) throw new FatalSendError(`gave up after ${attempt} attempts: ${failure!}`);
      result.retries++;
      await opts.clock.sleep(retryDelayMs(attempt - 1, waitMs || undefined, opts.backoff, opts.random));
    }
  }
  return result;
}

import { errorOf, isRecord, KeyflowError, noAnswer, parseJson } from "./errors.ts";
import { retryableStatus } from "./retry.ts";
import { batchBody, type Entry } from "./buffer.ts";
import type { IngestBatchResult } from "./types.ts";

/** Timers as every runtime has them (injectable: the tests drive a fake clock). */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0]),
};

export type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/** How the client reaches the API. */
export interface Transport {
  /** The API's base URL, without a trailing slash. */
  base: string;
  headers: Record<string, string>;
  fetch: Fetch;
  now: () => number;
  timers: Timers;
  requestTimeoutMs: number;
}

/**
 * A request with a deadline covering the answer and its body (`read`): a timeout aborts it. Without
 * an answer the error has status 0: the request may or may not have been applied.
 */
export async function request<T>(t: Transport, path: string, init: RequestInit, read: (response: Response) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let timedOut = false;
  let expire!: (error: KeyflowError) => void;
  // The deadline rejects by itself too: a fetch that ignores its signal cannot hold the client.
  const deadline = new Promise<never>((_, reject) => (expire = reject));
  const timer = t.timers.setTimeout(() => {
    timedOut = true;
    abort.abort();
    expire(noAnswer(new Error(`no answer within ${t.requestTimeoutMs} ms`), true));
  }, t.requestTimeoutMs);
  const outer = init.signal;
  const forward = () => abort.abort();
  outer?.addEventListener("abort", forward);
  const attempt = async () => {
    let response: Response;
    try {
      response = await t.fetch(t.base + path, { ...init, signal: abort.signal });
    } catch (error) {
      throw noAnswer(error, timedOut);
    }
    return await read(response);
  };
  try {
    return await Promise.race([attempt(), deadline]);
  } catch (error) {
    if (error instanceof KeyflowError) throw error;
    throw noAnswer(error, timedOut);
  } finally {
    t.timers.clearTimeout(timer);
    outer?.removeEventListener("abort", forward);
  }
}

/** What became of one POST of a batch. */
export type BatchOutcome =
  /** The server answered for each event (some may be in `rejected`). */
  | { kind: "answer"; result: IngestBatchResult }
  /** Nothing is known to be applied, or it may be: send the same events again (a 408, 429, 5xx, or no answer). */
  | { kind: "retry"; error: KeyflowError }
  /** 413: the batch is too large for this server (events or bytes); smaller batches may pass. */
  | { kind: "too_large"; error: KeyflowError }
  /** Any other 4xx: the request will never pass as it is (401, 403, 415, …). */
  | { kind: "final"; error: KeyflowError };

/** POSTs `entries` as one JSON array to /v1/events. Never throws. */
export async function postBatch(t: Transport, entries: readonly Entry[], keepalive: boolean): Promise<BatchOutcome> {
  const init: RequestInit = {
    method: "POST",
    headers: { ...t.headers, "content-type": "application/json" },
    body: batchBody(entries),
  };
  // Set by name: not every runtime's RequestInit type declares it (Workers' does not; the runtime ignores it there).
  if (keepalive) (init as { keepalive?: boolean }).keepalive = true;
  try {
    return await request<BatchOutcome>(t, "/v1/events", init, async (response) => {
      if (response.ok) {
        const text = await response.text();
        const result = parseJson(text);
        if (!isBatchResult(result, entries.length)) {
          // A proxy's page, a cut body: nothing says what was applied, and a retry is deduplicated.
          return { kind: "retry", error: new KeyflowError(response.status, "bad_response", `the answer is not a batch result: ${text.slice(0, 200)}`) };
        }
        return { kind: "answer", result };
      }
      const error = await errorOf(response, t.now());
      if (response.status === 413) return { kind: "too_large", error };
      return { kind: retryableStatus(response.status) ? "retry" : "final", error };
    });
  } catch (error) {
    return { kind: "retry", error: error instanceof KeyflowError ? error : noAnswer(error, false) };
  }
}

function isBatchResult(value: unknown, size: number): value is IngestBatchResult {
  if (!isRecord(value) || typeof value.accepted !== "number" || typeof value.duplicates !== "number" || !Array.isArray(value.rejected)) return false;
  const indexes = value.rejected.every((r: unknown) => isRecord(r) && typeof r.index === "number" && r.index >= 0 && r.index < size && isRecord(r.error));
  return indexes && value.accepted + value.duplicates + value.rejected.length === size;
}

/** GETs a JSON body; a non-2xx answer throws its KeyflowError. */
export async function getJson<T>(t: Transport, path: string, signal?: AbortSignal): Promise<T> {
  const init: RequestInit = { method: "GET", headers: { ...t.headers, accept: "application/json" } };
  if (signal) init.signal = signal;
  return await request(t, path, init, async (response) => {
    if (!response.ok) throw await errorOf(response, t.now());
    const text = await response.text();
    const body = parseJson(text);
    if (body === undefined) throw new KeyflowError(response.status, "bad_response", `the answer is not JSON: ${text.slice(0, 200)}`);
    return body as T;
  });
}

/** Resolves after `ms` (at once, as false, if `signal` aborts first); true when the time passed. */
export function sleep(timers: Timers, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      timers.clearTimeout(handle);
      resolve(false);
    };
    const handle = timers.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

import { EventBuffer, OVERFLOW_POLICIES, utf8Length, type Entry, type OverflowPolicy } from "./buffer.ts";
import { isRecord, KeyflowError } from "./errors.ts";
import { postBatch, realTimers, sleep, type Fetch, type Timers, type Transport } from "./http.ts";
import { liveMessages, type LiveOptions } from "./live.ts";
import { browserPage, KEEPALIVE_MAX_BYTES, type PageLifecycle } from "./page.ts";
import { readActor, readAlerts, readLate, readWindows } from "./reads.ts";
import { rejectionRetryAfterMs, retryableRejection, retryDelayMs } from "./retry.ts";
import type { ActorView, AlertRecord, ErrorBody, IngestBatchResult, LateEntry, LiveMessage, SentEvent, TrackEvent, WindowsQuery, WindowView } from "./types.ts";
import { uuidv7Generator } from "./uuidv7.ts";

export interface ClientOptions {
  /** The API's base URL, e.g. "https://events.example.com". */
  url: string;
  /** An API key, sent as `Authorization: Bearer <key>` (`ingest` to track, `read` for the reads; a public key in pages). */
  key?: string;
  /** A batch is sent as soon as this many events wait. Default 500. */
  maxBatchEvents?: number;
  /** …or as soon as their JSON reaches this many bytes (the server takes 5 MiB). Default 512 KiB. */
  maxBatchBytes?: number;
  /** No event waits longer than this before its batch is sent. Default 1,000 ms. */
  flushIntervalMs?: number;
  /** Events held at most, waiting or being sent. Default 10,000. */
  maxBufferedEvents?: number;
  /** What a `track()` beyond `maxBufferedEvents` does (see OverflowPolicy). Default "drop-oldest". */
  overflow?: OverflowPolicy;
  /** Retries of a batch before its events are given up as `failed` (reported, not lost silently). Default 10. */
  maxRetries?: number;
  /** Backoff: the first retry waits up to this (full jitter), doubling per retry… Default 500 ms. */
  retryBaseMs?: number;
  /** …up to this. A server's Retry-After is honoured instead (up to 5 minutes). Default 30,000 ms. */
  retryMaxMs?: number;
  /** A request (answer and body) that takes longer is abandoned and retried. Default 10,000 ms. */
  requestTimeoutMs?: number;
  /** Browsers: send what waits with keepalive fetches when the page is hidden. Default true where a `document` exists. */
  flushOnPageHide?: boolean;
  /** The largest body of one keepalive request. Default 60 KiB (a page has 64 KiB for all of them). */
  keepaliveMaxBytes?: number;
  /** Told of events that will not be delivered: rejected by the server, given up after retries, or dropped on overflow. Default: console.warn. */
  onError?: (problem: DeliveryProblem) => void;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
  /** Injected for tests and unusual runtimes: globalThis.fetch, Date.now, Math.random, setTimeout/clearTimeout. */
  fetch?: Fetch;
  now?: () => number;
  random?: () => number;
  timers?: Timers;
  /** The page lifecycle to follow (default: the browser's document and window, when there are). */
  page?: PageLifecycle;
  /** Event IDs for events without one (default: UUIDv7). */
  newId?: () => string;
}

/** An event that will not be delivered, and why. */
export interface Problem {
  event: SentEvent;
  error: KeyflowError;
}

export interface DeliveryProblem {
  /** `rejected`: the server refused it (a 4xx, or its entry in a batch's `rejected`); `failed`: retries ran out; `dropped`: buffer overflow. */
  kind: "rejected" | "failed" | "dropped";
  problems: Problem[];
}

/** What became of the events a flush waited for. */
export interface DeliveryReport {
  /** Every one of them delivered: nothing rejected, failed or dropped. */
  ok: boolean;
  /** Acknowledged by the server (accepted, or a duplicate of an event it had stored). */
  delivered: number;
  rejected: Problem[];
  failed: Problem[];
  dropped: Problem[];
}

export interface ClientStats {
  /** Events `track()` took. */
  tracked: number;
  /** Events acknowledged: accepted + duplicates. */
  delivered: number;
  /** As the server counted them in its answers. */
  accepted: number;
  /** Events the server already had: a retry after a lost answer, or an event_id tracked twice. */
  duplicates: number;
  late: number;
  rejected: number;
  failed: number;
  dropped: number;
  /** Waiting to be sent now. */
  buffered: number;
  /** Being sent now (including a batch waiting to be retried). */
  inFlight: number;
  /** POSTs made, and how many of them were retries. */
  requests: number;
  retries: number;
}

export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

export interface TrackOptions {
  /**
   * Workers: pass `ctx.waitUntil.bind(ctx)` and the request stays alive until this event is
   * delivered (or given up), after the response has gone.
   */
  waitUntil?: (promise: Promise<unknown>) => void;
}

/** A client bound to one Worker invocation's context: see `withContext`. */
export interface ContextClient {
  /** Tracks and keeps the invocation alive (ctx.waitUntil) until every event tracked through it is settled. */
  track(event: TrackEvent): string;
  /** Flushes, and registers the flush with ctx.waitUntil. */
  flush(): Promise<DeliveryReport>;
}

export interface KeyflowClient {
  /**
   * Buffers an event and returns its event_id: the caller's, or a UUIDv7 assigned now, once, so
   * that every retry of it is a duplicate on the server, never a second event. Its timestamp, when
   * absent, is the time of this call. Throws a TypeError for an event without event_type or key,
   * and a KeyflowError `buffer_full` under the `throw` overflow policy.
   */
  track(event: TrackEvent, options?: TrackOptions): string;
  /** Sends everything tracked so far; resolves when each of those events is delivered, rejected, failed or dropped. Never rejects. */
  flush(): Promise<DeliveryReport>;
  /** Flushes, stops following the page, and refuses further `track()` calls. */
  close(): Promise<DeliveryReport>;
  stats(): ClientStats;
  /**
   * Workers: `const events = client.withContext(ctx)` in a fetch handler; `events.track(e)` keeps the
   * invocation alive through `ctx.waitUntil` until those events are settled, after the response.
   */
  withContext(ctx: WaitUntil): ContextClient;
  /** `GET /v1/actors/:key`. */
  actor(key: string, signal?: AbortSignal): Promise<ActorView>;
  /** `GET /v1/actors/:key/windows`. */
  windows(key: string, query?: WindowsQuery, signal?: AbortSignal): Promise<WindowView[]>;
  /** `GET /v1/actors/:key/late`. */
  late(key: string, signal?: AbortSignal): Promise<LateEntry[]>;
  /** `GET /v1/actors/:key/alerts`. */
  alerts(key: string, signal?: AbortSignal): Promise<AlertRecord[]>;
  /** `GET /v1/actors/:key/live` as typed messages: `for await (const m of client.live(key, { signal }))`. */
  live(key: string, options?: LiveOptions): AsyncGenerator<LiveMessage, void, undefined>;
}

/** A flush or a waitUntil waiting for every held event up to `target` to settle. */
interface Waiter {
  target: number;
  report: DeliveryReport;
  done: boolean;
  resolve(report: DeliveryReport): void;
  promise: Promise<DeliveryReport>;
}

type Outcome = "delivered" | "rejected" | "failed" | "dropped";

export function createClient(options: ClientOptions): KeyflowClient {
  const maxBatchEvents = positive(options.maxBatchEvents ?? 500, "maxBatchEvents");
  const maxBatchBytes = positive(options.maxBatchBytes ?? 512 * 1024, "maxBatchBytes");
  const flushIntervalMs = nonNegative(options.flushIntervalMs ?? 1_000, "flushIntervalMs");
  const maxRetries = nonNegative(options.maxRetries ?? 10, "maxRetries");
  const backoff = { baseMs: nonNegative(options.retryBaseMs ?? 500, "retryBaseMs"), maxMs: nonNegative(options.retryMaxMs ?? 30_000, "retryMaxMs") };
  const keepaliveMaxBytes = positive(options.keepaliveMaxBytes ?? KEEPALIVE_MAX_BYTES, "keepaliveMaxBytes");
  const overflow = options.overflow ?? "drop-oldest";
  if (!OVERFLOW_POLICIES.includes(overflow)) throw new RangeError(`overflow must be one of ${OVERFLOW_POLICIES.join(", ")}`);
  const buffer = new EventBuffer(positive(options.maxBufferedEvents ?? 10_000, "maxBufferedEvents"), overflow);
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const timers = options.timers ?? realTimers;
  const newId = options.newId ?? uuidv7Generator(now);
  const onError = options.onError ?? warnOnce();
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  const transport: Transport = {
    base: options.url.replace(/\/+$/, ""),
    headers,
    // Called through globalThis: a browser's fetch must not be called as a method of another object.
    fetch: options.fetch ?? ((url, init) => globalThis.fetch(url, init)),
    now,
    timers,
    requestTimeoutMs: positive(options.requestTimeoutMs ?? 10_000, "requestTimeoutMs"),
  };

  const inFlight = new Map<number, Entry>();
  const waiters: Waiter[] = [];
  const stats = { tracked: 0, delivered: 0, accepted: 0, duplicates: 0, late: 0, rejected: 0, failed: 0, dropped: 0, requests: 0, retries: 0 };
  let lastSeq = 0;
  /** Every event up to this seq is to be sent now, whatever the batch size (a flush, the interval, a page hide). */
  let drainThrough = 0;
  /** The batch size in use: maxBatchEvents, halved while the server answers 413. */
  let batchEvents = maxBatchEvents;
  let timer: unknown;
  let sending = false;
  let hiding = false;
  let closed = false;

  const page = options.flushOnPageHide === false ? undefined : (options.page ?? browserPage());
  const stopFollowingPage = page?.subscribe(() => void onPageHide());

  function track(event: TrackEvent, trackOptions?: TrackOptions): string {
    if (closed) throw new KeyflowError(0, "closed", "the client is closed: track() after close()");
    const entry = encode(event);
    const dropped = buffer.offer(entry, inFlight.size);
    stats.tracked++;
    if (dropped) {
      settle([dropped], "dropped", new KeyflowError(0, "buffer_full", `dropped (${buffer.policy}): ${buffer.capacity} events were buffered (maxBufferedEvents)`));
    }
    if (trackOptions?.waitUntil) trackOptions.waitUntil(waiter(entry.seq).promise);
    schedule();
    return entry.id;
  }

  function encode(event: TrackEvent): Entry {
    if (!isRecord(event) || typeof event.event_type !== "string") throw new TypeError("track(event): event.event_type must be a string");
    if (event.key == null && event.user_id == null) throw new TypeError("track(event): event.key (or event.user_id) is required");
    const id = event.event_id ?? newId();
    const stamp = event.timestamp === undefined ? new Date(now()) : event.timestamp;
    const sent: SentEvent = { ...event, event_id: id, timestamp: stamp instanceof Date ? stamp.toISOString() : stamp };
    const json = JSON.stringify(sent);
    return { seq: ++lastSeq, id, json, bytes: utf8Length(json) };
  }

  function due(): boolean {
    if (!buffer.length || hiding) return false;
    return buffer.length >= batchEvents || buffer.bytes >= maxBatchBytes || buffer.minSeq! <= drainThrough;
  }

  /** Starts sending what is due; otherwise makes sure what waits goes within flushIntervalMs. */
  function schedule(): void {
    if (due()) {
      if (!sending) void pump();
    } else if (buffer.length && timer === undefined) {
      timer = timers.setTimeout(() => {
        timer = undefined;
        drainThrough = lastSeq;
        schedule();
      }, flushIntervalMs);
    }
  }

  function stopTimer(): void {
    if (timer === undefined) return;
    timers.clearTimeout(timer);
    timer = undefined;
  }

  /** Sends one batch at a time, in order, until nothing is due. */
  async function pump(): Promise<void> {
    sending = true;
    try {
      while (due()) {
        const batch = buffer.take(batchEvents, maxBatchBytes);
        for (const e of batch) inFlight.set(e.seq, e);
        if (!buffer.length) stopTimer();
        try {
          await deliver(batch);
        } catch (error) {
          // Not expected (postBatch never throws): still, no event may stay held forever.
          settle(batch.filter((e) => inFlight.has(e.seq)), "failed", new KeyflowError(0, "client_error", String(error), { cause: error }));
        }
      }
    } finally {
      sending = false;
      schedule();
    }
  }

  /** Delivers a batch: retries what may pass later, settles everything else. */
  async function deliver(batch: Entry[]): Promise<void> {
    let pending = batch;
    for (let attempt = 0; pending.length; attempt++) {
      stats.requests++;
      if (attempt > 0) stats.retries++;
      const outcome = await postBatch(transport, pending, false);
      let error: KeyflowError;
      let retryAfterMs: number | undefined;
      if (outcome.kind === "answer") {
        const retry = applyAnswer(pending, outcome.result);
        if (!retry) return;
        ({ entries: pending, error, retryAfterMs } = retry);
      } else if (outcome.kind === "too_large" && pending.length > 1) {
        // Halve until the server takes it; the other half waits at the front of the buffer.
        const half = Math.ceil(pending.length / 2);
        batchEvents = Math.max(1, Math.min(batchEvents, half));
        putBack(pending.slice(half));
        pending = pending.slice(0, half);
        attempt--;
        continue;
      } else if (outcome.kind === "final" || outcome.kind === "too_large") {
        return settle(pending, "rejected", outcome.error);
      } else {
        error = outcome.error;
        retryAfterMs = error.retryAfterMs;
      }
      if (attempt >= maxRetries) return settle(pending, "failed", error);
      await sleep(timers, retryDelayMs(attempt, retryAfterMs, backoff, random));
    }
  }

  /** Settles a batch's answer; returns the events to send again (retryable rejections), if any. */
  function applyAnswer(entries: Entry[], result: IngestBatchResult): { entries: Entry[]; error: KeyflowError; retryAfterMs: number | undefined } | undefined {
    stats.accepted += result.accepted;
    stats.duplicates += result.duplicates;
    stats.late += result.late ?? 0;
    const rejections = new Map(result.rejected.map((r) => [r.index, r.error]));
    const delivered: Entry[] = [];
    const retry: Entry[] = [];
    let retryError: KeyflowError | undefined;
    let retryAfterMs: number | undefined;
    entries.forEach((entry, index) => {
      const rejection = rejections.get(index);
      if (!rejection) return void delivered.push(entry);
      if (retryableRejection(rejection)) {
        retry.push(entry);
        retryError ??= rejectionError(rejection);
        const hint = rejectionRetryAfterMs(rejection);
        if (hint !== undefined) retryAfterMs = Math.max(retryAfterMs ?? 0, hint);
      } else settle([entry], "rejected", rejectionError(rejection));
    });
    settle(delivered, "delivered");
    return retry.length ? { entries: retry, error: retryError!, retryAfterMs } : undefined;
  }

  /** Events back to the buffer (in order), to go with the next batch due. */
  function putBack(entries: Entry[]): void {
    for (const e of entries) {
      inFlight.delete(e.seq);
      drainThrough = Math.max(drainThrough, e.seq);
    }
    buffer.requeue(entries);
  }

  /**
   * The page is being hidden: send what waits now, in keepalive requests of at most keepaliveMaxBytes,
   * one after another (the batch already in flight goes on as it is). What does not pass stays buffered.
   */
  async function onPageHide(): Promise<void> {
    drainThrough = lastSeq;
    if (hiding || !buffer.length) return;
    hiding = true;
    try {
      while (buffer.length) {
        const chunk = buffer.take(batchEvents, keepaliveMaxBytes);
        for (const e of chunk) inFlight.set(e.seq, e);
        const bytes = chunk.reduce((sum, e) => sum + e.bytes + 1, 1);
        stats.requests++;
        const outcome = await postBatch(transport, chunk, bytes <= keepaliveMaxBytes);
        if (outcome.kind === "answer") {
          const retry = applyAnswer(chunk, outcome.result);
          if (retry) {
            putBack(retry.entries);
            break;
          }
        } else if (outcome.kind === "final") settle(chunk, "rejected", outcome.error);
        else {
          putBack(chunk);
          break;
        }
      }
    } finally {
      hiding = false;
      schedule();
    }
  }

  function settle(entries: Entry[], outcome: Outcome, error?: KeyflowError): void {
    if (!entries.length) return;
    for (const e of entries) inFlight.delete(e.seq);
    stats[outcome] += entries.length;
    const problems = outcome === "delivered" ? [] : entries.map((e) => ({ event: JSON.parse(e.json) as SentEvent, error: error! }));
    for (const w of waiters) {
      if (outcome === "delivered") {
        for (const e of entries) if (e.seq <= w.target) w.report.delivered++;
      } else {
        problems.forEach((p, i) => {
          if (entries[i]!.seq <= w.target) w.report[outcome].push(p);
        });
      }
    }
    if (outcome !== "delivered") {
      try {
        onError({ kind: outcome, problems });
      } catch {
        // A throwing onError must not stop delivery.
      }
    }
    resolveWaiters();
  }

  /** The oldest seq still held (waiting or in flight), or Infinity. */
  function oldestHeld(): number {
    let min = buffer.minSeq ?? Infinity;
    for (const seq of inFlight.keys()) if (seq < min) min = seq;
    return min;
  }

  function resolveWaiters(): void {
    if (!waiters.length) return;
    const oldest = oldestHeld();
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (w.target >= oldest) continue;
      waiters.splice(i, 1);
      w.done = true;
      const r = w.report;
      r.ok = !r.rejected.length && !r.failed.length && !r.dropped.length;
      w.resolve(r);
    }
  }

  function waiter(target: number): Waiter {
    let resolve!: (report: DeliveryReport) => void;
    const promise = new Promise<DeliveryReport>((r) => (resolve = r));
    const w: Waiter = { target, done: false, resolve, promise, report: { ok: true, delivered: 0, rejected: [], failed: [], dropped: [] } };
    waiters.push(w);
    resolveWaiters();
    return w;
  }

  function flush(): Promise<DeliveryReport> {
    const w = waiter(lastSeq);
    drainThrough = lastSeq;
    schedule();
    return w.promise;
  }

  return {
    track,
    flush,
    async close() {
      if (!closed) {
        closed = true;
        stopFollowingPage?.();
      }
      const report = await flush();
      stopTimer();
      return report;
    },
    stats: () => ({ ...stats, buffered: buffer.length, inFlight: inFlight.size }),
    withContext(ctx) {
      let current: Waiter | undefined;
      return {
        track(event) {
          const id = track(event);
          // One waitUntil per invocation (while it lasts), extended to each event tracked through it.
          if (current && !current.done) current.target = lastSeq;
          else {
            current = waiter(lastSeq);
            ctx.waitUntil(current.promise);
          }
          return id;
        },
        flush() {
          const done = flush();
          ctx.waitUntil(done);
          return done;
        },
      };
    },
    actor: (key, signal) => readActor(transport, key, signal),
    windows: (key, query, signal) => readWindows(transport, key, query, signal),
    late: (key, signal) => readLate(transport, key, signal),
    alerts: (key, signal) => readAlerts(transport, key, signal),
    live: (key, liveOptions = {}) => liveMessages(transport, key, liveOptions, random),
  };
}

/** The status a single event with this error would have been answered with. */
const STATUS_OF_CODE: Record<string, number> = { quota_exceeded: 403, backpressure: 429, rate_limited: 429, storage_unavailable: 503, actor_unavailable: 503 };

function rejectionError(error: ErrorBody): KeyflowError {
  return new KeyflowError(STATUS_OF_CODE[error.code] ?? 400, error.code, error.message, { details: error.details });
}

/** Without an onError: one console line per kind of problem (then stats() counts them), never one per event. */
function warnOnce(): (problem: DeliveryProblem) => void {
  const told = new Set<string>();
  return ({ kind, problems }) => {
    if (told.has(kind)) return;
    told.add(kind);
    const first = problems[0]?.error;
    console.warn(`keyflow client: ${problems.length} event(s) ${kind}${first ? ` (${first.code}: ${first.message})` : ""}; pass onError to handle them, stats() counts them`);
  };
}

function positive(value: number, name: string): number {
  if (!(value > 0)) throw new RangeError(`${name} must be positive, got ${value}`);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!(value >= 0)) throw new RangeError(`${name} must be zero or more, got ${value}`);
  return value;
}

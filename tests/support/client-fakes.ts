/** Fakes for the client's unit tests: a clock with timers that move only when told, and a scripted fetch. */
import type { Timers } from "../../src/client/index.ts";

interface Task {
  at: number;
  ms: number;
  fn: () => void;
}

/** Timers on a fake clock: nothing fires until the test runs it. */
export class FakeTimers implements Timers {
  time = Date.UTC(2026, 10, 21, 10, 0, 0);
  private nextId = 1;
  private readonly tasks = new Map<number, Task>();
  /** Every delay ever asked for, in order. */
  readonly requested: number[] = [];

  now = (): number => this.time;

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.tasks.set(id, { at: this.time + ms, ms, fn });
    this.requested.push(ms);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.tasks.delete(handle as number);
  }

  /** The delays of the timers pending now, soonest first. */
  pending(): number[] {
    return [...this.tasks.values()].sort((a, b) => a.at - b.at).map((t) => t.ms);
  }

  /** Moves the clock to the soonest timer and runs it; false when none is pending. */
  runNext(): boolean {
    let first: [number, Task] | undefined;
    for (const entry of this.tasks) if (!first || entry[1].at < first[1].at) first = entry;
    if (!first) return false;
    this.tasks.delete(first[0]);
    this.time = Math.max(this.time, first[1].at);
    first[1].fn();
    return true;
  }
}

/** Lets pending promise chains and I/O callbacks run (a macrotask turn), `turns` times. */
export async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Waits, turn by turn, until `condition` holds (no sleeping on the clock: at most `limit` turns). */
export async function until(condition: () => boolean, what = "the condition", limit = 2_000): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`${what} did not hold within ${limit} turns`);
}

/**
 * Settles `promise` by running fake timers whenever nothing else can happen: each loop lets every
 * pending callback run, and only then moves the fake clock to the next timer.
 */
export async function drive<T>(promise: Promise<T>, timers: FakeTimers, maxTimers = 10_000): Promise<T> {
  let settled = false;
  let value: T;
  let failure: unknown;
  let failed = false;
  promise.then(
    (v) => ((settled = true), (value = v)),
    (e) => ((settled = true), (failed = true), (failure = e)),
  );
  for (let fired = 0; ; fired++) {
    await turns(3);
    if (settled) break;
    if (fired >= maxTimers) throw new Error(`not settled after ${maxTimers} timers`);
    if (!timers.runNext()) {
      await turns(20);
      if (settled) break;
      throw new Error("not settled, and no timer is pending");
    }
  }
  if (failed) throw failure;
  return value!;
}

export interface FetchCall {
  n: number;
  url: string;
  method: string;
  headers: Record<string, string>;
  keepalive: boolean;
  /** The body as JSON (undefined for GETs). */
  body: unknown;
  bodyBytes: number;
}

/** A fetch that records each call and answers with `handler`'s Response (or throws what it throws). */
export function scriptedFetch(handler: (call: FetchCall) => Response | Promise<Response>) {
  const calls: FetchCall[] = [];
  const fetch = async (url: string, init: RequestInit): Promise<Response> => {
    const text = typeof init.body === "string" ? init.body : undefined;
    const call: FetchCall = {
      n: calls.length,
      url,
      method: init.method ?? "GET",
      headers: Object.fromEntries(new Headers(init.headers).entries()),
      keepalive: init.keepalive === true,
      body: text === undefined ? undefined : JSON.parse(text),
      bodyBytes: text === undefined ? 0 : new TextEncoder().encode(text).length,
    };
    calls.push(call);
    return await handler(call);
  };
  return { fetch, calls };
}

/**
 * A server's ingest in memory: dedupes by event_id, answers a batch like keyflow does. `stored`
 * holds every event it applied (once each); `received` counts every copy it was sent.
 */
export function memoryIngest() {
  const stored = new Map<string, unknown>();
  let received = 0;
  return {
    stored,
    get received() {
      return received;
    },
    /** Applies a batch and returns the answer keyflow would give. */
    apply(events: Array<{ event_id: string }>): Response {
      let accepted = 0;
      let duplicates = 0;
      for (const e of events) {
        received++;
        if (stored.has(e.event_id)) duplicates++;
        else {
          stored.set(e.event_id, e);
          accepted++;
        }
      }
      return Response.json({ accepted, duplicates, late: 0, rejected: [] });
    },
  };
}

export const errorResponse = (status: number, code: string, headers: Record<string, string> = {}, details?: unknown) =>
  Response.json({ error: { code, message: `${code} (test)`, ...(details === undefined ? {} : { details }) } }, { status, headers });

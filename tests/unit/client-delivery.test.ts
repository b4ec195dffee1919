import { describe, expect, test } from "bun:test";
import { browserPage, createClient, KeyflowError, uuidv7Time, type ClientOptions, type DeliveryProblem, type PageLifecycle } from "../../src/client/index.ts";
import { drive, errorResponse, FakeTimers, memoryIngest, scriptedFetch, turns, until, type FetchCall } from "../support/client-fakes.ts";
import { SeededRandom } from "../support/fake-env.ts";

type Sent = { event_id: string; event_type: string; key: string; timestamp: string; properties?: Record<string, unknown> };
const events = (call: FetchCall) => call.body as Sent[];
/** The retry waits a client asked for: every timer but the request timeouts (1e9) and the flush interval (60 s) of setup(). */
const retryWaits = (timers: FakeTimers) => timers.requested.filter((ms) => ms !== 1e9 && ms !== 60_000);
const ids = (call: FetchCall) => events(call).map((e) => e.event_id);

/** A client on fake timers against `handler`; no page, no jitter unless a test sets `random`. */
function setup(handler: (call: FetchCall) => Response | Promise<Response>, options: Partial<ClientOptions> = {}) {
  const timers = new FakeTimers();
  const { fetch, calls } = scriptedFetch(handler);
  const problems: DeliveryProblem[] = [];
  const client = createClient({
    url: "http://keyflow.test/",
    key: "kf_test",
    fetch,
    timers,
    now: timers.now,
    random: () => 0,
    requestTimeoutMs: 1e9,
    flushIntervalMs: 60_000,
    flushOnPageHide: false,
    onError: (p) => problems.push(p),
    ...options,
  });
  return { client, timers, calls, problems };
}

describe("batching", () => {
  test("a batch goes when maxBatchEvents wait; the rest within flushIntervalMs; events carry an ID and time fixed at track()", async () => {
    const ingest = memoryIngest();
    const { client, timers, calls } = setup((c) => ingest.apply(events(c)), { maxBatchEvents: 3, flushIntervalMs: 1000 });
    const tracked = Array.from({ length: 7 }, (_, i) => client.track({ event_type: "click", key: "k1", properties: { i } }));
    await until(() => calls.length === 2, "two full batches");
    expect(calls.map((c) => events(c).length)).toEqual([3, 3]);
    await turns();
    // The seventh event waits for the interval, not for more events.
    expect(calls.length).toBe(2);
    expect(timers.pending()).toEqual([1000]);
    timers.runNext();
    await until(() => calls.length === 3, "the interval's batch");
    expect(events(calls[2]!).length).toBe(1);
    expect(calls.flatMap(ids)).toEqual(tracked);

    const call = calls[0]!;
    expect(call.url).toBe("http://keyflow.test/v1/events");
    expect(call.method).toBe("POST");
    expect(call.headers.authorization).toBe("Bearer kf_test");
    expect(call.headers["content-type"]).toBe("application/json");
    expect(call.keepalive).toBe(false);
    const first = events(call)[0]!;
    expect(uuidv7Time(first.event_id)).toBe(Date.UTC(2026, 10, 21, 10, 0, 0));
    expect(first.timestamp).toBe("2026-11-21T10:00:00.000Z");
    expect(first).toMatchObject({ event_type: "click", key: "k1", properties: { i: 0 } });
    await until(() => client.stats().delivered === 7, "all delivered");
    expect(client.stats()).toMatchObject({ tracked: 7, delivered: 7, accepted: 7, duplicates: 0, requests: 3, retries: 0, buffered: 0, inFlight: 0 });
  });

  test("batches are also cut by bytes (maxBatchBytes)", async () => {
    const ingest = memoryIngest();
    const { client, timers, calls } = setup((c) => ingest.apply(events(c)), { maxBatchBytes: 1000 });
    for (let i = 0; i < 10; i++) client.track({ event_type: "t", key: "k", properties: { pad: "x".repeat(300) } });
    await drive(client.flush(), timers);
    expect(calls.length).toBeGreaterThanOrEqual(4);
    for (const c of calls) expect(c.bodyBytes).toBeLessThanOrEqual(1000);
    expect(ingest.stored.size).toBe(10);
  });

  test("flush() sends at once and resolves when the events are acknowledged; with nothing held it resolves at once", async () => {
    const ingest = memoryIngest();
    const { client, timers, calls } = setup((c) => ingest.apply(events(c)));
    expect(await client.flush()).toEqual({ ok: true, delivered: 0, rejected: [], failed: [], dropped: [] });
    client.track({ event_type: "a", key: "k" });
    client.track({ event_type: "b", user_id: 42 });
    const report = await drive(client.flush(), timers);
    expect(report).toEqual({ ok: true, delivered: 2, rejected: [], failed: [], dropped: [] });
    expect(calls.length).toBe(1);
    expect(events(calls[0]!)[1]).toMatchObject({ user_id: 42 });
  });

  test("track(): the caller's event_id and timestamp are kept, a Date becomes ISO, later changes to the object are not sent", async () => {
    const ingest = memoryIngest();
    const { client, timers, calls } = setup((c) => ingest.apply(events(c)));
    const event = { event_id: "mine-1", event_type: "buy", key: "k", timestamp: new Date(Date.UTC(2026, 0, 2)), properties: { amount: 3 } };
    expect(client.track(event)).toBe("mine-1");
    event.properties.amount = 999;
    client.track({ event_type: "x", key: "k", timestamp: 1_700_000_000_000 });
    await drive(client.flush(), timers);
    expect(events(calls[0]!)[0]).toEqual({ event_id: "mine-1", event_type: "buy", key: "k", timestamp: "2026-01-02T00:00:00.000Z", properties: { amount: 3 } } as never);
    expect(events(calls[0]!)[1]!.timestamp).toBe(1_700_000_000_000 as never);
    expect(() => client.track({ key: "k" } as never)).toThrow(TypeError);
    expect(() => client.track({ event_type: "x" } as never)).toThrow(/key/);
  });
});

describe("retries", () => {
  test("503 with Retry-After waits that long; a network error backs off with full jitter; every retry sends the same IDs", async () => {
    const ingest = memoryIngest();
    let n = 0;
    const { client, timers, calls } = setup(
      (c) => {
        n++;
        if (n === 1) return errorResponse(503, "storage_unavailable", { "Retry-After": "2" });
        if (n === 2) throw new TypeError("fetch failed");
        if (n === 3) return errorResponse(429, "rate_limited", { "Retry-After": "1" });
        if (n === 4) return new Response("<html>bad gateway</html>", { status: 502 });
        return ingest.apply(events(c));
      },
      { random: () => 0.5, retryBaseMs: 100, retryMaxMs: 10_000 },
    );
    for (let i = 0; i < 5; i++) client.track({ event_type: "t", key: "k" });
    const report = await drive(client.flush(), timers);
    expect(report.ok).toBe(true);
    expect(calls.length).toBe(5);
    for (const c of calls) expect(ids(c)).toEqual(ids(calls[0]!));
    // Waits: Retry-After 2 s + 0.5·100 jitter; attempt 1 backoff 0.5·min(10 s, 100·2); Retry-After 1 s + 50; attempt 3: 0.5·800.
    expect(retryWaits(timers)).toEqual([2050, 100, 1050, 400]);
    expect(client.stats()).toMatchObject({ requests: 5, retries: 4, delivered: 5, accepted: 5 });
  });

  test("a lost answer (applied, then 502 or a cut body) is retried and answered as duplicates: nothing doubled", async () => {
    const ingest = memoryIngest();
    let n = 0;
    const { client, timers } = setup((c) => {
      n++;
      const answer = ingest.apply(events(c));
      if (n === 1) return new Response("bad gateway", { status: 502 });
      if (n === 2) return new Response('{"accepted":', { status: 200 });
      return answer;
    });
    for (let i = 0; i < 3; i++) client.track({ event_type: "t", key: "k" });
    const report = await drive(client.flush(), timers);
    expect(report).toMatchObject({ ok: true, delivered: 3 });
    expect(ingest.stored.size).toBe(3);
    expect(ingest.received).toBe(9);
    expect(client.stats()).toMatchObject({ delivered: 3, accepted: 0, duplicates: 3, retries: 2 });
  });

  test("a request that outlives requestTimeoutMs is abandoned and retried", async () => {
    const ingest = memoryIngest();
    let n = 0;
    const { client, timers, calls } = setup(
      (c) => {
        if (n++ === 0) return new Promise<Response>(() => undefined); // never answers (nor notices the abort)
        return ingest.apply(events(c));
      },
      { requestTimeoutMs: 5000 },
    );
    client.track({ event_type: "t", key: "k" });
    const flushed = client.flush();
    await until(() => calls.length === 1, "the first request");
    expect(timers.pending()).toEqual([5000]);
    const report = await drive(flushed, timers);
    expect(report.ok).toBe(true);
    expect(calls.length).toBe(2);
    expect(ids(calls[1]!)).toEqual(ids(calls[0]!));
  });

  test("4xx other than 408/429 is final: the events are reported rejected with the API's error, not retried", async () => {
    const { client, timers, calls, problems } = setup(() => errorResponse(401, "unauthorized", { "x-request-id": "req-1" }));
    client.track({ event_type: "t", key: "k" });
    const report = await drive(client.flush(), timers);
    expect(calls.length).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.rejected.length).toBe(1);
    const error = report.rejected[0]!.error;
    expect(error).toBeInstanceOf(KeyflowError);
    expect([error.status, error.code, error.requestId]).toEqual([401, "unauthorized", "req-1"]);
    expect(problems).toEqual([{ kind: "rejected", problems: report.rejected }]);
    expect(client.stats()).toMatchObject({ rejected: 1, delivered: 0 });
  });

  test("a batch's per-event rejections: invalid events are reported with their field errors, backpressured ones retried alone", async () => {
    const ingest = memoryIngest();
    let n = 0;
    const { client, timers, calls } = setup((c) => {
      const batch = events(c);
      if (n++ > 0) return ingest.apply(batch);
      // The first answer: event 1 invalid, event 2 backpressured (retry after 3 s), the others applied.
      const applied = JSON.parse(JSON.stringify(ingest.apply([batch[0]!, batch[3]!]).status)) && 2;
      return Response.json({
        accepted: applied,
        duplicates: 0,
        late: 0,
        rejected: [
          { index: 1, error: { code: "invalid_event", message: "event_type must match", details: [{ field: "event_type", message: "must match [a-z0-9_.:-]{1,64}" }] } },
          { index: 2, error: { code: "backpressure", message: "sinks behind", details: { key: "k", retry_after_s: 3 } } },
        ],
      });
    });
    const [a, bad, slow, d] = ["ok", "BAD TYPE", "ok", "ok"].map((t) => client.track({ event_type: t, key: "k" }));
    const report = await drive(client.flush(), timers);
    expect(calls.map(ids)).toEqual([[a!, bad!, slow!, d!], [slow!]]);
    expect(retryWaits(timers)).toEqual([3000]);
    expect(report.delivered).toBe(3);
    expect(report.rejected.map((p) => p.event.event_id)).toEqual([bad!]);
    const error = report.rejected[0]!.error;
    expect([error.status, error.code]).toEqual([400, "invalid_event"]);
    expect(error.fieldErrors).toEqual([{ field: "event_type", message: "must match [a-z0-9_.:-]{1,64}" }]);
    expect(client.stats()).toMatchObject({ delivered: 3, rejected: 1, accepted: 3 });
  });

  test("after maxRetries the events are given up as failed, reported with the last error", async () => {
    const { client, timers, calls, problems } = setup(() => errorResponse(503, "storage_unavailable", { "Retry-After": "1" }), { maxRetries: 3 });
    const id = client.track({ event_type: "t", key: "k" });
    const report = await drive(client.flush(), timers);
    expect(calls.length).toBe(4);
    expect(report.ok).toBe(false);
    expect(report.failed.map((p) => [p.event.event_id, p.error.code, p.error.status])).toEqual([[id, "storage_unavailable", 503]]);
    expect(problems.map((p) => p.kind)).toEqual(["failed"]);
    expect(client.stats()).toMatchObject({ failed: 1, requests: 4, retries: 3, buffered: 0, inFlight: 0 });
  });

  test("413: the batch is halved until the server takes it, and later batches stay that small", async () => {
    const ingest = memoryIngest();
    const { client, timers, calls } = setup((c) => (events(c).length > 3 ? errorResponse(413, "too_many_events") : ingest.apply(events(c))), { maxBatchEvents: 10 });
    const tracked = Array.from({ length: 25 }, () => client.track({ event_type: "t", key: "k" }));
    const report = await drive(client.flush(), timers);
    expect(report).toMatchObject({ ok: true, delivered: 25 });
    expect(ingest.stored.size).toBe(25);
    expect([...ingest.stored.keys()]).toEqual(tracked);
    const sizes = calls.map((c) => events(c).length);
    expect(sizes.slice(0, 3)).toEqual([10, 5, 3]);
    expect(sizes.slice(3).every((s) => s <= 3)).toBe(true);
  });

  test("a single event the server finds too large is rejected, not retried", async () => {
    const { client, timers, calls } = setup(() => errorResponse(413, "payload_too_large"));
    client.track({ event_type: "t", key: "k" });
    const report = await drive(client.flush(), timers);
    expect(calls.length).toBe(1);
    expect(report.rejected[0]!.error.code).toBe("payload_too_large");
  });

  test("chaos, seeded: failures before and after the server applied, lost and cut answers — every event stored exactly once", async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const ingest = memoryIngest();
      const rng = new SeededRandom(seed);
      const { client, timers } = setup(
        (c) => {
          const r = rng.next();
          if (r < 0.2) return errorResponse(503, "storage_unavailable", { "Retry-After": "1" });
          if (r < 0.3) throw new TypeError("connection refused");
          const answer = ingest.apply(events(c));
          if (r < 0.45) return new Response("bad gateway", { status: 502 }); // applied, answer lost
          if (r < 0.55) throw new TypeError("socket hang up"); // applied, connection lost
          if (r < 0.6) return new Response("{", { status: 200 }); // applied, body cut
          return answer;
        },
        { maxBatchEvents: 25, maxRetries: 100, random: () => rng.next() },
      );
      const tracked: string[] = [];
      for (let i = 0; i < 1000; i++) {
        tracked.push(client.track({ event_type: "t", key: `k${i % 7}`, properties: { i } }));
        if (i % 100 === 99) await turns(1);
      }
      const report = await drive(client.flush(), timers);
      // The report covers what was held when flush() was called; stats() covers everything.
      expect(report.ok).toBe(true);
      expect(ingest.stored.size).toBe(1000);
      expect(new Set(tracked)).toEqual(new Set(ingest.stored.keys()));
      const s = client.stats();
      expect(s.accepted + s.duplicates).toBe(1000);
      expect(s.duplicates).toBeGreaterThan(0);
      expect(s.duplicates).toBeLessThanOrEqual(ingest.received - 1000);
      expect(s).toMatchObject({ delivered: 1000, failed: 0, rejected: 0, buffered: 0, inFlight: 0 });
    }
  });
});

describe("Workers: waitUntil", () => {
  test("withContext(ctx): one waitUntil per invocation, settled only when its events are delivered", async () => {
    const ingest = memoryIngest();
    let answer!: () => void;
    const { client, timers, calls } = setup(async (c) => {
      await new Promise<void>((r) => (answer = r));
      return ingest.apply(events(c));
    });
    const registered: Array<Promise<unknown>> = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void registered.push(p) };
    const events1 = client.withContext(ctx);
    events1.track({ event_type: "a", key: "k" });
    events1.track({ event_type: "b", key: "k" });
    expect(registered.length).toBe(1);
    let settled = false;
    void registered[0]!.then(() => (settled = true));
    timers.runNext(); // the flush interval
    await until(() => calls.length === 1, "the batch");
    await turns();
    expect(settled).toBe(false);
    answer();
    await until(() => settled, "the waitUntil promise");
    expect(ingest.stored.size).toBe(2);

    // A later invocation registers its own.
    const events2 = client.withContext(ctx);
    events2.track({ event_type: "c", key: "k" });
    expect(registered.length).toBe(2);
    const flushed = events2.flush();
    expect(registered.length).toBe(3);
    await until(() => calls.length === 2, "the second batch");
    answer();
    expect((await flushed).delivered).toBe(1);
    await registered[1];
  });

  test("track(e, { waitUntil }) registers the event's own settlement", async () => {
    const ingest = memoryIngest();
    const { client, timers } = setup((c) => ingest.apply(events(c)));
    const registered: Array<Promise<unknown>> = [];
    client.track({ event_type: "a", key: "k" }, { waitUntil: (p) => void registered.push(p) });
    expect(registered.length).toBe(1);
    await drive(registered[0]!, timers);
    expect(ingest.stored.size).toBe(1);
  });
});

/** A page lifecycle the test hides by hand. */
function fakePage() {
  const listeners = new Set<() => void>();
  const page: PageLifecycle = {
    subscribe(onHide) {
      listeners.add(onHide);
      return () => listeners.delete(onHide);
    },
  };
  return { page, hide: () => listeners.forEach((l) => l()), get listeners() {
    return listeners.size;
  } };
}

describe("browsers: flush on page hide", () => {
  test("hiding the page sends what waits at once, in keepalive requests of at most keepaliveMaxBytes, one after another", async () => {
    const ingest = memoryIngest();
    const gates: Array<() => void> = [];
    const p = fakePage();
    const { client, calls } = setup(
      async (c) => {
        await new Promise<void>((r) => gates.push(r));
        return ingest.apply(events(c));
      },
      { page: p.page, flushOnPageHide: true, flushIntervalMs: 60_000 },
    );
    const tracked = Array.from({ length: 40 }, (_, i) => client.track({ event_type: "view", key: "v1", properties: { i, pad: "é".repeat(2000) } }));
    await turns();
    expect(calls.length).toBe(0);
    p.hide();
    await until(() => calls.length === 1, "the first keepalive request");
    await turns();
    // One at a time: the page's keepalive budget is shared.
    expect(calls.length).toBe(1);
    // Each chunk goes once the previous one is answered.
    while (ingest.stored.size < 40) {
      const before = calls.length;
      await until(() => gates.length === 1, "the chunk's request at the server");
      gates.shift()!();
      await until(() => calls.length > before || ingest.stored.size === 40, "the next chunk");
      expect(calls.length - before).toBeLessThanOrEqual(1);
    }
    for (const c of calls) {
      expect(c.keepalive).toBe(true);
      expect(c.bodyBytes).toBeLessThanOrEqual(60 * 1024);
    }
    expect(calls.length).toBeGreaterThan(1);
    expect(calls.flatMap(ids)).toEqual(tracked);
    await until(() => client.stats().delivered === 40, "all acknowledged");
  });

  test("a keepalive request that fails leaves its events buffered, and the client sends them later as usual", async () => {
    const ingest = memoryIngest();
    const p = fakePage();
    const { client, timers, calls } = setup((c) => (c.keepalive ? Promise.reject(new TypeError("page gone")) : ingest.apply(events(c))), { page: p.page, flushOnPageHide: true });
    client.track({ event_type: "view", key: "v" });
    p.hide();
    await until(() => client.stats().delivered === 1, "delivery after the failed keepalive request");
    expect(calls.map((c) => c.keepalive)).toEqual([true, false]);
    expect(ids(calls[1]!)).toEqual(ids(calls[0]!));
    void timers;
  });

  test("browserPage(): visibilitychange to hidden and pagehide call back, visible does not; unsubscribing removes both listeners", () => {
    const doc = Object.assign(new EventTarget(), { visibilityState: "visible" });
    const win = new EventTarget();
    const page = browserPage(doc as never, win as never)!;
    let hides = 0;
    const stop = page.subscribe(() => hides++);
    doc.dispatchEvent(new Event("visibilitychange"));
    expect(hides).toBe(0);
    doc.visibilityState = "hidden";
    doc.dispatchEvent(new Event("visibilitychange"));
    win.dispatchEvent(new Event("pagehide"));
    expect(hides).toBe(2);
    stop();
    doc.dispatchEvent(new Event("visibilitychange"));
    win.dispatchEvent(new Event("pagehide"));
    expect(hides).toBe(2);
    // Outside a page (Bun, Deno, Node, Workers): no lifecycle.
    expect(browserPage()).toBeUndefined();
    expect(browserPage(undefined, win as never)).toBeUndefined();
  });

  test("close() flushes, stops following the page and refuses later events", async () => {
    const ingest = memoryIngest();
    const p = fakePage();
    const { client, timers } = setup((c) => ingest.apply(events(c)), { page: p.page, flushOnPageHide: true });
    expect(p.listeners).toBe(1);
    client.track({ event_type: "t", key: "k" });
    expect((await drive(client.close(), timers)).delivered).toBe(1);
    expect(p.listeners).toBe(0);
    expect(() => client.track({ event_type: "t", key: "k" })).toThrow(KeyflowError);
  });
});

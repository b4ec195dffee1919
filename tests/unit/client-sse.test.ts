import { describe, expect, test } from "bun:test";
import { createClient, KeyflowError, SseParser, type LiveMessage, type SseMessage } from "../../src/client/index.ts";
import { liveMessage } from "../../src/client/live.ts";
import { errorResponse, FakeTimers, scriptedFetch, until } from "../support/client-fakes.ts";

const parseAll = (text: string, parser = new SseParser()) => parser.push(text);

/** A keyflow live stream as src/live/sse.ts writes it. */
const EVENT = { kind: "event", tenant: "default", event_id: "e1", event_type: "click", key: "k", timestamp: "2026-11-21T10:00:00.000Z", received_at: "2026-11-21T10:00:00.000Z", late: false };
const WINDOW = { kind: "window", tenant: "default", key: "k", size: "1m", start: "2026-11-21T10:00:00.000Z", end: "2026-11-21T10:01:00.000Z", revision: 1, final: false, shape: "tumbling", count: 1, sum: 0, min: null, max: null, avg: null, by_type: {} };
const KEYFLOW_STREAM =
  "retry: 1000\n: keyflow live view\n\n" +
  `id: abc.1\nevent: event\ndata: ${JSON.stringify(EVENT)}\n\n` +
  ": keepalive\n\n" +
  `id: abc.2\nevent: window\ndata: ${JSON.stringify(WINDOW)}\n\n`;

describe("SSE parser", () => {
  test("keyflow's live stream: retry, comments and heartbeats skipped, ids and event names kept", () => {
    const parser = new SseParser();
    const messages = parser.push(KEYFLOW_STREAM);
    expect(messages).toEqual([
      { event: "event", data: JSON.stringify(EVENT), id: "abc.1" },
      { event: "window", data: JSON.stringify(WINDOW), id: "abc.2" },
    ]);
    expect(parser.retryMs).toBe(1000);
    expect(parser.lastEventId).toBe("abc.2");
  });

  test("every way of cutting the stream into two chunks gives the same messages, for LF, CRLF and CR line ends", () => {
    const base = "data: one\ndata:  two\n: note\nevent: e\nid: 7\n\ndata\n\nretry: 50\ndata: x\n\n";
    const expected = parseAll(base);
    expect(expected).toEqual([
      { event: "e", data: "one\n two", id: "7" },
      { event: "message", data: "", id: "7" },
      { event: "message", data: "x", id: "7" },
    ]);
    for (const text of [base, base.replaceAll("\n", "\r\n"), base.replaceAll("\n", "\r")]) {
      for (let cut = 0; cut <= text.length; cut++) {
        const parser = new SseParser();
        const got = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
        expect(got).toEqual(expected);
        expect(parser.retryMs).toBe(50);
      }
      // And one character at a time.
      const parser = new SseParser();
      const got: SseMessage[] = [];
      for (const ch of text) got.push(...parser.push(ch));
      expect(got).toEqual(expected);
    }
  });

  test("multi-line data joins with newlines; one leading space is removed, no more", () => {
    expect(parseAll("data:a\ndata: b\ndata:  c\ndata:\n\n")).toEqual([{ event: "message", data: "a\nb\n c\n", id: undefined }]);
  });

  test("a message without data is not dispatched, and its event name does not carry over", () => {
    expect(parseAll("event: ping\n\nid: 3\n\ndata: after\n\n")).toEqual([{ event: "message", data: "after", id: "3" }]);
  });

  test("comments only (heartbeats) dispatch nothing", () => {
    expect(parseAll(": keepalive\n\n: keepalive\n\n")).toEqual([]);
  });

  test("the id persists; an empty id clears it; an id with NUL is ignored; unknown fields are ignored", () => {
    const got = parseAll("id: a\ndata: 1\n\ndata: 2\n\nid: b\0c\ndata: 3\n\nid\ndata: 4\n\nfoo: bar\ndata: 5\n\n");
    expect(got.map((m) => [m.data, m.id])).toEqual([
      ["1", "a"],
      ["2", "a"],
      ["3", "a"],
      ["4", undefined],
      ["5", undefined],
    ]);
  });

  test("retry takes digits only", () => {
    const parser = new SseParser();
    parser.push("retry: 20\n\nretry: 1e3\n\nretry: -5\n\n");
    expect(parser.retryMs).toBe(20);
  });

  test("a leading byte-order mark is skipped; an unterminated message at the end is discarded", () => {
    const parser = new SseParser();
    expect(parser.push("\uFEFFdata: x\n\ndata: unfinished")).toEqual([{ event: "message", data: "x", id: undefined }]);
    parser.end();
    expect(parser.push("\n\n")).toEqual([]);
  });

  test("a resumed stream starts from the Last-Event-ID it was given", () => {
    const parser = new SseParser("abc.9");
    expect(parser.push("data: 1\n\n")[0]!.id).toBe("abc.9");
  });
});

describe("live messages, typed", () => {
  test("event and window records, gap, overflow and end", () => {
    const typed = parseAll(KEYFLOW_STREAM).map(liveMessage);
    expect(typed).toEqual([
      { type: "event", id: "abc.1", record: EVENT as never },
      { type: "window", id: "abc.2", record: WINDOW as never },
    ]);
    expect(liveMessage({ event: "gap", data: '{"last_event_id":"old.3","reason":"gone"}', id: undefined })).toEqual({ type: "gap", id: undefined, last_event_id: "old.3", reason: "gone" });
    expect(liveMessage({ event: "overflow", data: '{"reason":"more than 10 messages unread"}', id: "x.1" })).toEqual({ type: "overflow", id: "x.1", reason: "more than 10 messages unread" });
    expect(liveMessage({ event: "end", data: '{"reason":"the server is closing"}', id: undefined })?.type).toBe("end");
    const alert = { kind: "alert", tenant: "default", key: "u1", rule: "burst", window: { shape: "1m", start: "2026-01-01T00:00:00.000Z", end: "2026-01-01T00:01:00.000Z" }, aggregate: "count", value: 11, event_id: "e-11", fired_at: "2026-01-01T00:00:30.000Z" };
    expect(liveMessage({ event: "alert", data: JSON.stringify(alert), id: "x.2" })).toEqual({ type: "alert", id: "x.2", record: alert as never });
    expect(() => liveMessage({ event: "alert", data: JSON.stringify(WINDOW), id: undefined })).toThrow(/holding a "window" record/);
    expect(liveMessage({ event: "something-new", data: "whatever", id: undefined })).toBeUndefined();
  });

  test("a record that is not JSON, or of the wrong kind, is a KeyflowError", () => {
    expect(() => liveMessage({ event: "event", data: "not json", id: undefined })).toThrow(KeyflowError);
    expect(() => liveMessage({ event: "event", data: JSON.stringify(WINDOW), id: undefined })).toThrow(/holding a "window" record/);
  });
});

/** A streaming answer whose chunks the test pushes, and closes or breaks when it wants. */
function controlledStream() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const encoder = new TextEncoder();
  return {
    response: new Response(body, { headers: { "content-type": "text/event-stream" } }),
    send: (text: string) => controller.enqueue(encoder.encode(text)),
    close: () => controller.close(),
    fail: () => controller.error(new Error("connection reset")),
  };
}

describe("client.live()", () => {
  test("yields typed messages, reconnects after the stream ends with the last Last-Event-ID, and ends quietly on abort", async () => {
    const timers = new FakeTimers();
    const streams: Array<ReturnType<typeof controlledStream>> = [];
    const { fetch, calls } = scriptedFetch(() => {
      const s = controlledStream();
      streams.push(s);
      return s.response;
    });
    const client = createClient({ url: "http://keyflow.test/", key: "kf_x", fetch, timers, now: timers.now, random: () => 0, flushOnPageHide: false });
    const abort = new AbortController();
    const seen: LiveMessage[] = [];
    let opened = 0;
    const done = (async () => {
      for await (const m of client.live("a/b", { signal: abort.signal, onOpen: () => opened++ })) seen.push(m);
    })();
    await until(() => opened === 1, "the first connection");
    expect(calls[0]!.url).toBe("http://keyflow.test/v1/actors/a%2Fb/live");
    expect(calls[0]!.headers.authorization).toBe("Bearer kf_x");
    expect(calls[0]!.headers.accept).toBe("text/event-stream");
    expect(calls[0]!.headers["last-event-id"]).toBeUndefined();
    streams[0]!.send(KEYFLOW_STREAM.slice(0, 50));
    streams[0]!.send(KEYFLOW_STREAM.slice(50));
    await until(() => seen.length === 2, "both records");
    expect(seen.map((m) => m.type)).toEqual(["event", "window"]);
    const first = seen[0]!;
    if (first.type !== "event") throw new Error("not an event");
    expect(first.record.event_id).toBe("e1");

    // The server ends the stream (overflow): the client reconnects after `retry:` (1000 ms, no jitter here) from abc.2.
    streams[0]!.send('event: overflow\ndata: {"reason":"more than 10 messages unread"}\n\n');
    streams[0]!.close();
    await until(() => seen.length === 3 && timers.pending().includes(1000), "the reconnection wait");
    expect(seen[2]).toEqual({ type: "overflow", id: "abc.2", reason: "more than 10 messages unread" });
    timers.runNext();
    await until(() => opened === 2, "the second connection");
    expect(calls[1]!.headers["last-event-id"]).toBe("abc.2");

    // A broken connection also reconnects, from the last ID seen.
    streams[1]!.send(`id: abc.3\nevent: event\ndata: ${JSON.stringify({ ...EVENT, event_id: "e2" })}\n\n`);
    await until(() => seen.length === 4, "the resumed record");
    streams[1]!.fail();
    await until(() => timers.pending().includes(1000), "the wait after a reset");
    timers.runNext();
    await until(() => opened === 3, "the third connection");
    expect(calls[2]!.headers["last-event-id"]).toBe("abc.3");

    abort.abort();
    await done;
    expect(seen.map((m) => m.type)).toEqual(["event", "window", "overflow", "event"]);
  });

  test("a 4xx is thrown as a KeyflowError; a 429 is retried after its Retry-After", async () => {
    const timers = new FakeTimers();
    let n = 0;
    const { fetch } = scriptedFetch(() => (n++ === 0 ? errorResponse(429, "too_many_streams", { "Retry-After": "5" }) : errorResponse(404, "not_found")));
    const client = createClient({ url: "http://keyflow.test", fetch, timers, now: timers.now, flushOnPageHide: false });
    const failed = (async () => {
      for await (const _ of client.live("k")) throw new Error("no message expected");
    })().catch((e: unknown) => e);
    await until(() => timers.pending().includes(5000), "the Retry-After wait");
    timers.runNext();
    const error = (await failed) as KeyflowError;
    expect(error).toBeInstanceOf(KeyflowError);
    expect(error.status).toBe(404);
    expect(error.code).toBe("not_found");
  });

  test("breaking out of for-await cancels the stream", async () => {
    const s = controlledStream();
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(`id: abc.1\nevent: event\ndata: ${JSON.stringify(EVENT)}\n\n`));
      },
      cancel() {
        cancelled = true;
      },
    });
    void s;
    const client = createClient({ url: "http://keyflow.test", fetch: async () => new Response(body), flushOnPageHide: false });
    for await (const m of client.live("k")) {
      expect(m.type).toBe("event");
      break;
    }
    expect(cancelled).toBe(true);
  });
});

import { describe, expect, test } from "bun:test";
import { EventBuffer, utf8Length, type Entry } from "../../src/client/buffer.ts";
import { createClient, KeyflowError, type DeliveryProblem } from "../../src/client/index.ts";
import { drive, FakeTimers, memoryIngest, scriptedFetch } from "../support/client-fakes.ts";

const entry = (seq: number, bytes = 10): Entry => ({ seq, id: `e${seq}`, json: "x".repeat(bytes), bytes });
const seqs = (entries: Entry[]) => entries.map((e) => e.seq);

describe("the bounded buffer", () => {
  test("drop-oldest: at capacity the oldest waiting event makes room", () => {
    const b = new EventBuffer(3, "drop-oldest");
    expect([1, 2, 3].map((s) => b.offer(entry(s), 0))).toEqual([undefined, undefined, undefined]);
    expect(b.offer(entry(4), 0)?.seq).toBe(1);
    expect(b.offer(entry(5), 0)?.seq).toBe(2);
    expect(seqs(b.take(10, Infinity))).toEqual([3, 4, 5]);
  });

  test("drop-newest: at capacity the new event is the one dropped", () => {
    const b = new EventBuffer(3, "drop-newest");
    for (const s of [1, 2, 3]) b.offer(entry(s), 0);
    expect(b.offer(entry(4), 0)?.seq).toBe(4);
    expect(seqs(b.take(10, Infinity))).toEqual([1, 2, 3]);
  });

  test("throw: at capacity offer throws a KeyflowError buffer_full and keeps what it had", () => {
    const b = new EventBuffer(2, "throw");
    b.offer(entry(1), 0);
    b.offer(entry(2), 0);
    let error: unknown;
    try {
      b.offer(entry(3), 0);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KeyflowError);
    expect((error as KeyflowError).code).toBe("buffer_full");
    expect(b.length).toBe(2);
  });

  test("events in flight count against the capacity; with nothing waiting, drop-oldest drops the new event", () => {
    const b = new EventBuffer(3, "drop-oldest");
    b.offer(entry(1), 0);
    expect(b.offer(entry(2), 2)?.seq).toBe(1);
    expect(b.offer(entry(3), 3)?.seq).toBe(2);
    expect(b.length).toBe(1);
    const empty = new EventBuffer(2, "drop-oldest");
    expect(empty.offer(entry(9), 2)?.seq).toBe(9);
  });

  test("take: by count and by bytes (always at least one event); requeue restores seq order; bytes are tracked", () => {
    const b = new EventBuffer(100, "throw");
    for (let s = 1; s <= 10; s++) b.offer(entry(s, 100), 0);
    expect(b.bytes).toBe(1000);
    expect(seqs(b.take(3, Infinity))).toEqual([1, 2, 3]);
    // [ + 100 + , + 100 + ] = 203 bytes for two; a third would make 304.
    const two = b.take(10, 303);
    expect(seqs(two)).toEqual([4, 5]);
    expect(seqs(b.take(10, 1))).toEqual([6]);
    expect(b.bytes).toBe(400);
    b.requeue([entry(5, 100), entry(1, 100)]);
    expect(b.minSeq).toBe(1);
    expect(b.bytes).toBe(600);
    expect(seqs(b.take(100, Infinity))).toEqual([1, 5, 7, 8, 9, 10]);
    expect(b.length).toBe(0);
    expect(b.minSeq).toBeUndefined();
  });

  test("UTF-8 lengths count multi-byte characters and surrogate pairs", () => {
    for (const s of ["abc", "é", "€", "😀", "a😀é€", "\ud800", "\udc00x"]) expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length);
  });
});

describe("the client's overflow policy", () => {
  async function overflowRun(overflow: "drop-oldest" | "drop-newest" | "throw") {
    const timers = new FakeTimers();
    const ingest = memoryIngest();
    // The server holds the first batch's answer until the test lets it go: meanwhile the buffer fills.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { fetch } = scriptedFetch(async (call) => {
      await gate;
      return ingest.apply(call.body as Array<{ event_id: string }>);
    });
    const problems: DeliveryProblem[] = [];
    const client = createClient({ url: "http://k.test", fetch, timers, now: timers.now, maxBatchEvents: 4, maxBufferedEvents: 10, overflow, onError: (p) => problems.push(p), flushOnPageHide: false });
    const ids: string[] = [];
    const thrown: unknown[] = [];
    for (let i = 0; i < 15; i++) {
      try {
        ids.push(client.track({ event_type: "t", key: "k", properties: { i } }));
      } catch (e) {
        thrown.push(e);
      }
    }
    release();
    const report = await drive(client.flush(), timers);
    const stored = [...ingest.stored.values()].map((e) => (e as { properties: { i: number } }).properties.i).sort((a, b) => a - b);
    return { client, report, problems, thrown, stored, ids };
  }

  test("drop-oldest (the default): the newest events are kept, the oldest waiting ones dropped, counted and reported", async () => {
    const { client, report, problems, stored } = await overflowRun("drop-oldest");
    // 4 in flight (the first batch) + 6 waiting = 10 held; events 4..8 made room for 10..14.
    expect(stored).toEqual([0, 1, 2, 3, 9, 10, 11, 12, 13, 14]);
    expect(client.stats()).toMatchObject({ tracked: 15, delivered: 10, dropped: 5, buffered: 0, inFlight: 0 });
    // The drops happened before flush() was called: onError told of them; the flush covers what was held then.
    const dropped = problems.flatMap((p) => (p.kind === "dropped" ? p.problems : []));
    expect(dropped.map((p) => (p.event.properties as { i: number }).i)).toEqual([4, 5, 6, 7, 8]);
    expect(dropped[0]!.error.code).toBe("buffer_full");
    expect(problems.every((p) => p.kind === "dropped")).toBe(true);
    expect(report).toMatchObject({ ok: true, delivered: 10, dropped: [] });
  });

  test("drop-newest: what was tracked first is kept", async () => {
    const { client, problems, stored } = await overflowRun("drop-newest");
    expect(stored).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(client.stats()).toMatchObject({ tracked: 15, delivered: 10, dropped: 5 });
    expect(problems.flatMap((p) => p.problems).map((p) => (p.event.properties as { i: number }).i)).toEqual([10, 11, 12, 13, 14]);
  });

  test("throw: track() throws buffer_full, nothing is dropped behind the caller's back", async () => {
    const { client, report, thrown, stored, ids } = await overflowRun("throw");
    expect(stored).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(ids.length).toBe(10);
    expect(thrown.length).toBe(5);
    expect(thrown.every((e) => e instanceof KeyflowError && e.code === "buffer_full")).toBe(true);
    expect(client.stats()).toMatchObject({ tracked: 10, delivered: 10, dropped: 0 });
    expect(report.ok).toBe(true);
  });
});

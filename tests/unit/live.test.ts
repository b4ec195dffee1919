import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/http/app.ts";
import { OPEN_ACCESS } from "../../src/http/access.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { StorageError } from "../../src/http/gateway.ts";
import type { Event } from "../../src/actor/event.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { LiveFeed, LiveFeeds } from "../../src/live/feed.ts";
import { KEEPALIVE_MS } from "../../src/live/sse.ts";
import { FlakyStore } from "../support/flaky-store.ts";
import { fakeEnv } from "../support/fake-env.ts";
import { sseReader, type SseMessage } from "../support/sse.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const config: Config = {
  ...DEFAULT_CONFIG,
  windows: ["1m"].map((s) => parseWindowSpec(s) as WindowSpec),
  allowedLatenessMs: 10_000,
  idleTimeoutMs: 30_000,
};

function setup(overrides: Partial<Config> = {}, store = new FlakyStore()) {
  const fake = fakeEnv(T0 + 30_000);
  const runtime = new ProcessHost({ store, config: { ...config, ...overrides }, clock: fake.clock, random: fake.random, timers: fake.timers });
  const ingest = async (events: Event[]) => {
    const pending = runtime.ingest(events);
    fake.timers.advance(0);
    return await pending;
  };
  return { ...fake, store, runtime, ingest };
}

const ev = (key: string, id: string, ts: number, value = 1): Event => ({ id, assigned: false, type: "purchase", key, ts, value });
const eventIds = (messages: SseMessage[]) => messages.filter((m) => m.event === "event").map((m) => JSON.parse(m.data).event_id);

describe("live views", () => {
  test("a commit that fails publishes nothing; its retry is published once", async () => {
    const { runtime, ingest, store, timers } = setup();
    const live = sseReader(new Response(await runtime.live("k", null)));
    await ingest([ev("k", "a", T0)]);
    store.failures = 1;
    const failing = runtime.ingest([ev("k", "b", T0 + 1)]);
    timers.advance(0);
    await expect(failing).rejects.toBeInstanceOf(StorageError);
    await ingest([ev("k", "c", T0 + 2)]);
    await live.until((m) => m.event === "event" && JSON.parse(m.data).event_id === "c");
    expect(eventIds(live.messages)).toEqual(["a", "c"]);
    await live.cancel();
  });

  test("an evicted actor reloaded from storage keeps feeding its watchers, without replaying old items", async () => {
    const { runtime, ingest } = setup({ maxActorsInMemory: 2 });
    const live = sseReader(new Response(await runtime.live("watched", null)));
    await ingest([ev("watched", "w1", T0)]);
    for (let i = 0; i < 5; i++) await ingest([ev(`other-${i}`, `o${i}`, T0)]);
    expect(runtime.peek("watched")).toBeUndefined();
    await ingest([ev("watched", "w2", T0 + 1)]);
    await live.until((m) => m.event === "event" && JSON.parse(m.data).event_id === "w2");
    expect(eventIds(live.messages)).toEqual(["w1", "w2"]);
    await live.cancel();
  });

  test("keepalive comments on a quiet stream, from the host's timers", async () => {
    const { runtime, timers } = setup();
    const stream = await runtime.live("quiet", null);
    const reader = stream.getReader();
    const text = async () => new TextDecoder().decode((await reader.read()).value);
    expect(await text()).toContain(": keyflow live view");
    timers.advance(KEEPALIVE_MS);
    expect(await text()).toBe(": keepalive\n\n");
    await reader.cancel();
  });

  test("a client that falls behind gets event: overflow and its stream ends; it may resume", async () => {
    const { runtime, ingest } = setup({ liveMaxQueued: 3 });
    const stream = await runtime.live("fast", null);
    // Nobody reads: the queue fills with the greeting and two commits' messages, then overflows.
    for (let i = 0; i < 5; i++) await ingest([ev("fast", `f${i}`, T0 + i)]);
    const live = sseReader(new Response(stream));
    await live.until((m) => m.event === "overflow");
    await expect(live.until(() => false, 1_000)).rejects.toThrow("the stream ended first");
  });

  test("retention: a resume past what is retained says so with event: gap, then sends what is", async () => {
    const { runtime, ingest } = setup({ liveRetain: 4 });
    const first = sseReader(new Response(await runtime.live("k", null)));
    await ingest([ev("k", "a", T0)]);
    const a = await first.until((m) => m.event === "event");
    await first.cancel();
    // Each event adds an event and a window update: 10 more items, 4 retained.
    for (const id of ["b", "c", "d", "e", "f"]) await ingest([ev("k", id, T0 + 1)]);
    const resumed = sseReader(new Response(await runtime.live("k", a.id!)));
    await resumed.until((m) => m.event === "gap");
    await resumed.until((m) => m.event === "event" && JSON.parse(m.data).event_id === "f");
    expect(eventIds(resumed.messages)).toEqual(["e", "f"]);
    await resumed.cancel();
  });

  test("the host's close ends every stream with event: end", async () => {
    const { runtime } = setup();
    const live = sseReader(new Response(await runtime.live("k", null)));
    await runtime.close();
    await live.until((m) => m.event === "end");
  });
});

describe("live feeds", () => {
  test("numbers carry on after a discard: a failed commit's numbers are reused, never skipped or repeated", () => {
    const feed = new LiveFeed("x", 10);
    const seen: number[] = [];
    feed.subscribe({ deliver: (items) => seen.push(...items.map((i) => i.seq)), end() {} });
    const record = { kind: "event", key: "k", id: "a", type: "t", ts: 0, receivedAt: 0, late: false } as const;
    feed.push(record);
    feed.publish();
    feed.push(record);
    feed.discard();
    feed.push(record);
    feed.publish();
    expect(seen).toEqual([1, 2]);
  });

  test("beyond the bound the least recently opened unwatched feed is dropped, and its actor told", () => {
    const dropped: string[] = [];
    let n = 0;
    const feeds = new LiveFeeds(10, 2, () => `i${n++}`, (key) => dropped.push(key));
    const watched = feeds.open("a", () => {});
    const unsubscribe = watched.subscribe({ deliver() {}, end() {} });
    feeds.open("b", () => {});
    feeds.open("c", () => {});
    expect(dropped).toEqual(["b"]);
    unsubscribe();
    feeds.open("d", () => {});
    expect(dropped).toEqual(["b", "a"]);
  });
});

describe("GET /v1/actors/:key/live", () => {
  test("streams per tenant are bounded: 429 too_many_streams, and a closed stream frees its place", async () => {
    const { runtime, clock } = setup({ liveMaxStreams: 2 });
    const app = createApp({ backend: runtime, config: { ...config, liveMaxStreams: 2 }, env: { clock, random: { next: () => 0.5 } }, host: "memory", access: OPEN_ACCESS });
    const open = () => app.request("/v1/actors/k/live");
    const first = await open();
    const second = await open();
    expect([first.status, second.status]).toEqual([200, 200]);
    const refused = await open();
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as any).error.code).toBe("too_many_streams");
    await first.body!.cancel();
    const third = await open();
    expect(third.status).toBe(200);
    await second.body!.cancel();
    await third.body!.cancel();
  });

  test("a WebSocket upgrade on a host that streams server-sent events is a 400 saying so", async () => {
    const { runtime, clock } = setup();
    const app = createApp({ backend: runtime, config, env: { clock, random: { next: () => 0.5 } }, host: "bun", access: OPEN_ACCESS });
    const res = await app.request("/v1/actors/k/live", { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe("websocket_unsupported");
  });

  test("a Last-Event-ID that is not one of ours is a 400 naming the field", async () => {
    const { runtime, clock } = setup();
    const app = createApp({ backend: runtime, config, env: { clock, random: { next: () => 0.5 } }, host: "memory", access: OPEN_ACCESS });
    for (const id of ["abc", "a.b", "x".repeat(70) + ".1", "a.1\nevent: spoof"]) {
      const res = await app.request(`/v1/actors/k/live?last_event_id=${encodeURIComponent(id)}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).error.details[0].field).toBe("last_event_id");
    }
  });
});

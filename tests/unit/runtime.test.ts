import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/http/app.ts";
import { OPEN_ACCESS } from "../../src/http/access.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { StorageError } from "../../src/http/gateway.ts";
import type { Event } from "../../src/actor/event.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { FlakyStore } from "../support/flaky-store.ts";
import { fakeEnv } from "../support/fake-env.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const config: Config = {
  ...DEFAULT_CONFIG,
  windows: ["1m", "1h"].map((s) => parseWindowSpec(s) as WindowSpec),
  allowedLatenessMs: 10_000,
  idleTimeoutMs: 30_000,
};


function setup(store = new FlakyStore(), overrides: Partial<Config> = {}) {
  const fake = fakeEnv(T0 + 30_000);
  const runtime = new ProcessHost({ store, config: { ...config, ...overrides }, clock: fake.clock, random: fake.random, timers: fake.timers });
  return { ...fake, store, runtime };
}

const ev = (key: string, id: string, ts: number, value?: number): Event => ({
  id,
  assigned: false,
  type: "purchase",
  key,
  ts,
  ...(value === undefined ? {} : { value }),
});

describe("ProcessHost", () => {
  test("group commit: concurrent ingests across keys share one storage transaction, acked only after it", async () => {
    const { runtime, timers } = setup();
    let acked = 0;
    const calls = Array.from({ length: 100 }, (_, i) => runtime.ingest([ev(`k${i % 10}`, `e${i}`, T0 + i)]).then((o) => (acked++, o)));
    await Bun.sleep(0);
    expect(acked).toBe(0);
    expect(runtime.stats.commits).toBe(0);
    timers.advance(0);
    const outcomes = await Promise.all(calls);
    expect(acked).toBe(100);
    expect(outcomes.every(([o]) => o!.status === "accepted")).toBe(true);
    expect(runtime.stats.commits).toBe(1);
  });

  test("a 10,000-event batch for one key costs a few rows, not one per event", async () => {
    const { runtime, timers } = setup();
    const events = Array.from({ length: 10_000 }, (_, i) => ev("hot", `h${i}`, T0 + i, i));
    const pending = runtime.ingest(events);
    timers.advance(0);
    await pending;
    expect(runtime.stats.commits).toBe(1);
    // state row, dedupe segments (8,192 ids each), schedule row
    expect(runtime.stats.rowsWritten).toBeLessThanOrEqual(5);
  });

  test("a failed commit acknowledges nothing and leaves no half-applied state", async () => {
    const { runtime, timers, store } = setup();
    const first = runtime.ingest([ev("k", "a", T0, 1)]);
    timers.advance(0);
    await first;
    const before = await runtime.state("k");

    store.failures = 1;
    const failing = runtime.ingest([ev("k", "b", T0 + 1, 2), ev("k", "a", T0, 1)]);
    timers.advance(0);
    await expect(failing).rejects.toBeInstanceOf(StorageError);
    expect(await runtime.state("k")).toEqual(before);

    // The failed event was never acknowledged, so its retry is new, not a duplicate.
    const retry = runtime.ingest([ev("k", "b", T0 + 1, 2)]);
    timers.advance(0);
    expect(await retry).toEqual([{ status: "accepted" }]);
    const windows = await runtime.windows("k", { spec: "1m", limit: 10 });
    expect(windows![0]).toMatchObject({ count: 2, sum: 3 });
  });

  test("the HTTP app answers 503 storage_unavailable when a commit fails", async () => {
    const fake = fakeEnv(T0);
    const store = new FlakyStore();
    store.failures = 1;
    const runtime = new ProcessHost({
      store,
      config,
      clock: fake.clock,
      random: fake.random,
      timers: { setTimeout: (fn) => setTimeout(fn, 0), clearTimeout },
    });
    const app = createApp({ backend: runtime, config, env: fake.env, host: "memory", access: OPEN_ACCESS });
    const res = await app.request("/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ event_id: "x", event_type: "purchase", user_id: "u", timestamp: T0 }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as any).error.code).toBe("storage_unavailable");
    expect(await runtime.state("u")).toBeNull();
    await runtime.close();
  });

  test("reads wait for the commit of what they show", async () => {
    const { runtime, timers } = setup();
    void runtime.ingest([ev("k", "a", T0)]);
    let read = false;
    const state = runtime.state("k").then((s) => ((read = true), s));
    await Bun.sleep(0);
    expect(read).toBe(false);
    timers.advance(0);
    expect((await state)!.totals.events).toBe(1);
  });

  test("a new runtime on the same store resumes identical state and still rejects duplicates", async () => {
    const store = new FlakyStore();
    const a = setup(store);
    const p = a.runtime.ingest([ev("k", "a", T0, 5), ev("k", "b", T0 + 70_000, 6), ev("k", "c", T0 + 1_000, 7)]);
    a.timers.advance(0);
    await p;
    const before = await a.runtime.state("k");
    await a.runtime.close();

    const b = setup(store);
    expect(await b.runtime.state("k")).toEqual(before);
    const retry = b.runtime.ingest([ev("k", "b", T0 + 70_000, 6)]);
    b.timers.advance(0);
    expect(await retry).toEqual([{ status: "duplicate" }]);
  });

  test("a quiet key's windows close on its wake timer, also after a restart with no traffic", async () => {
    const store = new FlakyStore();
    const a = setup(store);
    const p = a.runtime.ingest([ev("quiet", "q1", T0 + 10_000, 1)]);
    a.timers.advance(0);
    await p;
    await a.runtime.close();

    // Restarted: nothing touches the key, yet its 1m window closes once the idle watermark passes end + lateness.
    const b = setup(store);
    b.timers.advance(60_000);
    await b.runtime.commit();
    const state = await b.runtime.state("quiet");
    expect(state!.recently_closed_windows.map((w) => [w.size, w.closed_by])).toEqual([["1m", "idle"]]);
    expect(state!.open_windows.map((w) => w.size)).toEqual(["1h"]);
    b.timers.advance(3_600_000);
    await b.runtime.commit();
    const later = await b.runtime.state("quiet");
    expect(later!.open_windows).toEqual([]);
    expect(later!.recently_closed_windows.map((w) => w.size)).toEqual(["1m", "1h"]);
  });

  test("memory stays bounded: idle actors are evicted and reload on demand", async () => {
    const { runtime, timers } = setup(new FlakyStore(), { maxActorsInMemory: 10 });
    const p = runtime.ingest(Array.from({ length: 50 }, (_, i) => ev(`key${i}`, "e", T0, i)));
    timers.advance(0);
    await p;
    expect(runtime.loadedActors).toBeLessThanOrEqual(10);
    expect(runtime.stats.actorsEvicted).toBeGreaterThanOrEqual(40);
    const windows = await runtime.windows("key3", { spec: "1m", limit: 10 });
    expect(windows![0]).toMatchObject({ count: 1, sum: 3 });
  });
});

describe("system timers", () => {
  test("a group commit ends with the I/O turn (setImmediate), not behind a zero-delay timer, which Bun clamps to ~1 ms", async () => {
    const { systemTimers } = await import("../../src/ports/system.ts");
    expect(systemTimers.defer).toBeFunction();
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      setTimeout(() => (order.push("timeout"), resolve()), 0);
      systemTimers.defer!(() => order.push("defer"));
    });
    expect(order).toEqual(["defer", "timeout"]);
  });
});

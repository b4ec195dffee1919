import { describe, expect, test } from "bun:test";
import { Actor } from "../../src/actor/actor.ts";
import { render } from "../../src/http/views.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { groupByKey, type Event } from "../../src/actor/event.ts";
import { decodeJournal, encodeJournal, type Command } from "../../src/hosts/process/journal.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { FlakyStore } from "../support/flaky-store.ts";
import { fakeEnv, SeededRandom } from "../support/fake-env.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const config: Config = {
  ...DEFAULT_CONFIG,
  windows: ["1m", "5m/1m"].map((s) => parseWindowSpec(s) as WindowSpec),
  allowedLatenessMs: 5_000,
  // No idle closing within these tests, so the reference actors need no ticks to stay comparable.
  idleTimeoutMs: 365 * 86_400_000,
  checkpointIntervalMs: 1_000,
};

function open(store: FlakyStore, at: number) {
  const fake = fakeEnv(at);
  const runtime = new ProcessHost({ store, config, clock: fake.clock, random: fake.random, timers: fake.timers });
  return { runtime, ...fake };
}

const ev = (key: string, id: string, ts: number, value?: number): Event => ({
  id,
  assigned: false,
  type: "buy",
  key,
  ts,
  ...(value === undefined ? {} : { value }),
});

describe("commit journal", () => {
  test("encodes and decodes every command losslessly", () => {
    const commands: Command[] = [
      { kind: "ingest", key: "k", now: 5, events: [ev("k", "a", 1, 2.5), { ...ev("k", "b", 2), assigned: true, properties: { x: [1, { y: null }] } }] },
      { kind: "ingest", key: "k2", now: 6, events: [ev("k2", "c", 3)] },
      { kind: "tick", key: "k", now: 7 },
      { kind: "settle", sink: "redis", now: 8, settlements: [{ key: "k", from: -1, upTo: 3, dead: [] }, { key: "k2", from: -1, upTo: 1, dead: [{ n: 0, error: "WRONGTYPE", attempts: 1 }] }] },
      { kind: "replay", key: "k2", now: 9, sink: "redis", ids: [0] },
      { kind: "replay", key: "k", now: 10 },
    ];
    expect(decodeJournal(encodeJournal(commands))).toEqual(commands);
  });

  test("journal rows written before commands were journaled (ingests only) still decode", () => {
    const legacy = JSON.stringify([["k", 5, [["a", "buy", 1, 2.5, null, 0]]]]);
    expect(decodeJournal(legacy)).toEqual([{ kind: "ingest", key: "k", now: 5, events: [ev("k", "a", 1, 2.5)] }]);
  });

  test("a commit of many keys writes one journal row, not rows per actor; a checkpoint later writes the actors", async () => {
    const store = new FlakyStore();
    const { runtime, timers } = open(store, T0);
    const first = runtime.ingest(Array.from({ length: 100 }, (_, i) => ev(`k${i}`, `a${i}`, T0 + i)));
    timers.advance(0);
    await first;
    const afterFirst = runtime.stats.rowsWritten;
    const second = runtime.ingest(Array.from({ length: 100 }, (_, i) => ev(`k${i}`, `b${i}`, T0 + i)));
    timers.advance(0);
    await second;
    // Same keys again, schedules unchanged: the whole commit is the journal row.
    expect(runtime.stats.rowsWritten - afterFirst).toBe(1);
    expect(store.journalRows()).toBe(2);
    expect(runtime.stats.checkpoints).toBe(0);

    expect(runtime.health()).toMatchObject({ journal_rows: 2, actors_pending_checkpoint: 100, checkpoints: 0 });
    timers.advance(config.checkpointIntervalMs);
    expect(runtime.health()).toMatchObject({ journal_rows: 0, actors_pending_checkpoint: 0, checkpoints: 100 });
    expect(runtime.stats.checkpoints).toBe(100);
    expect(store.journalRows()).toBe(0);
    expect((await runtime.state("k7"))!.totals.events).toBe(2);
  });

  test("a commit stops taking checkpoints past 256 KiB of rows: the rest stay journaled, and a crash in between loses nothing", async () => {
    const store = new FlakyStore();
    const { runtime, timers } = open(store, T0 + 3_600_000);
    // Each key gets 200 late events with long ids: its late log alone is some 60 KiB of rows.
    const keys = Array.from({ length: 20 }, (_, k) => `big${k}`);
    for (const key of keys) {
      const p = runtime.ingest([ev(key, `${key}-now`, T0 + 3_600_000), ...Array.from({ length: 200 }, (_, i) => ev(key, `${key}-${"x".repeat(200)}-${i}`, T0 + i))]);
      timers.advance(0);
      await p;
    }
    expect(runtime.stats.checkpoints).toBe(0);
    timers.advance(config.checkpointIntervalMs);
    // The checkpoint timer's commit took only some of the twenty (about 1.2 MB); the commits right after it took the rest.
    expect(runtime.stats.checkpoints).toBe(20);
    const sizes = store.commitSizes().filter((c) => c.checkpointChars > 0);
    expect(sizes.length).toBeGreaterThanOrEqual(4);
    for (const c of sizes) expect(c.checkpointChars).toBeLessThan(256 * 1024 + 80 * 1024);
    const before = await Promise.all(keys.map((k) => runtime.state(k)));
    // A restart from the store (no close) sees every key as it was.
    const again = open(store, T0 + 3_600_000 + 2_000);
    expect(await Promise.all(keys.map((k) => again.runtime.state(k)))).toEqual(before);
    expect((await again.runtime.late("big3"))!.length).toBe(200);
  });

  test("a crash before any checkpoint loses nothing acknowledged: the next runtime replays the journal", async () => {
    const store = new FlakyStore();
    const a = open(store, T0);
    const p = a.runtime.ingest([ev("k", "a", T0, 5), ev("k", "b", T0 + 70_000, 6), ev("j", "c", T0 + 1_000, 7)]);
    a.timers.advance(0);
    await p;
    const before = [await a.runtime.state("k"), await a.runtime.state("j")];
    expect(store.journalRows()).toBe(1);
    // No close(): the process died. Its rows hold nothing of k or j but the schedule.
    const b = open(store, T0 + 10);
    expect([await b.runtime.state("k"), await b.runtime.state("j")]).toEqual(before);
    expect(b.runtime.stats.replayed).toBe(2);
    const retry = b.runtime.ingest([ev("k", "b", T0 + 70_000, 6)]);
    b.timers.advance(0);
    expect(await retry).toEqual([{ status: "duplicate" }]);
    await b.runtime.close();
    expect(store.journalRows()).toBe(0);
  });

  test("a quiet key known only from the journal still closes its windows on time after a crash", async () => {
    const store = new FlakyStore();
    const quiet = { ...config, idleTimeoutMs: 30_000 };
    const fake = fakeEnv(T0);
    const a = new ProcessHost({ store, config: quiet, clock: fake.clock, random: fake.random, timers: fake.timers });
    const p = a.ingest([ev("quiet", "q1", T0 - 50_000, 1)]);
    fake.timers.advance(0);
    await p;
    expect(store.list("s/")).toEqual([]);
    const later = fakeEnv(T0 + 10);
    const b = new ProcessHost({ store, config: quiet, clock: later.clock, random: later.random, timers: later.timers });
    later.timers.advance(60_000);
    await b.commit();
    const state = await b.state("quiet");
    expect(state!.recently_closed_windows.map((w) => [w.size, w.closed_by])).toEqual([["5m/1m", "idle"], ["1m", "idle"]]);
  });

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`randomized crashes, failed commits and checkpoints match a reference actor per key (seed ${seed})`, async () => {
      const rng = new SeededRandom(seed);
      const store = new FlakyStore();
      let at = T0;
      let host = open(store, at);
      const reference = new Map<string, Actor>();
      const refActor = (key: string) => reference.get(key) ?? reference.set(key, new Actor(key, config)).get(key)!;
      const randomEvent = () => {
        const key = `k${rng.int(6)}`;
        return ev(key, `e${rng.int(80)}`, at - 20_000 + rng.int(40_000), rng.chance(0.8) ? rng.int(100) : undefined);
      };
      const compare = async () => {
        for (const [key, actor] of reference) expect(await host.runtime.state(key)).toEqual(render.state(actor));
      };

      for (let step = 0; step < 300; step++) {
        const roll = rng.next();
        if (roll < 0.55) {
          // One turn: one or more concurrent requests, maybe a failing commit.
          const requests = Array.from({ length: 1 + rng.int(3) }, () => Array.from({ length: 1 + rng.int(5) }, randomEvent));
          const fail = rng.chance(0.1);
          if (fail) store.failures = 1;
          const now = host.clock.now();
          const calls = requests.map((events) => host.runtime.ingest(events).then(() => true, () => false));
          host.timers.advance(0);
          const results = await Promise.all(calls);
          expect(results.every((ok) => ok === !fail)).toBe(true);
          if (!fail) {
            for (const events of requests) {
              for (const [key, indexes] of groupByKey(events)) refActor(key).ingest(indexes.map((i) => events[i]!), now);
            }
          }
          store.failures = 0;
        } else if (roll < 0.8) {
          host.timers.advance(rng.int(1_500));
        } else if (roll < 0.9) {
          // Crash: the process is gone, its timers with it; a new one opens the same store.
          at = host.clock.now() + rng.int(100);
          host = open(store, at);
        } else {
          await host.runtime.close();
          expect(store.journalRows()).toBe(0);
          at = host.clock.now() + rng.int(100);
          host = open(store, at);
        }
        at = host.clock.now();
        if (step % 25 === 0) await compare();
      }
      await compare();
      // Quiet for a checkpoint interval: every actor is in its own rows and the journal is empty.
      host.timers.advance(config.checkpointIntervalMs + 1);
      expect(store.journalRows()).toBe(0);
      host = open(store, host.clock.now());
      expect(host.runtime.stats.replayed).toBe(0);
      await compare();
    });
  }
});

describe("commit journal with delivery", () => {
  const { FakeSink } = require("../support/fake-sink.ts") as typeof import("../support/fake-sink.ts");
  const withSink: Config = {
    ...config,
    windows: [parseWindowSpec("1m") as WindowSpec],
    sinks: ["s"],
    delivery: { ...DEFAULT_CONFIG.delivery, batchSize: 20, backoffBaseMs: 20, backoffMaxMs: 200, breakerThreshold: 3, breakerCooldownMs: 100 },
  };

  for (const seed of [11, 12, 13, 14, 15, 16]) {
    test(`random crashes, failed commits and sink faults: the sink ends with every acknowledged event once, in per-key order (seed ${seed})`, async () => {
      const rng = new SeededRandom(seed);
      const store = new FlakyStore();
      const sink = new FakeSink("s");
      const start = (at: number) => {
        const fake = fakeEnv(at, seed);
        const runtime = new ProcessHost({ store, config: withSink, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [sink] });
        return { runtime, ...fake };
      };
      let host = start(T0);
      const run = async (ms: number) => {
        for (let t = 0; t < ms; t += 10) {
          host.timers.advance(10);
          for (let i = 0; i < 4; i++) await Bun.sleep(0);
        }
      };
      const acknowledged = new Map<string, string[]>();
      let next = 0;
      for (let step = 0; step < 150; step++) {
        const roll = rng.next();
        if (roll < 0.5) {
          const events = Array.from({ length: 1 + rng.int(4) }, () => {
            const key = `k${rng.int(4)}`;
            // Mostly new ids, some retries of acknowledged ones (duplicates).
            const old = acknowledged.get(key);
            const id = old?.length && rng.chance(0.2) ? old[rng.int(old.length)]! : `e${next++}`;
            return ev(key, id, host.clock.now() - rng.int(5_000), rng.int(50));
          });
          if (rng.chance(0.1)) store.failures = 1;
          const result = host.runtime.ingest(events).catch(() => null);
          host.timers.advance(0);
          const outcomes = await result;
          store.failures = 0;
          outcomes?.forEach((o, i) => {
            const e = events[i]!;
            if (o.status === "accepted") (acknowledged.get(e.key) ?? acknowledged.set(e.key, []).get(e.key)!).push(e.id);
          });
        } else if (roll < 0.7) {
          await run(10 + rng.int(300));
        } else if (roll < 0.8) {
          sink.down = rng.int(4);
          sink.lieNext = rng.int(2);
        } else if (roll < 0.9) {
          if (rng.chance(0.3)) store.failures = 1;
          await run(20);
          store.failures = 0;
        } else {
          host = start(host.clock.now() + rng.int(50)); // crash: timers and memory gone
        }
      }
      // A last crash, so that what is still undelivered must be found again by the restarted host alone
      // (journal replay, backlog marks), with no new ingest to wake its keys. Then no more faults:
      // everything must converge.
      // The sink is down meanwhile, so records wait: in the journal (crash before the checkpoint) or
      // in checkpointed rows (after it), by seed.
      sink.down = 1_000_000;
      const last = Array.from({ length: 4 }, (_, k) => ev(`k${k}`, `e${next++}`, host.clock.now(), 1));
      const lastResult = host.runtime.ingest(last);
      host.timers.advance(0);
      for (const e of last) (acknowledged.get(e.key) ?? acknowledged.set(e.key, []).get(e.key)!).push(e.id);
      expect((await lastResult).every((o) => o.status === "accepted")).toBe(true);
      await run(seed % 2 ? 100 : withSink.checkpointIntervalMs + 200);
      host = start(host.clock.now() + 1);
      sink.down = 0;
      sink.lieNext = 0;
      await run(3_000);
      for (const [key, ids] of acknowledged) expect({ key, ids: sink.eventIds(key) }).toEqual({ key, ids });
      expect(sink.eventIds().length).toBe([...acknowledged.values()].flat().length);
    });
  }
});

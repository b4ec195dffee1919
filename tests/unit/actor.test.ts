import { describe, expect, test } from "bun:test";
import { Actor, type IngestOutcome } from "../../src/actor/actor.ts";
import { ACTOR_ROW as ROW } from "../../src/actor/layout.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import type { Event } from "../../src/actor/event.ts";
import { actorView, lateView, render } from "../../src/http/views.ts";
import { aggregateView } from "../../src/delivery/records.ts";
import { parseWindowSpec, type Aggregate, type WindowSpec, type WindowState } from "../../src/actor/windows.ts";
import { SeededRandom } from "../support/fake-env.ts";

const S = 1_000;
const M = 60_000;
const H = 3_600_000;
/** Aligned to every window size used here. */
const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);
const KEY = "user-1";

function spec(text: string): WindowSpec {
  const parsed = parseWindowSpec(text);
  if (typeof parsed === "string") throw new Error(parsed);
  return parsed;
}

function cfg(windows: string[], overrides: Partial<Config> = {}): Config {
  return { ...DEFAULT_CONFIG, windows: windows.map(spec), ...overrides };
}

function ev(id: string, ts: number, type = "click", value?: number): Event {
  const e: Event = { id, assigned: false, type, key: KEY, ts };
  if (value !== undefined) e.value = value;
  return e;
}

/** Persisted rows of one actor: applies drainWrites(); rows() is what Actor.restore reads. */
class Store {
  readonly map = new Map<string, string>();
  commit(actor: Actor): { puts: Array<[string, string]>; deletes: string[] } {
    const writes = actor.drainWrites();
    for (const [k, v] of writes.puts) this.map.set(k, v);
    for (const k of writes.deletes) this.map.delete(k);
    return writes;
  }
  rows(): Array<[string, string]> {
    return [...this.map].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}

function find(windows: WindowState[], specName: string, start: number): WindowState | undefined {
  return windows.find((w) => w.spec === specName && w.start === start);
}

const ACCEPTED: IngestOutcome = { status: "accepted" };
const LATE: IngestOutcome = { status: "accepted", late: true };
const DUP: IngestOutcome = { status: "duplicate" };

function everything(actor: Actor): string {
  return JSON.stringify({
    snapshot: actor.snapshot(),
    view: actorView(actor.snapshot()),
    late: actor.lateLog(),
    lateView: actor.lateLog().map(lateView),
    closed: actor.closedWindows(),
    open: actor.openWindows(),
    wake: actor.nextWake(),
  });
}

describe("window assignment and aggregates", () => {
  test("a new actor is empty", () => {
    const actor = new Actor(KEY, cfg(["1m"]));
    expect(actor.isNew).toBe(true);
    expect(actor.snapshot()).toEqual({
      key: KEY,
      totals: { events: 0, duplicates: 0, late: 0, byType: new Map() },
      firstEventAt: null,
      lastEventAt: null,
      lastArrival: null,
      watermark: null,
      open: [],
      closed: [],
      dedupeIds: 0,
      lateLogSize: 0,
    });
    expect(actor.nextWake()).toBeNull();
  });

  test("events go to every window of every spec that contains them; boundaries are half-open", () => {
    const actor = new Actor(KEY, cfg(["1m", "1h"]));
    const now = T0 + 2 * M;
    const out = actor.ingest([ev("a", T0 + S), ev("b", T0 + M - 1), ev("c", T0 + M)], now);
    expect(out).toEqual([ACCEPTED, ACCEPTED, ACCEPTED]);
    expect(actor.isNew).toBe(false);
    const open = actor.openWindows();
    expect(open.map((w) => [w.spec, w.start - T0, w.end - T0, w.all.count])).toEqual([
      ["1m", 0, M, 2],
      ["1h", 0, H, 3],
      ["1m", M, 2 * M, 1],
    ]);
    const s = actor.snapshot();
    expect(s.totals).toEqual({ events: 3, duplicates: 0, late: 0, byType: new Map(Object.entries({ click: 3 })) });
    expect(s.firstEventAt).toBe(T0 + S);
    expect(s.lastEventAt).toBe(T0 + M);
    expect(s.watermark).toBe(T0 + M);
    expect(s.lastArrival).toBe(now);
    expect(s.dedupeIds).toBe(3);
  });

  test("out-of-order events in open windows are applied; first/last event time track min/max", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0 }));
    actor.ingest([ev("a", T0 + 30 * S), ev("b", T0 + 10 * S), ev("c", T0 + 20 * S)], T0 + M);
    const s = actor.snapshot();
    expect(s.firstEventAt).toBe(T0 + 10 * S);
    expect(s.lastEventAt).toBe(T0 + 30 * S);
    expect(s.watermark).toBe(T0 + 30 * S);
    expect(s.open).toHaveLength(1);
    expect(s.open[0]!.all.count).toBe(3);
    expect(s.totals.late).toBe(0);
  });

  test("overall and per-type aggregates; sum/min/max/avg over valued events only", () => {
    const actor = new Actor(KEY, cfg(["1m"]));
    actor.ingest(
      [
        ev("1", T0 + 1 * S, "click"),
        ev("2", T0 + 2 * S, "click"),
        ev("3", T0 + 3 * S, "buy", 10),
        ev("4", T0 + 4 * S, "buy", 30),
        ev("5", T0 + 5 * S, "view", 5),
        ev("6", T0 + 6 * S, "buy", -4),
      ],
      T0 + 10 * S,
    );
    const [w] = actor.openWindows();
    expect(w!.all).toEqual({ count: 6, valued: 4, sum: 41, min: -4, max: 30 });
    expect(Object.fromEntries(w!.types)).toEqual({
      click: { count: 2, valued: 0, sum: 0, min: null, max: null },
      buy: { count: 3, valued: 3, sum: 36, min: -4, max: 30 },
      view: { count: 1, valued: 1, sum: 5, min: 5, max: 5 },
    });
    expect(aggregateView(w!.all).avg).toBeCloseTo(41 / 4, 10);
    expect(aggregateView(w!.types.get("buy")!).avg).toBe(12);
    expect(aggregateView(w!.types.get("click")!).avg).toBeNull();
    expect(Object.fromEntries(actor.snapshot().totals.byType)).toEqual({ click: 2, buy: 3, view: 1 });
    const [typed] = render.windows(actor, { type: "buy", limit: 10 });
    expect(typed).toMatchObject({ type: "buy", count: 3, sum: 36, min: -4, max: 30, avg: 12 });
  });

  test("hopping windows: one event in size/hop windows", () => {
    const actor = new Actor(KEY, cfg(["5m/1m"], { allowedLatenessMs: 0 }));
    actor.ingest([ev("a", T0 + 2 * M + 30 * S, "click", 7)], T0 + 3 * M);
    const open = actor.openWindows();
    expect(open.map((w) => (w.start - T0) / M)).toEqual([-2, -1, 0, 1, 2]);
    for (const w of open) {
      expect(w.spec).toBe("5m/1m");
      expect(w.end - w.start).toBe(5 * M);
      expect(w.all).toEqual({ count: 1, valued: 1, sum: 7, min: 7, max: 7 });
    }
  });

  test("two specs can overlap exactly (5m and 5m/1m) and are kept apart", () => {
    const actor = new Actor(KEY, cfg(["5m", "5m/1m"], { allowedLatenessMs: 0 }));
    actor.ingest([ev("a", T0 + 10 * S, "click", 1)], T0 + M);
    const open = actor.openWindows();
    expect(open.filter((w) => w.spec === "5m")).toHaveLength(1);
    expect(open.filter((w) => w.spec === "5m/1m")).toHaveLength(5);
    expect(find(open, "5m", T0)!.all.count).toBe(1);
    expect(find(open, "5m/1m", T0)!.all.count).toBe(1);
  });
});

describe("closing and lateness", () => {
  test("a window closes when the watermark reaches its end (no lateness)", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0 }));
    actor.ingest([ev("a", T0 + 10 * S)], T0 + 11 * S);
    actor.ingest([ev("b", T0 + M - 1)], T0 + 61 * S);
    expect(actor.closedWindows()).toEqual([]);
    actor.ingest([ev("c", T0 + M)], T0 + 62 * S);
    const closed = actor.closedWindows();
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ spec: "1m", start: T0, end: T0 + M, closedAt: T0 + 62 * S, closedBy: "watermark" });
    expect(closed[0]!.all.count).toBe(2);
    expect(actor.openWindows().map((w) => w.start)).toEqual([T0 + M]);
  });

  test("with allowed lateness a window closes at end + lateness", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 30 * S }));
    actor.ingest([ev("a", T0 + 10 * S)], T0 + 11 * S);
    actor.ingest([ev("b", T0 + 90 * S - 1)], T0 + 90 * S);
    expect(actor.closedWindows()).toHaveLength(0);
    actor.ingest([ev("c", T0 + 90 * S)], T0 + 91 * S);
    expect(actor.closedWindows().map((w) => w.start)).toEqual([T0]);
  });

  test("an event for a window still within allowed lateness is applied, not late", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 30 * S }));
    actor.ingest([ev("a", T0 + 70 * S)], T0 + 71 * S);
    // Watermark 70s; window [0, 60s) closes at 90s.
    const out = actor.ingest([ev("b", T0 + 50 * S, "click", 3)], T0 + 72 * S);
    expect(out).toEqual([ACCEPTED]);
    expect(find(actor.openWindows(), "1m", T0)!.all).toEqual({ count: 1, valued: 1, sum: 3, min: 3, max: 3 });
    expect(actor.snapshot().totals.late).toBe(0);
    expect(actor.lateLog()).toEqual([]);
  });

  test("an event for a closed window is late: logged, counted, not applied to that window", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 30 * S }));
    actor.ingest([ev("a", T0 + 50 * S, "click", 1)], T0 + 51 * S);
    actor.ingest([ev("b", T0 + 100 * S, "click", 2)], T0 + 101 * S);
    // Watermark 100s: [0, 60s) closed (60 + 30 <= 100).
    expect(actor.closedWindows().map((w) => w.start)).toEqual([T0]);
    const before = JSON.stringify(actor.closedWindows());
    const out = actor.ingest([ev("late-1", T0 + 55 * S, "buy", 9)], T0 + 102 * S);
    expect(out).toEqual([LATE]);
    expect(JSON.stringify(actor.closedWindows())).toBe(before);
    expect(find(actor.openWindows(), "1m", T0)).toBeUndefined();
    const s = actor.snapshot();
    expect(s.totals).toEqual({ events: 3, duplicates: 0, late: 1, byType: new Map(Object.entries({ click: 2, buy: 1 })) });
    expect(actor.lateLog()).toEqual([
      { id: "late-1", type: "buy", ts: T0 + 55 * S, receivedAt: T0 + 102 * S, watermark: T0 + 100 * S, missed: ["1m"], value: 9 },
    ]);
    expect(lateView(actor.lateLog()[0]!)).toMatchObject({ event_id: "late-1", event_type: "buy", value: 9 });
  });

  test("lateness boundary: end + lateness == watermark is late, one ms less is not", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 30 * S }));
    actor.ingest([ev("a", T0 + 90 * S - 1)], T0);
    expect(actor.ingest([ev("b", T0 + 59 * S)], T0)).toEqual([ACCEPTED]);
    actor.ingest([ev("c", T0 + 90 * S)], T0);
    expect(actor.ingest([ev("d", T0 + 59 * S)], T0)).toEqual([LATE]);
  });

  test("a late event is still applied to its windows that are open (the hour when its minute closed)", () => {
    const actor = new Actor(KEY, cfg(["1m", "1h"], { allowedLatenessMs: 0 }));
    actor.ingest([ev("a", T0 + 5 * M, "click", 1)], T0 + 5 * M);
    const out = actor.ingest([ev("b", T0 + 90 * S, "click", 4)], T0 + 5 * M + S);
    expect(out).toEqual([LATE]);
    expect(actor.lateLog()[0]!.missed).toEqual(["1m"]);
    expect(find(actor.openWindows(), "1h", T0)!.all).toEqual({ count: 2, valued: 2, sum: 5, min: 1, max: 4 });
    expect(find(actor.openWindows(), "1m", T0 + M)).toBeUndefined();
    expect(actor.closedWindows().find((w) => w.start === T0 + M)).toBeUndefined();
    expect(actor.snapshot().totals.events).toBe(2);
  });

  test("within one batch the watermark advances per event", () => {
    const late = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0 }));
    expect(late.ingest([ev("a", T0 + 2 * M), ev("b", T0 + 10 * S)], T0 + 2 * M)).toEqual([ACCEPTED, LATE]);
    expect(late.closedWindows()).toEqual([]);

    const onTime = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0 }));
    expect(onTime.ingest([ev("b", T0 + 10 * S), ev("a", T0 + 2 * M)], T0 + 2 * M)).toEqual([ACCEPTED, ACCEPTED]);
    // Closing runs at the end of the call: [0, 1m) holds b and is closed.
    expect(onTime.closedWindows().map((w) => [w.start, w.all.count])).toEqual([[T0, 1]]);
  });

  test("hopping windows close one hop at a time; a late event still reaches the open ones", () => {
    const actor = new Actor(KEY, cfg(["5m/1m"], { allowedLatenessMs: 0 }));
    actor.ingest([ev("a", T0 + 2 * M + 30 * S)], T0 + 3 * M);
    actor.ingest([ev("b", T0 + 3 * M)], T0 + 3 * M);
    expect(actor.closedWindows().map((w) => (w.start - T0) / M)).toEqual([-2]);
    expect(actor.openWindows().map((w) => (w.start - T0) / M)).toEqual([-1, 0, 1, 2, 3]);
    const out = actor.ingest([ev("c", T0 + 2 * M + 59 * S)], T0 + 3 * M);
    expect(out).toEqual([LATE]);
    expect(actor.lateLog()[0]!.missed).toEqual(["5m/1m"]);
    expect(actor.closedWindows()[0]!.all.count).toBe(1);
    const counts = actor.openWindows().map((w) => [(w.start - T0) / M, w.all.count]);
    expect(counts).toEqual([
      [-1, 3],
      [0, 3],
      [1, 3],
      [2, 3],
      [3, 1],
    ]);
  });

  test("windows close in end order and get consecutive sequence numbers", () => {
    const actor = new Actor(KEY, cfg(["1m", "5m/1m"], { allowedLatenessMs: 0 }));
    const store = new Store();
    actor.ingest([ev("a", T0 + 10 * S), ev("b", T0 + 70 * S)], T0);
    expect(actor.closedWindows().map((w) => [w.spec, (w.start - T0) / M])).toEqual([
      ["5m/1m", -4],
      ["1m", 0],
    ]);
    actor.ingest([ev("c", T0 + 10 * M)], T0 + S);
    const closed = actor.closedWindows();
    const ends = closed.map((w) => w.end);
    expect([...ends].sort((a, b) => a - b)).toEqual(ends);
    expect(closed.length).toBe(2 + 6);
    const writes = store.commit(actor);
    const cw = writes.puts.filter(([k]) => k.startsWith("cw/")).map(([k]) => k);
    expect(cw).toEqual(closed.map((_, i) => ROW.closed(i)));
  });

  test("the late log keeps the newest lateLogSize entries", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0, lateLogSize: 3 }));
    actor.ingest([ev("now", T0 + 10 * M)], T0 + 10 * M);
    const out = actor.ingest(
      [1, 2, 3, 4, 5].map((i) => ev(`late-${i}`, T0 + i * S)),
      T0 + 10 * M,
    );
    expect(out).toEqual([LATE, LATE, LATE, LATE, LATE]);
    expect(actor.lateLog().map((e) => e.id)).toEqual(["late-3", "late-4", "late-5"]);
    actor.ingest([ev("late-6", T0 + 6 * S)], T0 + 10 * M);
    expect(actor.lateLog().map((e) => e.id)).toEqual(["late-4", "late-5", "late-6"]);
    expect(actor.snapshot().totals.late).toBe(6);
    expect(actor.snapshot().lateLogSize).toBe(3);
  });

  test("lateLogSize 0 counts late events but logs and writes nothing", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0, lateLogSize: 0 }));
    actor.ingest([ev("now", T0 + 10 * M)], T0 + 10 * M);
    actor.drainWrites();
    expect(actor.ingest([ev("l", T0)], T0 + 10 * M)).toEqual([LATE]);
    expect(actor.lateLog()).toEqual([]);
    expect(actor.snapshot().totals.late).toBe(1);
    const keys = actor.drainWrites().puts.map(([k]) => k);
    expect(keys).toContain(ROW.state);
    expect(keys).not.toContain(ROW.late);
  });
});

describe("duplicates", () => {
  test("within one batch", () => {
    const actor = new Actor(KEY, cfg(["1m"]));
    const out = actor.ingest([ev("a", T0, "click", 1), ev("b", T0, "click", 2), ev("a", T0 + S, "click", 100)], T0);
    expect(out).toEqual([ACCEPTED, ACCEPTED, DUP]);
    const s = actor.snapshot();
    expect(s.totals).toEqual({ events: 2, duplicates: 1, late: 0, byType: new Map(Object.entries({ click: 2 })) });
    expect(s.open[0]!.all).toEqual({ count: 2, valued: 2, sum: 3, min: 1, max: 2 });
    expect(s.dedupeIds).toBe(2);
  });

  test("across batches, with the aggregates untouched", () => {
    const actor = new Actor(KEY, cfg(["1m"]));
    actor.ingest([ev("a", T0, "click", 1)], T0);
    const before = JSON.stringify(actor.openWindows());
    expect(actor.ingest([ev("a", T0 + 5 * S, "buy", 7)], T0 + 10 * S)).toEqual([DUP]);
    expect(JSON.stringify(actor.openWindows())).toBe(before);
    const s = actor.snapshot();
    expect(s.totals).toEqual({ events: 1, duplicates: 1, late: 0, byType: new Map(Object.entries({ click: 1 })) });
    // A batch of retries is not activity: the arrival time stays.
    expect(s.lastArrival).toBe(T0);
  });

  test("a late event resent is a duplicate, not late again", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0 }));
    actor.ingest([ev("x", T0 + 10 * M)], T0 + 10 * M);
    expect(actor.ingest([ev("l", T0)], T0 + 10 * M)).toEqual([LATE]);
    expect(actor.ingest([ev("l", T0)], T0 + 10 * M)).toEqual([DUP]);
    expect(actor.snapshot().totals).toMatchObject({ late: 1, duplicates: 1, events: 2 });
    expect(actor.lateLog()).toHaveLength(1);
  });

  test("a batch of only duplicates still persists the duplicate count", () => {
    const actor = new Actor(KEY, cfg(["1m"]));
    const store = new Store();
    actor.ingest([ev("a", T0)], T0);
    store.commit(actor);
    actor.ingest([ev("a", T0)], T0 + S);
    const writes = store.commit(actor);
    expect(writes.puts.map(([k]) => k)).toEqual([ROW.state]);
    const restored = Actor.restore(KEY, cfg(["1m"]), store.rows(), T0 + S);
    expect(restored.snapshot().totals.duplicates).toBe(1);
  });
});

describe("idle closing, nextWake and retention", () => {
  test("a quiet key closes its windows by idle timeout, exactly at nextWake()", () => {
    const config = cfg(["1m", "1h"], { allowedLatenessMs: 0, idleTimeoutMs: 60 * S });
    const actor = new Actor(KEY, config);
    const arrival = T0 + 10 * S;
    actor.ingest([ev("a", T0 + 10 * S)], arrival);
    // The minute closes once the watermark (10s + idle time) reaches 60s, but not before the idle timeout.
    expect(actor.nextWake()).toBe(arrival + 60 * S);
    actor.tick(arrival + 60 * S - 1);
    expect(actor.closedWindows()).toEqual([]);
    expect(actor.snapshot().watermark).toBe(T0 + 10 * S);
    actor.tick(arrival + 60 * S);
    expect(actor.snapshot().watermark).toBe(T0 + 70 * S);
    expect(actor.closedWindows()).toHaveLength(1);
    expect(actor.closedWindows()[0]).toMatchObject({ spec: "1m", start: T0, closedBy: "idle", closedAt: arrival + 60 * S });

    const hourWake = actor.nextWake()!;
    expect(hourWake).toBe(arrival + H - 10 * S);
    actor.tick(hourWake - 1);
    expect(actor.openWindows()).toHaveLength(1);
    actor.tick(hourWake);
    expect(actor.openWindows()).toEqual([]);
    expect(actor.closedWindows().map((w) => [w.spec, w.closedBy])).toEqual([
      ["1m", "idle"],
      ["1h", "idle"],
    ]);
    // Only retention remains.
    expect(actor.nextWake()).toBe(arrival + 60 * S + config.closedRetentionMs);
  });

  test("nextWake never comes before the idle timeout", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0, idleTimeoutMs: 5 * M }));
    actor.ingest([ev("a", T0 + 59 * S)], T0 + 59 * S);
    expect(actor.nextWake()).toBe(T0 + 59 * S + 5 * M);
    actor.tick(T0 + 59 * S + 5 * M - 1);
    expect(actor.openWindows()).toHaveLength(1);
    expect(actor.snapshot().watermark).toBe(T0 + 59 * S);
  });

  test("an event after an idle advance keeps the watermark monotonic", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0, idleTimeoutMs: 60 * S }));
    actor.ingest([ev("a", T0 + 10 * S)], T0 + 10 * S);
    actor.tick(T0 + 5 * M);
    const wm = actor.snapshot().watermark!;
    expect(wm).toBe(T0 + 5 * M);
    // Event time behind the idle watermark, in a closed window: late.
    expect(actor.ingest([ev("b", T0 + 2 * M)], T0 + 5 * M + S)).toEqual([LATE]);
    expect(actor.snapshot().watermark).toBe(wm);
    // Event time in a window that is still open.
    expect(actor.ingest([ev("c", T0 + 5 * M + 1)], T0 + 5 * M + S)).toEqual([ACCEPTED]);
    expect(actor.snapshot().watermark).toBe(wm + 1);
  });

  test("randomized: tick(nextWake()) closes the window with the smallest end; a ms earlier does not", () => {
    const rng = new SeededRandom(99);
    for (let round = 0; round < 20; round++) {
      const config = cfg(["1m", "5m/1m", "1h"], {
        allowedLatenessMs: rng.int(3) * 20 * S,
        idleTimeoutMs: (1 + rng.int(120)) * S,
        closedRetentionMs: 365 * 86_400_000,
      });
      const actor = new Actor(KEY, config);
      let now = T0 + rng.int(H);
      for (let b = 0; b < 1 + rng.int(4); b++) {
        now += rng.int(2 * M);
        actor.ingest(
          Array.from({ length: 1 + rng.int(5) }, (_, i) => ev(`r${round}-${b}-${i}`, Math.max(0, now - rng.int(3 * M)))),
          now,
        );
      }
      const store = new Store();
      for (let guard = 0; guard < 200 && actor.openWindows().length; guard++) {
        const wake = actor.nextWake();
        expect(wake).not.toBeNull();
        const first = actor.openWindows().reduce((a, w) => (w.end < a.end ? w : a));
        store.commit(actor);
        const probe = Actor.restore(KEY, config, store.rows(), wake! - 1);
        probe.tick(wake! - 1);
        expect(find(probe.openWindows(), first.spec, first.start)).toBeDefined();
        actor.tick(wake!);
        expect(find(actor.openWindows(), first.spec, first.start)).toBeUndefined();
        expect(find(actor.closedWindows(), first.spec, first.start)).toBeDefined();
      }
      expect(actor.openWindows()).toEqual([]);
    }
  });

  test("closed windows are purged after closedRetentionMs", () => {
    const config = cfg(["1m"], { allowedLatenessMs: 0, closedRetentionMs: 10 * M, idleTimeoutMs: H });
    const actor = new Actor(KEY, config);
    const store = new Store();
    actor.ingest([ev("a", T0), ev("b", T0 + M), ev("c", T0 + 2 * M)], T0 + 2 * M);
    store.commit(actor);
    expect(actor.closedWindows()).toHaveLength(2);
    expect([...store.map.keys()].filter((k) => k.startsWith("cw/"))).toEqual([ROW.closed(0), ROW.closed(1)]);
    expect(actor.nextWake()).toBe(T0 + 2 * M + 10 * M);
    actor.tick(T0 + 12 * M - 1);
    expect(actor.closedWindows()).toHaveLength(2);
    actor.tick(T0 + 12 * M);
    expect(actor.closedWindows()).toEqual([]);
    const writes = store.commit(actor);
    expect(writes.deletes.sort()).toEqual([ROW.closed(0), ROW.closed(1)]);
    expect([...store.map.keys()].filter((k) => k.startsWith("cw/"))).toEqual([]);
  });

  test("at most maxClosedWindows are kept, the newest", () => {
    const actor = new Actor(KEY, cfg(["1m"], { allowedLatenessMs: 0, maxClosedWindows: 2 }));
    const store = new Store();
    actor.ingest([0, 1, 2, 3, 4].map((i) => ev(`e${i}`, T0 + i * M)), T0 + 5 * M);
    expect(actor.closedWindows().map((w) => (w.start - T0) / M)).toEqual([2, 3]);
    const writes = store.commit(actor);
    // Windows purged in the same commit that closed them are never written.
    expect(writes.puts.filter(([k]) => k.startsWith("cw/")).map(([k]) => k)).toEqual([ROW.closed(2), ROW.closed(3)]);
    actor.ingest([ev("e5", T0 + 5 * M)], T0 + 6 * M);
    expect(actor.closedWindows().map((w) => (w.start - T0) / M)).toEqual([3, 4]);
    store.commit(actor);
    expect([...store.map.keys()].filter((k) => k.startsWith("cw/")).sort()).toEqual([ROW.closed(3), ROW.closed(4)]);
  });
});

describe("persistence", () => {
  test("a batch of 5,000 events costs a few rows", () => {
    const actor = new Actor(KEY, cfg(["1m", "1h"]));
    const events = Array.from({ length: 5_000 }, (_, i) => ev(`evt-${i}`, T0 + (i % 120) * S, i % 2 ? "buy" : "click", i));
    const out = actor.ingest(events, T0 + 2 * M);
    expect(out.every((o) => o.status === "accepted" && !o.late)).toBe(true);
    const writes = actor.drainWrites();
    expect(writes.deletes).toEqual([]);
    expect(writes.puts.length).toBeLessThanOrEqual(4);
    const keys = writes.puts.map(([k]) => k);
    expect(keys).toContain(ROW.state);
    expect(keys.filter((k) => k.startsWith("dd/"))).toEqual([ROW.dedupe(0)]);
    const dd = JSON.parse(writes.puts.find(([k]) => k === ROW.dedupe(0))![1]) as { ids: string[] };
    expect(dd.ids).toHaveLength(5_000);
    expect(actor.drainWrites()).toEqual({ puts: [], deletes: [] });
  });

  test("10,000 events: still a handful of rows", () => {
    const actor = new Actor(KEY, cfg(["1m", "1h"]));
    actor.ingest(
      Array.from({ length: 10_000 }, (_, i) => ev(`evt-${i}`, T0 + (i % 60) * S)),
      T0 + M,
    );
    const writes = actor.drainWrites();
    expect(writes.puts.length).toBeLessThanOrEqual(5);
    expect(writes.puts.filter(([k]) => k.startsWith("dd/")).length).toBe(2);
  });

  test("a tick that changes nothing writes nothing", () => {
    const actor = new Actor(KEY, cfg(["1m"], { idleTimeoutMs: M }));
    actor.ingest([ev("a", T0)], T0);
    actor.drainWrites();
    actor.tick(T0 + 30 * S);
    expect(actor.drainWrites()).toEqual({ puts: [], deletes: [] });
  });

  test("dedupe survives a restart", () => {
    const config = cfg(["1m"]);
    const actor = new Actor(KEY, config);
    const store = new Store();
    actor.ingest([ev("a", T0), ev("b", T0)], T0);
    store.commit(actor);
    const restored = Actor.restore(KEY, config, store.rows(), T0 + S);
    expect(restored.ingest([ev("a", T0), ev("c", T0)], T0 + S)).toEqual([DUP, ACCEPTED]);
    expect(restored.snapshot().totals).toMatchObject({ events: 3, duplicates: 1 });
  });

  test("restore equivalence after a mix of everything, then identical behaviour", () => {
    const config = cfg(["1m", "5m/1m", "1h"], {
      allowedLatenessMs: 30 * S,
      idleTimeoutMs: 60 * S,
      lateLogSize: 4,
      closedRetentionMs: 20 * M,
      maxClosedWindows: 30,
    });
    const N0 = T0 + 10 * S;
    type Step = { at: number; batch?: Event[]; tick?: true };
    const steps: Step[] = [
      { at: N0 + 140 * S, batch: Array.from({ length: 20 }, (_, i) => ev(`e${i}`, T0 + i * 7 * S, i % 3 ? "click" : "buy", i % 4 ? i : undefined)) },
      { at: N0 + 150 * S, batch: [ev("e3", T0), ev("e5", T0), ev("n1", T0 + 200 * S, "view", 2), ev("n1", T0 + 200 * S)] },
      { at: N0 + 155 * S, batch: [ev("l1", T0 + 5 * S, "buy", 50), ev("l2", T0 + 10 * S), ev("ok", T0 + 190 * S, "buy", 1)] },
      { at: N0 + 5 * M, tick: true },
      { at: N0 + 6 * M, batch: [ev("n2", T0 + 10 * M, "click", 3), ev("n3", T0 + 9 * M, "view"), ev("l3", T0 + 2 * M)] },
      { at: N0 + 7 * M, batch: [ev("e1", T0), ev("l4", T0 + M), ev("l5", T0 + 3 * M, "buy", -1), ev("l6", T0 + 4 * M)] },
      { at: N0 + 30 * M, tick: true },
      { at: N0 + 31 * M, batch: [ev("n4", T0 + 31 * M, "buy", 8), ev("n2", T0), ev("l7", T0 + 20 * M)] },
      { at: N0 + 33 * M, tick: true },
      { at: N0 + 34 * M, batch: [ev("n5", T0 + 33 * M, "click", 4), ev("l1", T0)] },
      { at: N0 + 2 * H, tick: true },
      { at: N0 + 2 * H + S, batch: [ev("n6", T0 + 2 * H, "buy", 5), ev("e0", T0), ev("n4", T0)] },
    ];
    const run = (actor: Actor, step: Step) => {
      if (step.batch) return actor.ingest(step.batch, step.at);
      actor.tick(step.at);
      return null;
    };

    const original = new Actor(KEY, config);
    const store = new Store();
    const closedBy = new Set<string>();
    for (let k = 0; k < steps.length; k++) {
      run(original, steps[k]!);
      for (const w of original.closedWindows()) closedBy.add(w.closedBy);
      store.commit(original);
      const restored = Actor.restore(KEY, config, store.rows(), steps[k]!.at);
      expect(everything(restored)).toBe(everything(original));

      // Continue both with the remaining steps: same outcomes, same state, same writes.
      const twin = Actor.restore(KEY, config, store.rows(), steps[k]!.at);
      const shadow = Actor.restore(KEY, config, store.rows(), steps[k]!.at);
      for (let j = k + 1; j < steps.length; j++) {
        expect(run(twin, steps[j]!)).toEqual(run(shadow, steps[j]!));
        expect(JSON.stringify(twin.drainWrites())).toBe(JSON.stringify(shadow.drainWrites()));
      }
      expect(everything(twin)).toBe(everything(shadow));
    }
    // The scenario covered what it claims to.
    const s = original.snapshot();
    expect(s.totals.late).toBeGreaterThanOrEqual(5);
    expect(s.totals.duplicates).toBeGreaterThanOrEqual(6);
    expect(original.lateLog()).toHaveLength(4);
    expect([...closedBy].sort()).toEqual(["idle", "watermark"]);
    // Retention purged everything closed more than 20 minutes before the last tick.
    expect(original.closedWindows().length).toBeGreaterThan(0);
    expect(original.closedWindows()[0]!.closedAt).toBeGreaterThan(N0 + 2 * H - 20 * M);
  });

  test("restored actor continues identically to the original that never restarted", () => {
    const config = cfg(["1m", "5m/1m"], { allowedLatenessMs: 20 * S, idleTimeoutMs: 30 * S, lateLogSize: 3, closedRetentionMs: 10 * M });
    const original = new Actor(KEY, config);
    const store = new Store();
    const rng = new SeededRandom(5);
    let now = T0 + H;
    let n = 0;
    const batch = () =>
      Array.from({ length: 1 + rng.int(8) }, () => {
        const id = rng.int(5) === 0 && n > 0 ? `id${rng.int(n)}` : `id${n++}`;
        return ev(id, Math.max(0, now - rng.int(3 * M)), ["a", "b"][rng.int(2)]!, rng.int(3) ? rng.int(100) : undefined);
      });
    for (let i = 0; i < 30; i++) {
      now += rng.int(40 * S);
      original.ingest(batch(), now);
      if (rng.int(3) === 0) original.tick((now += rng.int(2 * M)));
      store.commit(original);
    }
    const restored = Actor.restore(KEY, config, store.rows(), now);
    expect(everything(restored)).toBe(everything(original));
    for (let i = 0; i < 30; i++) {
      now += rng.int(40 * S);
      const b = batch();
      expect(restored.ingest(b, now)).toEqual(original.ingest(b, now));
      if (rng.int(3) === 0) {
        now += rng.int(2 * M);
        original.tick(now);
        restored.tick(now);
      }
      expect(JSON.stringify(restored.drainWrites())).toBe(JSON.stringify(original.drainWrites()));
      expect(everything(restored)).toBe(everything(original));
    }
  });

  test("restore equivalence with a small dedupe bound and an ID re-sent within one batch", () => {
    const config = cfg(["1m"], { dedupeMaxIds: 2 });
    const original = new Actor(KEY, config);
    const store = new Store();
    expect(original.ingest([ev("a", T0), ev("b", T0), ev("c", T0), ev("a", T0)], T0)).toEqual([
      ACCEPTED,
      ACCEPTED,
      ACCEPTED,
      ACCEPTED,
    ]);
    store.commit(original);
    const restored = Actor.restore(KEY, config, store.rows(), T0);
    expect(restored.snapshot().dedupeIds).toBe(original.snapshot().dedupeIds);
    expect(restored.ingest([ev("c", T0)], T0 + S)).toEqual(original.ingest([ev("c", T0)], T0 + S));
  });

  test("dedupe horizon: an in-memory actor and a restored one agree on an ID past the horizon", () => {
    const config = cfg(["1m"], { dedupeHorizonMs: H });
    const original = new Actor(KEY, config);
    const store = new Store();
    original.ingest([ev("a", T0)], T0);
    store.commit(original);
    const later = T0 + H + 1;
    const restored = Actor.restore(KEY, config, store.rows(), later);
    const fromRestored = restored.ingest([ev("a", T0 + M)], later);
    expect(fromRestored).toEqual([ACCEPTED]);
    expect(original.ingest([ev("a", T0 + M)], later)).toEqual(fromRestored);
  });

  test("after tick(now) the horizon applies to an in-memory actor too", () => {
    const config = cfg(["1m"], { dedupeHorizonMs: H });
    const actor = new Actor(KEY, config);
    actor.ingest([ev("a", T0)], T0);
    actor.tick(T0 + H); // exactly at the horizon: still remembered
    expect(actor.ingest([ev("a", T0)], T0 + H)).toEqual([DUP]);
    expect(actor.snapshot().dedupeIds).toBe(1);
    actor.tick(T0 + H + 1);
    expect(actor.snapshot().dedupeIds).toBe(0);
    // Accepted again (late too: the idle watermark closed its minute meanwhile).
    expect(actor.ingest([ev("a", T0)], T0 + H + 1).map((o) => o.status)).toEqual(["accepted"]);
    expect(actor.snapshot().totals).toMatchObject({ events: 2, duplicates: 1 });
  });
});

// ---- randomized comparison against an independent model ----

interface ModelWindow {
  spec: string;
  start: number;
  end: number;
  all: Aggregate;
  types: Map<string, Aggregate>;
  closedBy?: "watermark" | "idle";
  closedAt?: number;
}

function add(agg: Aggregate | undefined, value: number | undefined): Aggregate {
  const a = agg ?? { count: 0, valued: 0, sum: 0, min: null, max: null };
  a.count += 1;
  if (value !== undefined) {
    a.valued += 1;
    a.sum += value;
    a.min = a.min === null ? value : Math.min(a.min, value);
    a.max = a.max === null ? value : Math.max(a.max, value);
  }
  return a;
}

/** Ground truth from first principles: brute-force window membership, one event at a time. */
class Model {
  seen = new Set<string>();
  watermark: number | null = null;
  lastEventAt: number | null = null;
  lastArrival: number | null = null;
  windows = new Map<string, ModelWindow>();
  totals = { events: 0, duplicates: 0, late: 0 };
  constructor(private readonly config: Config) {}

  ingest(events: Event[], now: number): IngestOutcome[] {
    const out: IngestOutcome[] = [];
    let accepted = 0;
    for (const e of events) {
      if (this.seen.has(e.id)) {
        this.totals.duplicates++;
        out.push(DUP);
        continue;
      }
      this.seen.add(e.id);
      accepted++;
      this.totals.events++;
      const limit = this.watermark === null ? -Infinity : this.watermark - this.config.allowedLatenessMs;
      let late = false;
      for (const s of this.config.windows) {
        // Every aligned start from well before ts - size up to ts; membership decided below.
        for (let start = Math.max(0, Math.floor(e.ts / s.hop) * s.hop - 2 * s.size); start <= e.ts; start += s.hop) {
          if (e.ts >= start + s.size) continue;
          const key = `${s.name}@${start}`;
          if (start + s.size <= limit) {
            late = true;
            continue;
          }
          let w = this.windows.get(key);
          if (!w) {
            w = { spec: s.name, start, end: start + s.size, all: { count: 0, valued: 0, sum: 0, min: null, max: null }, types: new Map() };
            this.windows.set(key, w);
          }
          // A closed window never receives another event.
          expect(w.closedBy).toBeUndefined();
          add(w.all, e.value);
          w.types.set(e.type, add(w.types.get(e.type), e.value));
        }
      }
      if (late) this.totals.late++;
      out.push(late ? LATE : ACCEPTED);
      this.watermark = this.watermark === null ? e.ts : Math.max(this.watermark, e.ts);
      this.lastEventAt = this.lastEventAt === null ? e.ts : Math.max(this.lastEventAt, e.ts);
    }
    if (accepted) {
      this.lastArrival = now;
      this.close(now, "watermark");
    }
    return out;
  }

  tick(now: number): void {
    if (this.lastArrival !== null && this.lastEventAt !== null && now - this.lastArrival >= this.config.idleTimeoutMs) {
      this.watermark = Math.max(this.watermark!, this.lastEventAt + now - this.lastArrival);
    }
    this.close(now, "idle");
  }

  private close(now: number, by: "watermark" | "idle"): void {
    if (this.watermark === null) return;
    for (const w of this.windows.values()) {
      if (w.closedBy === undefined && w.end + this.config.allowedLatenessMs <= this.watermark) {
        w.closedBy = by;
        w.closedAt = now;
      }
    }
  }
}

function strip(w: WindowState & { closedAt?: number; closedBy?: string }) {
  const types = Object.fromEntries([...w.types].sort(([a], [b]) => (a < b ? -1 : 1)));
  return { spec: w.spec, start: w.start, end: w.end, all: w.all, types, closedBy: w.closedBy, closedAt: w.closedAt };
}

describe("randomized against a reference model", () => {
  for (const seed of [1, 2, 3, 4]) {
    test(`seed ${seed}: outcomes, totals and every window's aggregates match; restores are invisible`, () => {
      const rng = new SeededRandom(seed * 7919);
      const config = cfg(["1m", "5m/1m", "1h"], {
        allowedLatenessMs: 30 * S,
        idleTimeoutMs: 60 * S,
        closedRetentionMs: 365 * 86_400_000,
        maxClosedWindows: 1_000_000,
      });
      let actor = new Actor(KEY, config);
      const model = new Model(config);
      const store = new Store();
      const types = ["click", "buy", "view"];
      let now = T0 + 3 * H;
      let n = 0;
      let lateSeen = 0;
      for (let step = 0; step < 250; step++) {
        const r = rng.int(100);
        if (r < 75) {
          now += rng.int(20 * S);
          const batch = Array.from({ length: 1 + rng.int(15) }, () => {
            const id = rng.int(7) === 0 && n > 0 ? `id${rng.int(n)}` : `id${n++}`;
            const ts = now - rng.int(3 * M) + rng.int(10 * S);
            const value = rng.int(4) === 0 ? undefined : rng.int(201) - 50;
            return ev(id, ts, types[rng.int(types.length)]!, value);
          });
          const got = actor.ingest(batch, now);
          expect(got).toEqual(model.ingest(batch, now));
          lateSeen += got.filter((o) => o.late).length;
        } else if (r < 90) {
          now += rng.int(3 * M);
          actor.tick(now);
          model.tick(now);
        } else {
          store.commit(actor);
          const restored = Actor.restore(KEY, config, store.rows(), now);
          expect(everything(restored)).toBe(everything(actor));
          actor = restored;
        }
        if (rng.int(2) === 0) store.commit(actor);
      }
      const s = actor.snapshot();
      expect(s.totals.events).toBe(model.totals.events);
      expect(s.totals.duplicates).toBe(model.totals.duplicates);
      expect(s.totals.late).toBe(model.totals.late);
      expect(s.watermark).toBe(model.watermark);
      const order = (a: { spec: string; start: number }, b: { spec: string; start: number }) =>
        a.start - b.start || a.spec.localeCompare(b.spec);
      const got = [...actor.openWindows(), ...actor.closedWindows()].map(strip).sort(order);
      const want = [...model.windows.values()].map(strip).sort(order);
      expect(got.length).toBe(want.length);
      expect(got).toEqual(want);
      // The run exercised lateness, duplicates, closing by both causes.
      expect(lateSeen).toBeGreaterThan(0);
      expect(s.totals.duplicates).toBeGreaterThan(0);
      expect(actor.closedWindows().some((w) => w.closedBy === "idle")).toBe(true);
      expect(actor.closedWindows().some((w) => w.closedBy === "watermark")).toBe(true);
    });
  }
});

import { describe, expect, test } from "bun:test";
import { DedupeIndex, type DedupeLimits } from "../../src/actor/dedupe.ts";
import { SeededRandom } from "../support/fake-env.ts";

const BIG: DedupeLimits = { horizon: 1e12, maxIds: 1_000_000 };

/** Storage of one index: applies drained puts/deletes; rows() is what restore reads (seq order). */
class SegmentStore {
  readonly rows = new Map<number, string>();
  apply(d: { puts: Array<[number, string]>; deletes: number[] }): void {
    for (const [seq, text] of d.puts) this.rows.set(seq, text);
    for (const seq of d.deletes) this.rows.delete(seq);
  }
  sorted(): Array<[number, string]> {
    return [...this.rows].sort((a, b) => a[0] - b[0]);
  }
}

/** `count` distinct IDs starting with `prefix`. */
const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

function addAll(index: DedupeIndex, ids: string[], at: number): void {
  for (const id of ids) index.add(id, at);
}

function present(index: DedupeIndex, universe: string[]): string[] {
  return universe.filter((id) => index.has(id));
}

/**
 * Reference model: live IDs in arrival order, each with its arrival time. Eviction takes the oldest
 * ID first: past the horizon, or beyond the count bound. How the index groups IDs into segments
 * (rows) must not show.
 */
class ModelIndex {
  private ids: Array<{ id: string; at: number }> = [];
  constructor(private readonly limits: DedupeLimits) {}
  get size(): number {
    return this.ids.length;
  }
  has(id: string): boolean {
    return this.ids.some((e) => e.id === id);
  }
  add(id: string, at: number): void {
    this.ids.push({ id, at });
    this.expire(at);
  }
  expire(now: number): void {
    while (this.ids.length && (this.ids[0]!.at < now - this.limits.horizon || this.ids.length > this.limits.maxIds)) this.ids.shift();
  }
  drain(): void {}
}

describe("DedupeIndex basics", () => {
  test("has/add", () => {
    const index = new DedupeIndex(BIG);
    expect(index.has("a")).toBe(false);
    expect(index.size).toBe(0);
    index.add("a", 1);
    index.add("b", 1);
    expect(index.has("a")).toBe(true);
    expect(index.has("b")).toBe(true);
    expect(index.has("c")).toBe(false);
    expect(index.size).toBe(2);
  });

  test("adding an ID that is present is an invariant violation", () => {
    const index = new DedupeIndex(BIG);
    index.add("a", 1);
    expect(() => index.add("a", 2)).toThrow(/never added again/);
  });

  test("expiry by count drops the oldest IDs first", () => {
    const index = new DedupeIndex({ horizon: 1e12, maxIds: 3 });
    addAll(index, ["a", "b", "c"], 1);
    expect(index.size).toBe(3);
    index.add("d", 2);
    expect(index.size).toBe(3);
    expect(present(index, ["a", "b", "c", "d"])).toEqual(["b", "c", "d"]);
    index.drain();
    addAll(index, ["e", "f"], 3);
    expect(present(index, ["a", "b", "c", "d", "e", "f"])).toEqual(["d", "e", "f"]);
  });

  test("an ID can be re-added once it has expired", () => {
    const index = new DedupeIndex({ horizon: 1e12, maxIds: 2 });
    addAll(index, ["a", "b", "c"], 1);
    expect(index.has("a")).toBe(false);
    index.add("a", 2);
    expect(present(index, ["a", "b", "c"])).toEqual(["a", "c"]);
  });

  test("expiry by horizon: each ID by its own arrival, whatever segment holds it", () => {
    const index = new DedupeIndex({ horizon: 100, maxIds: 1_000 });
    index.add("a", 0);
    index.add("b", 50); // same segment, later arrival
    index.expire(100); // cutoff 0: "a" arrived at 0, not older than it
    expect(present(index, ["a", "b"])).toEqual(["a", "b"]);
    index.expire(101);
    expect(present(index, ["a", "b"])).toEqual(["b"]);
    index.drain();
    index.add("c", 120);
    index.expire(150);
    expect(present(index, ["a", "b", "c"])).toEqual(["b", "c"]);
    index.expire(151);
    expect(present(index, ["a", "b", "c"])).toEqual(["c"]);
    index.expire(221);
    expect(index.size).toBe(0);
  });

  test("a segment filled by many commits (the process host drains at checkpoints) expires like one per commit", () => {
    const oneSegment = new DedupeIndex({ horizon: 100, maxIds: 1_000 });
    const perCommit = new DedupeIndex({ horizon: 100, maxIds: 1_000 });
    for (let t = 0; t < 300; t += 10) {
      for (const index of [oneSegment, perCommit]) {
        index.expire(t);
        index.add(`id-${t}-a`, t);
        index.add(`id-${t}-b`, t);
      }
      perCommit.drain();
    }
    for (const now of [150, 250, 301, 379, 380]) {
      oneSegment.expire(now);
      perCommit.expire(now);
      expect(oneSegment.size).toBe(perCommit.size);
    }
    const rows = oneSegment.drain().puts;
    expect(rows).toHaveLength(1);
    // Restored from its one row, it is the same index.
    const back = DedupeIndex.restore({ horizon: 100, maxIds: 1_000 }, rows, 380);
    const ids = Array.from({ length: 30 }, (_, i) => [`id-${i * 10}-a`, `id-${i * 10}-b`]).flat();
    expect(present(back, ids)).toEqual(present(oneSegment, ids));
  });

  test("add also expires by horizon", () => {
    const index = new DedupeIndex({ horizon: 100, maxIds: 1_000 });
    index.add("a", 0);
    index.drain();
    index.add("b", 101);
    expect(index.has("a")).toBe(false);
    expect(index.has("b")).toBe(true);
  });
});

describe("DedupeIndex rows", () => {
  test("a batch of IDs is one segment row, not one row per ID", () => {
    const index = new DedupeIndex(BIG);
    addAll(index, ["a", "b", "c"], 7);
    const d = index.drain();
    expect(d.deletes).toEqual([]);
    expect(d.puts).toHaveLength(1);
    expect(d.puts[0]![0]).toBe(0);
    expect(JSON.parse(d.puts[0]![1])).toEqual({ runs: [[7, 3]], ids: ["a", "b", "c"] });
  });

  test("nothing to write after a drain; a later batch joins a small segment, rewritten under its seq", () => {
    const index = new DedupeIndex(BIG);
    addAll(index, ["a", "b"], 1);
    index.drain();
    expect(index.drain()).toEqual({ puts: [], deletes: [] });
    addAll(index, ["c", "d"], 2);
    const d = index.drain();
    expect(d.puts.map(([seq]) => seq)).toEqual([0]);
    expect(JSON.parse(d.puts[0]![1])).toEqual({ runs: [[1, 2], [2, 2]], ids: ["a", "b", "c", "d"] });
  });

  test("a drain closes a segment of 64 IDs: the next batch starts a new one", () => {
    const index = new DedupeIndex(BIG);
    addAll(index, ids("a", 64), 1);
    index.drain();
    addAll(index, ["b"], 2);
    const d = index.drain();
    expect(d.puts.map(([seq]) => seq)).toEqual([1]);
    expect(JSON.parse(d.puts[0]![1])).toEqual({ runs: [[2, 1]], ids: ["b"] });
  });

  test("one ID per drain (a Durable Object drains per request) makes one row per 64 IDs, not one per ID", () => {
    const index = new DedupeIndex(BIG);
    const store = new SegmentStore();
    for (let i = 0; i < 640; i++) {
      index.add(`id${i}`, i);
      const d = index.drain();
      expect(d.puts).toHaveLength(1);
      store.apply(d);
    }
    expect(store.rows.size).toBe(10);
  });

  test("large batches are split into a few segments", () => {
    const index = new DedupeIndex(BIG);
    for (let i = 0; i < 20_000; i++) index.add(`id-${i}`, 1);
    const d = index.drain();
    expect(d.puts.length).toBeGreaterThanOrEqual(2);
    expect(d.puts.length).toBeLessThanOrEqual(4);
    const ids = d.puts.flatMap(([, text]) => (JSON.parse(text) as { ids: string[] }).ids);
    expect(ids).toHaveLength(20_000);
    expect(new Set(ids).size).toBe(20_000);
  });

  test("long IDs split segments by size too", () => {
    const index = new DedupeIndex(BIG);
    const long = "x".repeat(120);
    for (let i = 0; i < 5_000; i++) index.add(`${long}${i}`, 1);
    const d = index.drain();
    expect(d.puts.length).toBeGreaterThanOrEqual(2);
    expect(d.puts.length).toBeLessThanOrEqual(3);
    for (const [, text] of d.puts) expect(text.length).toBeLessThan(600 * 1024);
  });

  test("fully expired segments are deleted; partially expired ones are kept", () => {
    const index = new DedupeIndex({ horizon: 1e12, maxIds: 100 });
    addAll(index, ids("a", 64), 1);
    index.drain();
    addAll(index, ids("b", 64), 2); // evicts 28 of segment 0's 64
    let d = index.drain();
    expect(d.deletes).toEqual([]);
    expect(d.puts.map(([seq]) => seq)).toEqual([1]);
    addAll(index, ids("c", 36), 3); // evicts the other 36: segment 0 is gone
    d = index.drain();
    expect(d.deletes).toEqual([0]);
    expect(d.puts.map(([seq]) => seq)).toEqual([2]);
  });

  test("horizon expiry reports deletes", () => {
    const index = new DedupeIndex({ horizon: 10, maxIds: 1_000 });
    addAll(index, ids("a", 64), 0);
    index.drain();
    addAll(index, ids("b", 64), 5);
    index.drain();
    index.expire(15); // cutoff 5: segment 0 (at 0) is older, segment 1 (at 5) is not
    expect(index.drain()).toEqual({ puts: [], deletes: [0] });
    index.expire(100);
    expect(index.drain()).toEqual({ puts: [], deletes: [1] });
    expect(index.size).toBe(0);
  });

  test("a segment that expires before it is drained is deleted, not written", () => {
    const index = new DedupeIndex({ horizon: 10, maxIds: 100 });
    index.add("a", 0);
    index.expire(11);
    const d = index.drain();
    expect(d.puts).toEqual([]);
    expect(d.deletes).toEqual([0]);
  });
});

describe("DedupeIndex.restore", () => {
  function roundTrip(index: DedupeIndex, store: SegmentStore, limits: DedupeLimits, now: number): DedupeIndex {
    store.apply(index.drain());
    return DedupeIndex.restore(limits, store.sorted(), now);
  }

  test("restores the same set", () => {
    const store = new SegmentStore();
    const index = new DedupeIndex(BIG);
    addAll(index, ["a", "b"], 1);
    store.apply(index.drain());
    addAll(index, ["c"], 2);
    const restored = roundTrip(index, store, BIG, 2);
    expect(restored.size).toBe(3);
    expect(present(restored, ["a", "b", "c", "d"])).toEqual(["a", "b", "c"]);
    expect(restored.drain()).toEqual({ puts: [], deletes: [] });
  });

  test("after partial expiry by count", () => {
    const limits = { horizon: 1e12, maxIds: 5 };
    const store = new SegmentStore();
    const index = new DedupeIndex(limits);
    const universe = Array.from({ length: 12 }, (_, i) => `e${i}`);
    addAll(index, universe.slice(0, 4), 1);
    store.apply(index.drain());
    addAll(index, universe.slice(4, 8), 2);
    store.apply(index.drain());
    addAll(index, universe.slice(8, 10), 3);
    const restored = roundTrip(index, store, limits, 3);
    expect(present(index, universe)).toEqual(["e5", "e6", "e7", "e8", "e9"]);
    expect(present(restored, universe)).toEqual(present(index, universe));
    expect(restored.size).toBe(index.size);
  });

  test("after partial expiry by horizon, and restore at a later time expires more", () => {
    const limits = { horizon: 100, maxIds: 1_000 };
    const store = new SegmentStore();
    const index = new DedupeIndex(limits);
    const [a, b] = [ids("a", 64), ids("b", 64)];
    addAll(index, a, 0);
    store.apply(index.drain());
    addAll(index, b, 60);
    store.apply(index.drain());
    addAll(index, ["d"], 150); // expires segment 0
    const restored = roundTrip(index, store, limits, 150);
    expect(present(restored, [...a, ...b, "d"])).toEqual([...b, "d"]);
    expect(restored.size).toBe(index.size);

    const later = DedupeIndex.restore(limits, store.sorted(), 161);
    expect(present(later, [...a, ...b, "d"])).toEqual(["d"]);
    // The segment that expired on restore must be deleted from storage by the next commit.
    expect(later.drain().deletes).toEqual([1]);
  });

  test("an ID re-added in a later segment after it expired", () => {
    const limits = { horizon: 1e12, maxIds: 2 };
    const store = new SegmentStore();
    const index = new DedupeIndex(limits);
    addAll(index, ["a", "b"], 1);
    store.apply(index.drain());
    index.add("c", 2); // evicts a
    index.add("a", 2); // evicts b; segment 0 gone
    expect(present(index, ["a", "b", "c"])).toEqual(["a", "c"]);
    const restored = roundTrip(index, store, limits, 2);
    expect(present(restored, ["a", "b", "c"])).toEqual(["a", "c"]);
    expect(restored.size).toBe(2);
    // Both behave the same afterwards.
    index.add("d", 3);
    restored.add("d", 3);
    expect(present(restored, ["a", "b", "c", "d"])).toEqual(present(index, ["a", "b", "c", "d"]));
  });

  test("an ID re-added in a later segment after horizon expiry", () => {
    const limits = { horizon: 10, maxIds: 1_000 };
    const store = new SegmentStore();
    const index = new DedupeIndex(limits);
    addAll(index, ["a", "b"], 0);
    store.apply(index.drain());
    index.expire(20);
    expect(index.has("a")).toBe(false);
    addAll(index, ["a", "c"], 20);
    const restored = roundTrip(index, store, limits, 20);
    expect(present(index, ["a", "b", "c"])).toEqual(["a", "c"]);
    expect(present(restored, ["a", "b", "c"])).toEqual(["a", "c"]);
    expect(restored.size).toBe(2);
  });

  test("an ID re-added within the same segment after it expired by count", () => {
    const limits = { horizon: 1e12, maxIds: 2 };
    const store = new SegmentStore();
    const index = new DedupeIndex(limits);
    addAll(index, ["a", "b", "c"], 1); // evicts a
    index.add("a", 1); // evicts b
    expect(present(index, ["a", "b", "c"])).toEqual(["a", "c"]);
    const restored = roundTrip(index, store, limits, 1);
    expect(present(restored, ["a", "b", "c"])).toEqual(["a", "c"]);
    expect(restored.size).toBe(2);
  });

  test("a restored index appends to its small newest segment, and after a full one to a new, higher seq", () => {
    const store = new SegmentStore();
    const index = new DedupeIndex(BIG);
    addAll(index, ["a"], 1);
    store.apply(index.drain());
    addAll(index, ["b"], 2);
    const restored = roundTrip(index, store, BIG, 2);
    restored.add("c", 3);
    let d = restored.drain();
    expect(d.puts.map(([seq]) => seq)).toEqual([0]);
    expect(JSON.parse(d.puts[0]![1])).toEqual({ runs: [[1, 1], [2, 1], [3, 1]], ids: ["a", "b", "c"] });
    store.apply(d);

    addAll(restored, ids("x", 61), 4);
    const full = roundTrip(restored, store, BIG, 4);
    full.add("y", 5);
    d = full.drain();
    expect(d.puts.map(([seq]) => seq)).toEqual([1]);
    expect(JSON.parse(d.puts[0]![1])).toEqual({ runs: [[5, 1]], ids: ["y"] });
  });
});

describe("DedupeIndex randomized", () => {
  function run(seed: number, limits: DedupeLimits, withRestore: boolean): void {
    const rng = new SeededRandom(seed);
    const universe = Array.from({ length: 40 }, (_, i) => `id${i}`);
    let index = new DedupeIndex(limits);
    const model = new ModelIndex(limits);
    const store = new SegmentStore();
    let now = 1_000;
    for (let step = 0; step < 3_000; step++) {
      const r = rng.int(100);
      if (r < 70) {
        const id = universe[rng.int(universe.length)]!;
        expect(index.has(id)).toBe(model.has(id));
        if (!model.has(id)) {
          index.add(id, now);
          model.add(id, now);
        }
      } else if (r < 80) {
        now += rng.int(limits.horizon < 1e9 ? limits.horizon / 4 : 50);
        index.expire(now);
        model.expire(now);
      } else if (r < 95) {
        store.apply(index.drain());
        model.drain();
      } else if (withRestore) {
        store.apply(index.drain());
        model.drain();
        // restore(now) replays expiry up to now, as expire(now) does on the live index.
        model.expire(now);
        index = DedupeIndex.restore(limits, store.sorted(), now);
      }
      if (rng.int(3) === 0) now += rng.int(5);
      expect(index.size).toBe(model.size);
      expect(present(index, universe)).toEqual(universe.filter((id) => model.has(id)));
    }
  }

  test("matches the reference model (count bound)", () => {
    for (const seed of [1, 2, 3]) run(seed, { horizon: 1e12, maxIds: 12 }, false);
  });

  test("matches the reference model (horizon)", () => {
    for (const seed of [4, 5, 6]) run(seed, { horizon: 200, maxIds: 1_000 }, false);
  });

  test("matches the reference model (both bounds)", () => {
    for (const seed of [7, 8, 9]) run(seed, { horizon: 300, maxIds: 15 }, false);
  });

  test("restore at random points matches the reference model (horizon only)", () => {
    for (const seed of [10, 11, 12]) run(seed, { horizon: 200, maxIds: 1_000 }, true);
  });

  test("restore at random points matches the reference model (count bound)", () => {
    for (const seed of [13, 14, 15]) run(seed, { horizon: 1e12, maxIds: 12 }, true);
  });
});

describe("DedupeIndex rows of version 1", () => {
  test("a segment row {at, ids} (before arrival runs) reads as every ID arriving at its newest time", () => {
    const rows: Array<[number, string]> = [[0, JSON.stringify({ at: 50, ids: ["a", "b"] })]];
    const index = DedupeIndex.restore({ horizon: 100, maxIds: 1_000 }, rows, 150);
    expect(present(index, ["a", "b"])).toEqual(["a", "b"]);
    index.expire(151);
    expect(index.size).toBe(0);
  });
});

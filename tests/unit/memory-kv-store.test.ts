import { describe, expect, test } from "bun:test";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { Prng } from "../../src/sim/prng.ts";

/** What list() must return: every row whose name starts with the prefix, in name order. */
function modelList(rows: Map<string, string>, prefix: string): Array<[string, string]> {
  return [...rows].filter(([k]) => k.startsWith(prefix)).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

const SEGMENTS = ["a", "b", "ab", "p", "a/", "", "x%2F", "ü"];

function randomName(prng: Prng): string {
  const parts = 1 + prng.int(4);
  return Array.from({ length: parts }, () => SEGMENTS[prng.int(SEGMENTS.length)]!).join(prng.int(4) === 0 ? "" : "/");
}

describe("MemoryKvStore (rows grouped by their first two path segments)", () => {
  test("list, get and size match a flat map across random writes and every shape of prefix", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const prng = new Prng(seed);
      const store = new MemoryKvStore();
      const model = new Map<string, string>();
      for (let step = 0; step < 300; step++) {
        const puts: Array<[string, string]> = [];
        const deletes: string[] = [];
        for (let i = prng.int(4); i > 0; i--) puts.push([randomName(prng), String(step)]);
        for (let i = prng.int(3); i > 0; i--) deletes.push(prng.int(2) ? randomName(prng) : ([...model.keys()][prng.int(model.size || 1)] ?? "none"));
        store.write(puts, deletes);
        for (const k of deletes) model.delete(k);
        for (const [k, v] of puts) model.set(k, v);
        const prefix = prng.int(5) === 0 ? "" : randomName(prng).slice(0, 1 + prng.int(6));
        expect(store.list(prefix)).toEqual(modelList(model, prefix));
        const probe = randomName(prng);
        expect(store.get(probe)).toBe(model.get(probe));
        expect(store.size).toBe(model.size);
      }
    }
  });

  test("an actor's rows are listed by its prefix and no other's", () => {
    const store = new MemoryKvStore();
    store.write(
      [
        ["a/k1/state", "1"],
        ["a/k1/dd/000000000001", "2"],
        ["a/k10/state", "3"],
        ["p/k1", "4"],
        ["m/journal-seq", "5"],
      ],
      [],
    );
    expect(store.list("a/k1/").map(([k]) => k)).toEqual(["a/k1/dd/000000000001", "a/k1/state"]);
    expect(store.list("a/").map(([k]) => k)).toEqual(["a/k1/dd/000000000001", "a/k1/state", "a/k10/state"]);
    expect(store.list("p/").map(([k]) => k)).toEqual(["p/k1"]);
    store.write([], ["a/k1/state", "a/k1/dd/000000000001"]);
    expect(store.list("a/k1/")).toEqual([]);
    expect(store.size).toBe(3);
  });
});

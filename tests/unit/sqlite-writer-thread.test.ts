/** The Bun server's SQLite store: reads on the loop, writes by its own thread (src/runtimes/bun-sqlite.ts). */
import { afterEach, expect, test } from "bun:test";
import { decodeRowFrames, encodeRowFrames } from "../../src/hosts/process/row-frames.ts";
import { openBunSqlite } from "../../src/runtimes/bun-sqlite.ts";
import type { KvStore } from "../../src/ports/kv-store.ts";
import { SeededRandom } from "../support/fake-env.ts";
import { tempDir } from "../support/targets.ts";

const dirs: Array<ReturnType<typeof tempDir>> = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove();
});

function open(): { store: KvStore; path: string } {
  const dir = tempDir("writer-thread");
  dirs.push(dir);
  const path = `${dir.path}/keyflow.db`;
  return { store: openBunSqlite(path), path };
}

/** Strings a client could choose: separators, digits, colons, NUL, astral characters, empty. */
function hostileString(random: SeededRandom): string {
  const alphabet = ["a", ":", "0", "9", "P", "D", "\u0000", "\n", '"', "\\", "é", "😀", "/", " "];
  let s = "";
  const length = Math.floor(random.next() * 12);
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(random.next() * alphabet.length)];
  return s;
}

test("row frames carry any strings through unchanged", () => {
  const random = new SeededRandom(7);
  for (let round = 0; round < 500; round++) {
    const puts: Array<[string, string]> = Array.from({ length: Math.floor(random.next() * 6) }, () => [hostileString(random), hostileString(random)]);
    const deletes = Array.from({ length: Math.floor(random.next() * 4) }, () => hostileString(random));
    expect(decodeRowFrames(encodeRowFrames(puts, deletes))).toEqual({ puts, deletes });
  }
  expect(() => decodeRowFrames("P5:ab")).toThrow(/bad row frame/);
  expect(() => decodeRowFrames("X1:a")).toThrow(/bad row frame kind/);
});

test("what writeAsync wrote is read back on the loop's connection once it resolved, deletes included", async () => {
  const { store } = open();
  expect(store.writeAsync).toBeFunction();
  await store.writeAsync!([["a/1", "one"], ["a/2", 'two:"2"'], ["b/\u0000:", "😀"]], []);
  expect(store.list("a/")).toEqual([["a/1", "one"], ["a/2", 'two:"2"']]);
  expect(store.get("b/\u0000:")).toBe("😀");
  await store.writeAsync!([["a/3", ""]], ["a/1"]);
  expect(store.list("a/")).toEqual([["a/2", 'two:"2"'], ["a/3", ""]]);
  store.close();
});

test("writes survive closing and reopening the file", async () => {
  const { store, path } = open();
  await store.writeAsync!([["k", "v"]], []);
  store.close();
  const again = openBunSqlite(path);
  expect(again.get("k")).toBe("v");
  again.close();
});

test("a write after close is refused, not lost silently", async () => {
  const { store } = open();
  store.close();
  await expect(store.writeAsync!([["k", "v"]], [])).rejects.toThrow(/closed/);
});

test("if the writer thread dies, writes go on, on the loop's connection", async () => {
  const { store } = open();
  await store.writeAsync!([["k/a", "1"]], []);
  const worker = (store as unknown as { worker: Worker }).worker;
  const stopped = new Promise((resolve) => worker.addEventListener("close", resolve));
  worker.terminate();
  await stopped;
  await store.writeAsync!([["k/b", "2"]], []);
  expect(store.list("k/")).toEqual([["k/a", "1"], ["k/b", "2"]]);
  store.close();
});

test(":memory: stays on the loop (a second connection would be another database)", () => {
  const store = openBunSqlite(":memory:");
  expect(store.writeAsync).toBeUndefined();
  store.close();
});

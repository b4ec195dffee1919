import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runSeed } from "../../src/sim/run.ts";

test("the same seed replays bit for bit on each host: same trace hash, steps and fault counts", async () => {
  for (const [seed, host] of [[3, "durable"], [42, "durable"], [1234, "durable"], [3, "process"], [77, "process"]] as const) {
    const a = await runSeed({ seed, host, traceTail: 0 });
    const b = await runSeed({ seed, host, traceTail: 0 });
    expect(b.hash).toBe(a.hash);
    expect(b.steps).toBe(a.steps);
    expect(b.counters).toEqual(a.counters);
    expect(b.stats).toEqual(a.stats);
  }
});

test("different seeds give different runs", async () => {
  const hashes = new Set<string>();
  for (let seed = 1; seed <= 5; seed++) hashes.add((await runSeed({ seed, traceTail: 0 })).hash);
  expect(hashes.size).toBe(5);
});

test("the simulator reads no host clock, entropy or timers (only virtual time and the seeded PRNG)", () => {
  const dir = join(import.meta.dir, "../../src/sim");
  const forbidden = /Date\.now\(|Math\.random\(|randomUUID\(|new Date\(|performance\.now\(|(?<![.\w])set(Timeout|Interval)\((?!fn: )/;
  const offenders = readdirSync(dir)
    .filter((f) => f.endsWith(".ts"))
    .flatMap((file) =>
      readFileSync(join(dir, file), "utf8")
        .split("\n")
        .map((text, i) => ({ file, line: i + 1, text }))
        .filter(({ text }) => forbidden.test(text) && !/^(\/\/|\/?\*)/.test(text.trim())),
    );
  expect(offenders).toEqual([]);
});

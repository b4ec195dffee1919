import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { coreRates } from "../../scripts/bench-core.ts";
import { ROOT } from "../support/process.ts";

// A short run of `bun run bench`'s core section. It fails only when a ratio to the baseline
// measured in the same run regresses (below `floor` x the recorded ratio), never on absolute time.
const recorded = JSON.parse(readFileSync(join(ROOT, "bench/baseline.json"), "utf8"));

test("core ingest keeps its ratio to a bare Set.add of the same event ids", () => {
  // Best of five short runs: a busy machine slows one run, not the ratio of all five.
  const best = new Map<number, number>();
  for (let run = 0; run < 5; run++) {
    const { baseline, rates } = coreRates(150_000, 10_000, [100, 10]);
    for (const [per, rate] of rates) best.set(per, Math.max(best.get(per) ?? 0, rate / baseline));
  }
  const measured = `measured ratios ${JSON.stringify(Object.fromEntries(best))}`;
  expect(best.get(100)!, measured).toBeGreaterThanOrEqual(recorded.floor * recorded.core_100_per_call_vs_set_add);
  expect(best.get(10)!, measured).toBeGreaterThanOrEqual(recorded.floor * recorded.core_10_per_call_vs_set_add);
});

import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { score, type Row } from "../../scripts/bench-sections.ts";
import { ROOT } from "../support/process.ts";

// Short runs of `bun run bench`'s sections. They fail only when a ratio to the baseline measured in
// the same run falls below `floor` x the ratio recorded by `bun run bench --record`, never on time.
const recorded = JSON.parse(readFileSync(join(ROOT, "bench/baseline.json"), "utf8")) as { floor: number; scores: Record<string, number> };

/** Checks the ratio of each id in `ids` against the recorded one. */
export function expectRatiosHold(rows: Row[], ids: string[]): void {
  const measured = Object.fromEntries(rows.filter((r) => r.baseline).map((r) => [r.id, Number(score(r)!.toFixed(3))]));
  for (const id of ids) {
    const expected = recorded.scores[id];
    expect(expected, `bench/baseline.json has no score for ${id}: run bun run bench --record`).toBeNumber();
    expect(measured[id], `${id}: measured ${JSON.stringify(measured)}, recorded ${expected}, floor ${recorded.floor}`).toBeGreaterThanOrEqual(
      recorded.floor * expected!,
    );
  }
}

/** The best score of each id over `runs` runs: a busy machine slows one run, not all of them. */
export async function bestOf(runs: number, measure: () => Row[] | Promise<Row[]>): Promise<Row[]> {
  const best = new Map<string, Row>();
  for (let i = 0; i < runs; i++) {
    for (const row of await measure()) {
      const held = best.get(row.id);
      if (!held || (score(row) ?? 0) > (score(held) ?? 0)) best.set(row.id, row);
    }
  }
  return [...best.values()];
}

import { test } from "bun:test";
import { analyticsSection } from "../../scripts/bench-sections.ts";
import { bestOf, expectRatiosHold } from "./support.ts";

// A short `bun run bench --only analytics`: 100 events per key as in the full run (the sliding windows'
// work per event grows with the events a key has within 10 minutes), over 1,000 keys instead of 10,000.
test(
  "sliding + session windows and three rules (and distinct + percentiles) keep their ratios to tumbling windows only",
  async () => {
    const rows = await bestOf(2, () => analyticsSection(100_000, 1_000, [100, 1], [100]));
    expectRatiosHold(rows, [
      "analytics.per_call_100",
      "analytics.per_call_1",
      "analytics.extras_per_call_100",
      "analytics.closed_per_call_100",
      "analytics.closed_per_call_1",
      "analytics.extras_closed_per_call_100",
    ]);
  },
  240_000,
);

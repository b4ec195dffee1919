import { test } from "bun:test";
import { batchSection, httpSection } from "../../scripts/bench-sections.ts";
import { bestOf, expectRatiosHold } from "./support.ts";

test("Bun host single-event throughput and p99 keep their ratios to a bare Bun.serve", async () => {
  const rows = await bestOf(3, () => httpSection(1));
  expectRatiosHold(rows, ["http.rps", "http.p99"]);
});

test("Bun host batch ingest keeps its ratio to one SQLite row per event", async () => {
  const rows = await bestOf(2, () => batchSection(1.5));
  expectRatiosHold(rows, ["batch.events_per_s"]);
});

import { test } from "bun:test";
import { coreSection } from "../../scripts/bench-sections.ts";
import { bestOf, expectRatiosHold } from "./support.ts";

test("core ingest keeps its ratio to a bare Set.add of the same event ids", async () => {
  const rows = await bestOf(5, () => coreSection(150_000));
  expectRatiosHold(rows, ["core.per_call_100", "core.per_call_10"]);
});

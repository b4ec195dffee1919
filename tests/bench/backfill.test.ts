import { test } from "bun:test";
import { backfillSection } from "../../scripts/bench-sections.ts";
import { bestOf, expectRatiosHold } from "./support.ts";

test("keyflow backfill keeps its ratio to pre-built batch bodies posted to the same host (memory and durable)", async () => {
  const rows = await bestOf(2, () => backfillSection(100_000));
  expectRatiosHold(rows, ["backfill.memory", "backfill.durable"]);
});

import { test } from "bun:test";
import { memorySection } from "../../scripts/bench-sections.ts";
import { expectRatiosHold } from "./support.ts";

test("the dedupe index keeps its memory ratio to a bare Set of the same ids", () => {
  expectRatiosHold(memorySection(200_000), ["memory.dedupe_id"]);
});

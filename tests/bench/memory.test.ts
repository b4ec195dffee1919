import { expect, test } from "bun:test";
import { memorySection, memorySectionApart } from "../../scripts/bench-sections.ts";
import { expectRatiosHold } from "./support.ts";

test("the dedupe index keeps its memory ratio to a bare Set of the same ids", () => {
  expectRatiosHold(memorySection(200_000), ["memory.dedupe_id"]);
});

// Heap bytes, not time: the same on any machine for one Bun version (1,998 bytes on Bun 1.4.5). In a
// process of its own: next to other tests' heap the figure moves by hundreds of bytes.
test("an idle actor (1 event, 1m + 1h windows open, checkpointed) stays within issue 14's 2 KB", () => {
  const row = memorySectionApart(10_000).find((r) => r.id === "memory.actor");
  expect(row?.value).toBeGreaterThan(0);
  expect(row!.value).toBeLessThanOrEqual(2_048);
});

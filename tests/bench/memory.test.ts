import { expect, test } from "bun:test";
import { memorySection, type Row } from "../../scripts/bench-sections.ts";
import { ROOT } from "../support/process.ts";
import { expectRatiosHold } from "./support.ts";

test("the dedupe index keeps its memory ratio to a bare Set of the same ids", () => {
  expectRatiosHold(memorySection(200_000), ["memory.dedupe_id"]);
});

// Heap bytes, not time: the same on any machine for one Bun version (1,998 bytes on Bun 1.4.5). In a
// process of its own: next to other tests' heap the figure moves by hundreds of bytes.
test("an idle actor (1 event, 1m + 1h windows open, checkpointed) stays within issue 14's 2 KB", () => {
  const script = `import { memorySection } from "./scripts/bench-sections.ts"; console.log(JSON.stringify(memorySection(10_000)));`;
  const run = Bun.spawnSync([process.execPath, "-e", script], { cwd: ROOT, stderr: "pipe" });
  expect(run.exitCode, run.stderr.toString()).toBe(0);
  const row = (JSON.parse(run.stdout.toString()) as Row[]).find((r) => r.id === "memory.actor");
  expect(row?.value).toBeGreaterThan(0);
  expect(row!.value).toBeLessThanOrEqual(2_048);
});

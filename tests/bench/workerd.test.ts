import { test } from "bun:test";
import { workerdSection } from "../../scripts/bench-sections.ts";
import { bestOf, expectRatiosHold } from "./support.ts";

test("the Worker in local workerd keeps its single-event ratio to a bare Bun.serve", async () => {
  expectRatiosHold(await bestOf(2, () => workerdSection(1.5)), ["workerd.rps"]);
});

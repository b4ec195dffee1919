import { expect, test } from "bun:test";
import { ROOT } from "../support/process.ts";

// Users and CI pipelines install with `npm ci`, which refuses a lockfile that lacks any package
// package.json can pull in (the optional per-platform builds of deno, for one).
test("npm ci accepts the committed lockfile", () => {
  const run = Bun.spawnSync(["npm", "ci", "--dry-run", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const output = run.stdout.toString() + run.stderr.toString();
  expect(output).not.toContain("Missing:");
  expect(run.exitCode, output).toBe(0);
});

import { expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, ROOT } from "../support/process.ts";

// The Worker's Env type is generated from wrangler.toml (`npm run types`), not kept by hand: the
// committed worker-configuration.d.ts must be what `wrangler types` makes of today's wrangler.toml.
const TYPES_ARGS = ["types", "--strict-vars=false", "--include-runtime=false", "--check"];

function check(cwd: string) {
  const run = Bun.spawnSync([join(BIN, "wrangler"), ...TYPES_ARGS], {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" },
  });
  return { exitCode: run.exitCode, output: run.stdout.toString() + run.stderr.toString() };
}

test("worker-configuration.d.ts is up to date with wrangler.toml", () => {
  const { exitCode, output } = check(ROOT);
  expect(output).toContain("up to date");
  expect(exitCode, output).toBe(0);
}, 60_000);

test("the check fails once wrangler.toml gains a binding the types lack", () => {
  const dir = mkdtempSync(join(tmpdir(), "kf-types-"));
  try {
    for (const path of ["src/runtimes", "actors"]) mkdirSync(join(dir, path), { recursive: true });
    copyFileSync(join(ROOT, "worker-configuration.d.ts"), join(dir, "worker-configuration.d.ts"));
    for (const path of ["src/runtimes/workers.ts", "actors/no-config-file.ts"]) writeFileSync(join(dir, path), "export {};\n");
    const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
    writeFileSync(join(dir, "wrangler.toml"), `${toml}\n[[kv_namespaces]]\nbinding = "EXTRA"\nid = "0"\n`);
    const { exitCode, output } = check(dir);
    expect(output).toContain("out of date");
    expect(exitCode).not.toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

/**
 * src/client runs in browsers, Workers, Bun, Deno and Node: it uses only fetch,
 * crypto.getRandomValues, timers, TextDecoder and ReadableStream. Checked here by what it imports
 * and names, by type-checking it against each platform's declarations (DOM only, Workers, Deno),
 * and by running a smoke script under Deno and, bundled for browsers, under Node.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, ROOT } from "../support/process.ts";

const CLIENT = join(ROOT, "src/client");
const files = readdirSync(CLIENT).filter((f) => f.endsWith(".ts"));
const run = (cmd: string[], timeoutMs = 60_000) => {
  const result = Bun.spawnSync(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: timeoutMs, env: { ...process.env, NO_COLOR: "1", PATH: `${BIN}:${process.env.PATH}` } });
  return { code: result.exitCode, out: result.stdout.toString(), err: result.stderr.toString() };
};

/** What the smoke script prints: see tests/support/client-smoke.ts. */
function checkSmoke(output: string) {
  const result = JSON.parse(output.trim().split("\n").at(-1)!);
  expect(result.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(Math.abs(result.time - result.now)).toBeLessThan(60_000);
  expect(result.messages).toEqual([{ event: "event", data: '{"kind":\n"event"}', id: "a.1" }]);
  expect(result.report).toEqual({ ok: true, delivered: 25, rejected: [], failed: [], dropped: [] });
  expect(result.stored).toBe(25);
  expect(result.stats).toMatchObject({ delivered: 25, accepted: 15, duplicates: 10, retries: 1 });
}

describe("the client is portable", () => {
  test("it imports only its own files, and names no runtime's API (Bun, Deno, process, Buffer, require, node:)", () => {
    expect(files).toContain("index.ts");
    const offenders: string[] = [];
    for (const file of files) {
      const code = readFileSync(join(CLIENT, file), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      for (const m of code.matchAll(/\bfrom\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
        const spec = m[1] ?? m[2]!;
        if (!/^\.\/[a-z0-9-]+\.ts$/.test(spec)) offenders.push(`${file} imports ${spec}`);
      }
      for (const m of code.matchAll(/\b(Bun|Deno|process|Buffer|require|setImmediate|navigator\.sendBeacon)\b/g)) offenders.push(`${file} names ${m[1]}`);
    }
    expect(offenders).toEqual([]);
  });

  test("it type-checks against the DOM alone and against Workers' types", () => {
    const base = ["--ignoreConfig", "--noEmit", "--strict", "--noUncheckedIndexedAccess", "--noImplicitOverride", "--allowImportingTsExtensions", "--verbatimModuleSyntax", "--target", "ES2022", "--module", "ESNext", "--moduleResolution", "bundler", "--skipLibCheck"];
    const dom = run([join(BIN, "tsc"), ...base, "--lib", "ES2023,DOM", "--types", "", "src/client/index.ts"]);
    expect(dom.out + dom.err).toBe("");
    expect(dom.code).toBe(0);
    const workers = run([join(BIN, "tsc"), ...base, "--lib", "ES2023", "--types", "@cloudflare/workers-types", "src/client/index.ts"]);
    expect(workers.out + workers.err).toBe("");
    expect(workers.code).toBe(0);
  });

  test("Deno: type-checks, and the smoke script runs (no permissions asked)", () => {
    const check = run([join(BIN, "deno"), "check", "--no-lock", "--no-config", "src/client/index.ts"]);
    expect(check.code, check.err).toBe(0);
    const smoke = run([join(BIN, "deno"), "run", "--no-prompt", "--no-lock", "--no-config", "tests/support/client-smoke.ts"]);
    expect(smoke.code, smoke.err).toBe(0);
    checkSmoke(smoke.out);
  }, 120_000);

  test("Node: bundled for browsers (no Node built-ins pulled in), the smoke script runs under node", () => {
    const dir = mkdtempSync(join(tmpdir(), "keyflow-client-"));
    try {
      const out = join(dir, "smoke.mjs");
      const build = run([join(BIN, "bun"), "build", "tests/support/client-smoke.ts", "--target=browser", "--format=esm", `--outfile=${out}`]);
      expect(build.code, build.err).toBe(0);
      const bundle = readFileSync(out, "utf8");
      expect(bundle).not.toMatch(/\bfrom\s+["']node:|require\(/);
      const node = run(["node", out]);
      expect(node.code, node.err).toBe(0);
      checkSmoke(node.out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

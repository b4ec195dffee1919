import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT } from "../support/targets.ts";

// The simulator drives time and randomness; the core and its hosts may only use what is injected.
const FORBIDDEN = /Date\.now\(|Math\.random\(|randomUUID\(|new Date\(\)|performance\.now\(|(?<![.\w])set(Timeout|Interval|Immediate)\((?!fn: )/;
const INJECTED_ONLY = ["src/actor", "src/delivery", "src/hosts", "src/http"];

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? tsFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

test("the actor, delivery, hosts and HTTP layers read no host clock, entropy or timers directly", () => {
  const files = INJECTED_ONLY.flatMap((dir) => tsFiles(join(ROOT, dir)));
  expect(files.length).toBeGreaterThan(15);
  const offenders = files.flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .map((line, i) => ({ file: relative(ROOT, file), line: i + 1, text: line }))
      .filter(({ text }) => FORBIDDEN.test(text) && !text.trim().startsWith("//") && !text.trim().startsWith("*")),
  );
  expect(offenders).toEqual([]);
});

import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../support/targets.ts";

// The simulator drives time and randomness; the core may only use what hosts inject.
const FORBIDDEN = /Date\.now\(|Math\.random\(|randomUUID\(|new Date\(\)|performance\.now\(|(?<![.\w])set(Timeout|Interval|Immediate)\((?!fn: )/;

test("the portable core reads no host clock, entropy or timers directly", () => {
  const dir = join(ROOT, "src/core");
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));
  expect(files.length).toBeGreaterThan(5);
  const offenders = files.flatMap((file) =>
    readFileSync(join(dir, file), "utf8")
      .split("\n")
      .map((line, i) => ({ file, line: i + 1, text: line }))
      .filter(({ text }) => FORBIDDEN.test(text) && !text.trim().startsWith("//")),
  );
  expect(offenders).toEqual([]);
});

/**
 * Hostile-input fuzz (issue 9) against the Hono app in this process: at least 10,000 generated
 * requests, one at a time, with a guard that restores the built-in prototypes after each request.
 * Replay a run with FUZZ_SEED=<seed>; FUZZ_RUNS=<n> changes its length.
 */
import { expect, test } from "bun:test";
import { inProcessTarget } from "../support/targets.ts";
import { FUZZ_ENV, runFuzz } from "./harness.ts";
import { buildWorkload, makeTimes } from "./workload.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x6b660901);
const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);

test(
  `hostile-input fuzz: in-process app (seed ${SEED})`,
  async () => {
    const times = makeTimes();
    // The app logs every unhandled error; keep the first few for the report instead of flooding the output.
    const appErrors: string[] = [];
    let appErrorCount = 0;
    const consoleError = console.error;
    console.error = (...args: unknown[]) => {
      if (appErrorCount++ < 3) appErrors.push(args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a))).join(" ").slice(0, 300));
    };
    const workload = buildWorkload(SEED, RUNS, times, "full");
    const result = await runFuzz({
      name: "in-process app",
      workload,
      times,
      makeTarget: async () => inProcessTarget(FUZZ_ENV),
      concurrency: 1,
      timeoutMs: 15_000,
      guard: true,
      replay: `FUZZ_SEED=${SEED} bun test tests/fuzz/in-process.test.ts`,
      log: (line) => console.log(line),
    }).finally(() => (console.error = consoleError));
    const logged = appErrorCount ? `\nthe app logged ${appErrorCount} errors, the first: ${appErrors.join(" | ")}` : "";
    if (result.failures.length) throw new Error(result.report + logged);
    console.log(result.report);
    expect(result.generated).toBeGreaterThanOrEqual(Math.min(RUNS, 10_000));
  },
  240_000,
);

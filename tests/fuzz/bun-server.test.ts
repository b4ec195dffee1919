/**
 * Hostile-input fuzz (issue 9) against the Bun server as its own process: at least 10,000 generated
 * requests, 12 at a time, then raw-socket cases (a Content-Length that lies, malformed framing).
 * Replay a run with FUZZ_SEED=<seed>; FUZZ_RUNS=<n> changes its length.
 */
import { expect, test } from "bun:test";
import { BUN_SERVER, processTarget, type Target } from "../support/targets.ts";
import { FUZZ_ENV, runFuzz } from "./harness.ts";
import { formatRawReport, runRawCases } from "./raw.ts";
import { buildWorkload, makeTimes } from "./workload.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x6b660902);
const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);

async function bunServer(): Promise<Target> {
  const target = processTarget(BUN_SERVER, FUZZ_ENV);
  await target.start();
  return target;
}

test(
  `hostile-input fuzz: Bun server (seed ${SEED})`,
  async () => {
    const times = makeTimes();
    const workload = buildWorkload(SEED, RUNS, times, "full");
    const result = await runFuzz({
      name: "Bun server",
      workload,
      times,
      makeTarget: bunServer,
      concurrency: 12,
      timeoutMs: 15_000,
      guard: false,
      replay: `FUZZ_SEED=${SEED} bun test tests/fuzz/bun-server.test.ts`,
      log: (line) => console.log(line),
    });
    if (result.failures.length) throw new Error(result.report);
    console.log(result.report);
    expect(result.generated).toBeGreaterThanOrEqual(Math.min(RUNS, 10_000));
  },
  300_000,
);

test(
  "raw HTTP against the Bun server: lying Content-Length, malformed framing, odd request lines",
  async () => {
    const target = await bunServer();
    try {
      const res = await target.fetch("/health");
      await res.text();
      const port = Number(new URL(res.url).port);
      const { violations, log } = await runRawCases(target, port, 5_000);
      const report = formatRawReport("Bun server", violations, log);
      if (violations.length) throw new Error(report);
      console.log(report);
    } finally {
      await target.stop();
    }
  },
  120_000,
);

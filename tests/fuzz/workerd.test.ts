/**
 * Hostile-input fuzz (issue 9) against the Worker with Durable Objects in workerd (through
 * wrangler): a shorter run of the same generated mix, 6 requests at a time.
 * Replay a run with FUZZ_SEED=<seed>; FUZZ_RUNS=<n> changes its length.
 */
import { test } from "bun:test";
import { processTarget, WORKERD_SERVER, type Target } from "../support/targets.ts";
import { FUZZ_ENV, runFuzz } from "./harness.ts";
import { buildWorkload, makeTimes } from "./workload.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x6b660903);
const RUNS = Number(process.env.FUZZ_RUNS ?? 600);

async function worker(): Promise<Target> {
  const target = processTarget(WORKERD_SERVER, FUZZ_ENV);
  await target.start();
  return target;
}

test(
  `hostile-input fuzz: Worker + Durable Objects in workerd (seed ${SEED})`,
  async () => {
    const times = makeTimes();
    const workload = buildWorkload(SEED, RUNS, times, "small");
    const result = await runFuzz({
      name: "Worker (workerd)",
      workload,
      times,
      makeTarget: worker,
      concurrency: 6,
      timeoutMs: 30_000,
      guard: false,
      healthEvery: 100,
      maxEpochs: 3,
      replay: `FUZZ_SEED=${SEED} bun test tests/fuzz/workerd.test.ts`,
      log: (line) => console.log(line),
    });
    if (result.failures.length) throw new Error(result.report);
    console.log(result.report);
  },
  300_000,
);

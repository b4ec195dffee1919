import { expect, test } from "bun:test";
import { formatViolation, runSeed } from "../../src/sim/run.ts";

// The checker must be able to fail: deliberate defects are reported with the seed, the step and a replay command.

test("a sink that drops a record while acknowledging it is caught", async () => {
  const r = await runSeed({ seed: 5, broken: "sink-drops-record", traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.message).toMatch(/never received event\|/);
  const report = formatViolation(r);
  expect(report).toContain("seed=5");
  expect(report).toMatch(/at step \d+/);
  expect(report).toContain("replay: bun run simulate --seed 5 --host durable --broken sink-drops-record");
});

test("a wrong ground truth (window counts off by one) is caught at the first commit it shows in", async () => {
  const r = await runSeed({ seed: 11, broken: "model-count", traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.phase).toBe("faults");
  expect(r.violation!.message).toMatch(/diverges from the model|received window/);
  expect(formatViolation(r)).toContain("replay: bun run simulate --seed 11 --host durable --broken model-count");
});

test("a wrong model of session windows (split at half the gap) is caught", async () => {
  const r = await runSeed({ seed: 18, broken: "model-session-gap", traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.message).toMatch(/session:\d+s@/);
  expect(formatViolation(r)).toContain("replay: bun run simulate --seed 18 --host durable --broken model-session-gap");
  expect((await runSeed({ seed: 18, traceTail: 0 })).ok).toBe(true);
});

test("a wrong model of detection rules (once per key, not per window) is caught at the sink", async () => {
  const r = await runSeed({ seed: 21, broken: "model-rule-once", traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.message).toMatch(/received alert .* which the model never fired/);
  expect((await runSeed({ seed: 21, traceTail: 0 })).ok).toBe(true);
});

test("without fix A, a commit failure during an alarm's delivery reinstates a stale actor", async () => {
  // The bug fix A removed (see DurableHost.isStale): seed 13 has storage failures and a slow sink.
  const r = await runSeed({ seed: 13, glue: "unfixed", traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.message).toContain("after an alarm's delivery commit");
  expect(r.replay).toBe("bun run simulate --seed 13 --host durable --glue unfixed");
  // The fixed glue passes the same seed.
  expect((await runSeed({ seed: 13, traceTail: 0 })).ok).toBe(true);
});

test("overrides are part of the replay command", async () => {
  const r = await runSeed({ seed: 2, keys: 2, events: 40, steps: 100, traceTail: 0 });
  expect(r.replay).toBe("bun run simulate --seed 2 --keys 2 --events 40 --steps 100 --host durable");
  expect(r.ok).toBe(true);
});

test("without fix C, a quiet key whose alarm ran out of retries never drains its outbox (liveness)", async () => {
  // Found before analytics existed: the seed's analytics change its sink traffic, so it runs without.
  const r = await runSeed({ seed: 5111, glue: "unfixed+A+B", analytics: false, traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.message).toMatch(/^liveness: the outbox of .* still holds/);
  expect(r.counters.paths.alarm_dropped).toBeGreaterThan(0);
  expect(r.replay).toBe("bun run simulate --seed 5111 --host durable --glue unfixed+A+B --no-analytics");
  expect((await runSeed({ seed: 5111, analytics: false, traceTail: 0 })).ok).toBe(true);
  expect((await runSeed({ seed: 5111, traceTail: 0 })).ok).toBe(true);
});

test("without fixes B and C, a backpressured key whose alarm ran out of retries refuses ingest forever", async () => {
  const r = await runSeed({ seed: 75, glue: "unfixed+A", traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.message).toMatch(/^liveness: \d+ client requests never acknowledged.*no alarm is armed/);
  expect(r.replay).toBe("bun run simulate --seed 75 --host durable --glue unfixed+A");
  // Either fix restores liveness: B re-arms the alarm on backpressure, C keeps the alarm from being dropped.
  expect((await runSeed({ seed: 75, glue: "unfixed+A+B", traceTail: 0 })).ok).toBe(true);
  expect((await runSeed({ seed: 75, glue: "unfixed+A+C", traceTail: 0 })).ok).toBe(true);
});

test("the process host: a restart that loses the journal is caught (acknowledged state gone)", async () => {
  let caught: Awaited<ReturnType<typeof runSeed>> | undefined;
  for (let seed = 1; seed <= 40 && !caught; seed++) {
    const r = await runSeed({ seed, host: "process", broken: "lose-journal", traceTail: 0 });
    if (!r.ok) caught = r;
  }
  expect(caught).toBeDefined();
  expect(caught!.violation!.message).toMatch(/diverges from the model|never received|never durably accepted|storage rebuilds no actor|was never accepted/);
  expect(caught!.replay).toContain("--host process --broken lose-journal");
  // The same seed with recovery intact passes.
  expect((await runSeed({ seed: caught!.seed, host: "process", traceTail: 0 })).ok).toBe(true);
});

test("the process host: a sink that drops a record while acknowledging it is caught", async () => {
  const r = await runSeed({ seed: 5, host: "process", broken: "sink-drops-record", traceTail: 0 });
  expect(r.ok).toBe(false);
  expect(r.violation!.message).toMatch(/never received event\|/);
});

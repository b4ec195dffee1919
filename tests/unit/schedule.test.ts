import { describe, expect, test } from "bun:test";
import { WakeSchedule } from "../../src/hosts/process/wake-schedule.ts";
import { SeededRandom } from "../support/fake-env.ts";

describe("WakeSchedule", () => {
  test("matches a reference model: peek is the earliest live time, takeDue returns exactly the due keys", () => {
    for (const seed of [1, 2, 3]) {
      const rng = new SeededRandom(seed);
      const schedule = new WakeSchedule();
      const model = new Map<string, number>();
      let now = 0;
      for (let step = 0; step < 20_000; step++) {
        if (rng.chance(0.7)) {
          const key = `k${rng.int(300)}`;
          const at = now + rng.int(10_000);
          schedule.set(key, at);
          model.set(key, at);
        } else {
          now += rng.int(500);
          const expected = [...model].filter(([, at]) => at <= now).map(([k]) => k).sort();
          for (const k of expected) model.delete(k);
          expect(schedule.takeDue(now).sort()).toEqual(expected);
        }
        const earliest = model.size ? Math.min(...model.values()) : undefined;
        if (step % 97 === 0) expect(schedule.peek()).toBe(earliest);
      }
    }
  });

  test("a key whose wake keeps moving does not grow the heap without bound", () => {
    const schedule = new WakeSchedule();
    for (let i = 0; i < 100_000; i++) schedule.set("backfill", 1e9 - i);
    schedule.set("other", 5);
    expect(schedule.heapSize).toBeLessThanOrEqual(2 * 2 + 1024 + 1);
    expect(schedule.peek()).toBe(5);
    expect(schedule.takeDue(1e9)).toEqual(["other", "backfill"]);
    expect(schedule.peek()).toBeUndefined();
  });
});

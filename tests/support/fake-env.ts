import type { Env } from "../../src/ports/clock.ts";
import { Prng as SeededRandom } from "../../src/sim/prng.ts";
import { VirtualTime } from "../../src/sim/virtual-time.ts";

/** One seed drives every random choice of a test: the simulator's PRNG. */
export { SeededRandom };

/**
 * The simulator's virtual time, as a test's clock and timers: time moves only when the test
 * advances it (timers.advance(ms) runs what falls due, in order).
 */
export function fakeEnv(start = Date.UTC(2026, 10, 21, 10, 0, 0), seed = 1) {
  const time = new VirtualTime(start);
  const random = new SeededRandom(seed);
  const env: Env = { clock: time, random };
  return { clock: time, random, timers: time, env };
}

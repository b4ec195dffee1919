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

/**
 * `app.request` while virtual time runs: a group commit ends on a timer, so a request waiting for
 * it needs the clock moved (20 turns of advance(0), letting promises settle between them).
 */
export function pumpedRequest(app: { request(path: string, init?: RequestInit): Response | Promise<Response> }, timers: { advance(ms: number): void }) {
  return async (path: string, init?: RequestInit): Promise<Response> => {
    const pending = Promise.resolve(app.request(path, init));
    for (let i = 0; i < 20; i++) {
      timers.advance(0);
      await Bun.sleep(0);
    }
    return pending;
  };
}

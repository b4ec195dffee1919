import type { Env } from "./clock.ts";
import type { Timers } from "./timers.ts";

/** Random words drawn from the system in blocks: one getRandomValues call per 256 numbers, not one each. */
const randomWords = new Uint32Array(256);
let nextWord = randomWords.length;

/** The real clock, entropy and timers, for hosts outside the simulator. */
export const systemEnv: Env = {
  clock: { now: () => Date.now() },
  random: {
    next() {
      if (nextWord === randomWords.length) {
        crypto.getRandomValues(randomWords);
        nextWord = 0;
      }
      return randomWords[nextWord++]! / 2 ** 32;
    },
  },
};

// Bun and Deno have setImmediate; the Workers runtime (which also loads this module) does not.
const setImmediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  ...(setImmediate ? { defer: (fn: () => void) => void setImmediate(fn) } : {}),
};

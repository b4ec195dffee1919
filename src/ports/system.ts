import type { Env } from "./clock.ts";
import type { Timers } from "./timers.ts";

/** The real clock, entropy and timers, for hosts outside the simulator. */
export const systemEnv: Env = {
  clock: { now: () => Date.now() },
  random: {
    next() {
      const buf = new Uint32Array(1);
      crypto.getRandomValues(buf);
      return buf[0]! / 2 ** 32;
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

/** Timers a host supplies: the system's, or virtual time in the simulator and the unit tests. */
export interface Timers {
  setTimeout(fn: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
  /**
   * Runs `fn` once the I/O callbacks already due in this turn of the event loop have run (setImmediate):
   * the end of a group commit's gathering. Without it, a zero-delay timeout, which Bun clamps to about 1 ms.
   */
  defer?(fn: () => void): void;
}

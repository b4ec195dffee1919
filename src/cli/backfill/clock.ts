/** Time as the backfill sees it: injectable so that rate limits and checkpoint intervals are testable. */
export interface Clock {
  /** Milliseconds, monotonic enough for intervals. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => (ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve()),
};

import { expect, test } from "bun:test";
import type { Clock } from "../../src/cli/backfill/clock.ts";
import { TokenBucket } from "../../src/cli/backfill/rate.ts";

class FakeClock implements Clock {
  t = 0;
  now = () => this.t;
  sleep = async (ms: number) => {
    this.t += ms;
  };
}

test("a token bucket lets one second's worth through, then holds takers to the rate", () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(1_000, 100, clock);
  expect(bucket.reserve(600)).toBe(0);
  expect(bucket.reserve(400)).toBe(0);
  expect(bucket.reserve(500)).toBe(500); // in debt by 500 events: half a second at 1,000/s
  expect(bucket.reserve(500)).toBe(1_000); // queued behind the first taker
  clock.t = 1_000;
  expect(bucket.reserve(0)).toBe(0); // the debt is paid by now
  clock.t = 11_000;
  expect(bucket.reserve(1_000)).toBe(0); // idle time refills up to one second's worth, no more
  expect(bucket.reserve(1)).toBe(1);
});

test("a batch larger than a second's worth still passes, at the average rate", async () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(100, 1_000, clock);
  for (let i = 0; i < 10; i++) await bucket.take(1_000);
  // 10,000 events at 100/s: the first 1,000 free (the bucket holds one batch), 9,000 more take 90 s.
  expect(clock.t).toBe(90_000);
});

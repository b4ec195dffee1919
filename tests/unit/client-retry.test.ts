import { describe, expect, test } from "bun:test";
import { backoffMs, retryDelayMs } from "../../src/client/index.ts";
import { MAX_RETRY_AFTER_MS, rejectionRetryAfterMs, retryableRejection, retryableStatus } from "../../src/client/retry.ts";
import { parseRetryAfter } from "../../src/client/errors.ts";

const options = { baseMs: 500, maxMs: 30_000 };
const fixed = (r: number) => () => r;

describe("client backoff: exponential with full jitter", () => {
  test("the ceiling doubles from baseMs per attempt up to maxMs; the wait is random() of it", () => {
    const ceilings = Array.from({ length: 10 }, (_, attempt) => backoffMs(attempt, options, fixed(0.999999999)) + 1);
    expect(ceilings).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
    for (let attempt = 0; attempt < 10; attempt++) {
      expect(backoffMs(attempt, options, fixed(0))).toBe(0);
      expect(backoffMs(attempt, options, fixed(0.5))).toBe(Math.floor(ceilings[attempt]! / 2));
    }
  });

  test("full jitter spreads waits uniformly over [0, ceiling)", () => {
    let state = 7;
    const lcg = () => ((state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const waits = Array.from({ length: 4000 }, () => backoffMs(3, options, lcg));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...waits)).toBeLessThan(4000);
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length;
    expect(mean).toBeGreaterThan(1800);
    expect(mean).toBeLessThan(2200);
    // Each quarter of the range gets about a quarter of the waits.
    for (let q = 0; q < 4; q++) {
      const share = waits.filter((w) => w >= q * 1000 && w < (q + 1) * 1000).length / waits.length;
      expect(share).toBeGreaterThan(0.2);
      expect(share).toBeLessThan(0.3);
    }
  });

  test("huge attempt numbers stay at the cap (no overflow to Infinity or NaN)", () => {
    expect(backoffMs(5000, options, fixed(0.5))).toBe(15_000);
  });

  test("a Retry-After is honoured: at least that long, plus at most baseMs of jitter", () => {
    expect(retryDelayMs(0, 2000, options, fixed(0))).toBe(2000);
    expect(retryDelayMs(0, 2000, options, fixed(0.999))).toBe(2499);
    // Even past the backoff cap, and on any attempt.
    expect(retryDelayMs(9, 60_000, options, fixed(0))).toBe(60_000);
    expect(retryDelayMs(0, 0, options, fixed(0.5))).toBe(250);
    // A bogus Retry-After parks the client for 5 minutes at most.
    expect(retryDelayMs(0, 86_400_000, options, fixed(0))).toBe(MAX_RETRY_AFTER_MS);
    // Without one: the backoff.
    expect(retryDelayMs(2, undefined, options, fixed(0.5))).toBe(1000);
  });
});

describe("Retry-After and what is retryable", () => {
  test("Retry-After as seconds or as an HTTP date", () => {
    const now = Date.UTC(2026, 10, 21, 10, 0, 0);
    expect(parseRetryAfter("1", now)).toBe(1000);
    expect(parseRetryAfter(" 30 ", now)).toBe(30_000);
    expect(parseRetryAfter("0", now)).toBe(0);
    expect(parseRetryAfter("1.5", now)).toBe(1500);
    expect(parseRetryAfter(new Date(now + 7000).toUTCString(), now)).toBe(7000);
    expect(parseRetryAfter(new Date(now - 7000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-1", now)).toBeUndefined();
  });

  test("408, 429 and 5xx are retried; every other 4xx is final", () => {
    for (const s of [408, 429, 500, 502, 503, 504]) expect(retryableStatus(s)).toBe(true);
    for (const s of [400, 401, 403, 404, 405, 413, 415, 422]) expect(retryableStatus(s)).toBe(false);
  });

  test("a batch's per-event rejections: backpressure and unavailable storage are retried, invalid events and quotas are not", () => {
    expect(retryableRejection({ code: "backpressure", details: { key: "k", retry_after_s: 1 } })).toBe(true);
    expect(retryableRejection({ code: "storage_unavailable", details: { retryable: true } })).toBe(true);
    expect(retryableRejection({ code: "actor_unavailable" })).toBe(true);
    expect(retryableRejection({ code: "something_new", details: { retryable: true } })).toBe(true);
    expect(retryableRejection({ code: "invalid_event", details: [{ field: "event_type", message: "x" }] })).toBe(false);
    expect(retryableRejection({ code: "quota_exceeded", details: { quota: "keys", limit: 3, used: 3 } })).toBe(false);
    expect(rejectionRetryAfterMs({ details: { retry_after_s: 2 } })).toBe(2000);
    expect(rejectionRetryAfterMs({ details: [{ field: "x" }] })).toBeUndefined();
  });
});

import { afterAll, describe, expect, test } from "bun:test";
import { BatchBuilder } from "../../src/cli/backfill/batch.ts";
import type { Clock } from "../../src/cli/backfill/clock.ts";
import { unlimited } from "../../src/cli/backfill/rate.ts";
import { FatalSendError, retryAfterMs, sendBatch, type SendOptions } from "../../src/cli/backfill/sender.ts";
import { buildSummary, formatSummary, Tally } from "../../src/cli/backfill/summary.ts";

const result = (rejectedLines: number[], extra: Partial<{ accepted: number; duplicates: number; retries: number }> = {}) => ({
  accepted: 0, duplicates: 0, late: 0, assigned: 0, retries: 0, ...extra,
  rejected: rejectedLines.map((line) => ({ line, code: "invalid_event", message: `bad ${line}` })),
});

describe("summary", () => {
  test("lists the lowest-numbered rejections whatever order batches finished in, and counts all of them", () => {
    const tally = new Tally();
    tally.add(result([5_000, 5_001], { accepted: 10 }));
    for (let b = 9; b >= 0; b--) tally.add(result(Array.from({ length: 300 }, (_, i) => b * 300 + i + 7), { duplicates: 1 }));
    tally.add(result([3], { retries: 2 }));
    expect(tally.rejectedCount).toBe(3_003);
    expect(tally.events).toBe(10 + 10 + 3_003);
    const summary = buildSummary({ file: "f.ndjson", format: "ndjson", complete: true }, tally, 2_000, 20);
    expect(summary.rejections.map((r) => r.line)).toEqual([3, ...Array.from({ length: 19 }, (_, i) => i + 7)]);
    expect(summary).toMatchObject({ accepted: 10, duplicates: 10, rejected: 3_003, retried_requests: 2, elapsed_ms: 2_000, events_per_s: 1_512 });
    const text = formatSummary(summary);
    expect(text).toContain("rejected    3,003");
    expect(text).toContain("rejected lines (first 20 of 3,003):\n    line 3: invalid_event: bad 3\n    line 7: invalid_event: bad 7\n");
  });

  test("a stopped run says where it would resume", () => {
    const summary = buildSummary(
      { file: "f", format: "csv", complete: false, error: "interrupted", checkpoint: { path: "f.cp", offset: 1_234, line: 56 }, resumed_from: { offset: 10, line: 2 } },
      new Tally(), 0, 20,
    );
    const text = formatSummary(summary);
    expect(text).toStartWith("backfill stopped: f (csv)\n  error: interrupted\n");
    expect(text).toContain("resumed from line 2 (byte 10)");
    expect(text).toContain("checkpoint f.cp: line 56 (byte 1,234)");
  });
});

describe("sender", () => {
  // A scripted stand-in for the server's answers (the real server is in tests/integration/backfill.test.ts).
  let answers: Array<(body: string) => Response> = [];
  const bodies: string[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: async (req) => {
      const body = await req.text();
      bodies.push(body);
      return answers.shift()!(body);
    },
  });
  afterAll(() => server.stop(true));
  const slept: number[] = [];
  const clock: Clock = { now: () => 0, sleep: async (ms) => void slept.push(ms) };
  const options: SendOptions = {
    url: `http://127.0.0.1:${server.port}`, limiter: unlimited, clock, random: () => 0.5, maxAttempts: 3, backoff: { baseMs: 100, maxMs: 1_000 }, timeoutMs: 10_000,
  };
  const batchOf = (lines: number[]) => {
    const b = new BatchBuilder(100, 1 << 20);
    for (const line of lines) b.add(Buffer.from(`{"n":${line}}`), line, true);
    b.advance(0, lines.at(-1)!);
    return b.take();
  };
  const json = (v: unknown, status = 200, headers: Record<string, string> = {}) => () => Response.json(v, { status, headers });

  test("maps the server's batch indexes to source lines, honours Retry-After and re-sends only retryable rejections", async () => {
    slept.length = bodies.length = 0;
    answers = [
      json({ error: { code: "rate_limited", message: "slow down" } }, 429, { "retry-after": "2" }),
      json({ accepted: 1, duplicates: 0, rejected: [
        { index: 1, error: { code: "invalid_event", message: "event_type is required" } },
        { index: 2, error: { code: "backpressure", message: "behind", details: { retry_after_s: 1 } } },
      ] }),
      json({ accepted: 0, duplicates: 1, rejected: [] }),
    ];
    const r = await sendBatch(batchOf([10, 12, 15]), options);
    expect(r).toMatchObject({ accepted: 1, duplicates: 1, retries: 2, rejected: [{ line: 12, code: "invalid_event", message: "event_type is required" }] });
    expect(slept).toEqual([2_000 + 50, 1_000 + 50]); // Retry-After plus up to baseMs of jitter
    expect(bodies[2]).toBe('{"n":15}\n');
  });

  test("halves a batch the server finds too large; gives up with a fatal error after the last attempt", async () => {
    bodies.length = 0;
    answers = [
      json({ error: { code: "payload_too_large", message: "too big" } }, 413),
      json({ accepted: 1, duplicates: 0, rejected: [] }),
      json({ accepted: 1, duplicates: 0, rejected: [] }),
    ];
    expect(await sendBatch(batchOf([1, 2]), options)).toMatchObject({ accepted: 2, rejected: [] });
    expect(bodies).toEqual(['{"n":1}\n{"n":2}\n', '{"n":1}\n', '{"n":2}\n']);
    answers = [json({}, 503), json({}, 503), json({}, 503)];
    await expect(sendBatch(batchOf([1]), options)).rejects.toThrow(FatalSendError);
    answers = [json({ error: { code: "unauthorized", message: "no key" } }, 401)];
    await expect(sendBatch(batchOf([1]), options)).rejects.toThrow("401 unauthorized: no key");
  });

  test("Retry-After as seconds or a date", () => {
    expect(retryAfterMs("3")).toBe(3_000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs("soon")).toBeUndefined();
    expect(retryAfterMs(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50_000);
  });
});

import { expect, test } from "bun:test";
import { parseWrk } from "../../scripts/bench-load.ts";

const report = (extra: string, p99 = "1.07ms") => `Running 1s test @ http://127.0.0.1:19401
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   270.54us  233.13us   4.33ms   90.97%
    Req/Sec    16.01k     4.72k   24.31k    81.82%
  Latency Distribution
     50%  233.00us
     75%  308.00us
     90%  487.00us
     99%    ${p99}
  17502 requests in 1.10s, 845.54MB read
${extra}Requests/sec:  15914.97
Transfer/sec:    768.87MB
`;

test("wrk's report: throughput, percentiles in ms whatever unit wrk chose, no errors", () => {
  expect(parseWrk(report(""))).toEqual({ requests: 17502, rps: 15914.97, p50: 0.233, p99: 1.07, errors: 0 });
  expect(parseWrk(report("", "1.20s")).p99).toBe(1200);
});

test("wrk's report: non-2xx responses and socket errors count as errors", () => {
  const r = parseWrk(report("  Socket errors: connect 0, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 17\n"));
  expect(r.errors).toBe(22);
  expect(r.firstError).toContain("Non-2xx or 3xx responses: 17");
});

test("a report without the figures is an error, not zeros", () => {
  expect(() => parseWrk("unable to connect to 127.0.0.1:1 Connection refused")).toThrow(/requests in/);
});

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A closed-loop HTTP load for benchmarks: `concurrency` workers, each sending as soon as the last answer came. */
export interface LoadResult {
  requests: number;
  rps: number;
  latencies: number[];
  errors: number;
  /** The first transport error, if any. */
  firstError?: string;
  statuses: Record<number, number>;
}

export async function runLoad(opts: {
  url: string;
  body: () => string;
  contentType: string;
  concurrency: number;
  seconds: number;
  headers?: Record<string, string>;
}): Promise<LoadResult> {
  const headers = { "content-type": opts.contentType, ...opts.headers };
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const deadline = start + opts.seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const body = opts.body();
      const t = performance.now();
      try {
        const res = await fetch(opts.url, { method: "POST", headers, body });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status >= 300) errors++;
      } catch (error) {
        errors++;
        firstError ??= String(error);
      }
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  return { requests: latencies.length, rps: latencies.length / seconds, latencies, errors, firstError, statuses };
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** What a wrk run measured: throughput and wrk's own latency percentiles (ms). */
export interface WrkResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  firstError?: string;
}

/** Whether wrk (Debian package `wrk`) is on the PATH. */
export function hasWrk(): boolean {
  return Bun.which("wrk") !== null;
}

/**
 * A closed-loop load from wrk (one thread, `connections` connections), the load generator issue 14's
 * figures were taken with: in C, it leaves the server more of the machine than a JavaScript client.
 * `script` is wrk's Lua script (its request() makes each request).
 */
export async function runWrk(opts: { url: string; script: string; connections: number; seconds: number }): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), "keyflow-wrk-"));
  const script = join(dir, "load.lua");
  writeFileSync(script, opts.script);
  try {
    const proc = Bun.spawn(["wrk", "-t1", `-c${opts.connections}`, `-d${opts.seconds}s`, "--latency", "-s", script, opts.url], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) throw new Error(`wrk exited with ${code}: ${err.trim() || out.trim()}`);
    return parseWrk(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads wrk's report: "N requests in", "Requests/sec:", the --latency distribution, errors. */
export function parseWrk(out: string): WrkResult {
  const number = (re: RegExp) => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk's report has no ${re.source}:\n${out}`);
    return Number(m[1]);
  };
  const latencyMs = (p: number) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, "m").exec(out);
    if (!m) throw new Error(`wrk's report has no ${p}% latency:\n${out}`);
    return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
  };
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  const errors = Number(non2xx?.[1] ?? 0) + socketErrors;
  const result: WrkResult = { requests: number(/(\d+) requests in/), rps: number(/Requests\/sec:\s+([\d.]+)/), p50: latencyMs(50), p99: latencyMs(99), errors };
  if (errors) result.firstError = [non2xx?.[0], socket?.[0]].filter(Boolean).join("; ");
  return result;
}

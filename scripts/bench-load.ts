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

// What an event costs on Cloudflare, counted in local workerd: the Worker's requests and, from the
// keyflow_do_* counters every key's Durable Object reports (GET /metrics), its billed requests and
// SQLite rows, converted with Workers Paid's published prices into US$ per million events.
import { spawnServer, tempDir, WORKERD_SERVER } from "../tests/support/targets.ts";
import { startWebhookReceiver } from "../tests/support/webhook-receiver.ts";
import type { Row } from "./bench-sections.ts";

/** Workers Paid, US$ per million, beyond the included amounts (CPU and Durable Object duration left out). */
export const PRICES_PER_MILLION = { workerRequests: 0.3, doRequests: 0.15, rowsWritten: 1.0, rowsRead: 0.001 } as const;

/** Keys whose batches one request carries, when events go in batches. */
export const KEYS_PER_REQUEST = 10;

export interface CostCounts {
  events: number;
  workerRequests: number;
  /** RPC calls, fetches and alarm invocations the key objects received. */
  doRequests: number;
  alarms: number;
  alarmsSet: number;
  /** SQLite rows, plus 1 per alarm set or deleted. */
  rowsWritten: number;
  rowsRead: number;
  /** The metrics hub's requests and rows written (reports, and this bench's scrapes). */
  hubRequests: number;
  hubRowsWritten: number;
  delivered: number;
}

export interface CostLine extends CostCounts {
  /** Events per key per request (1: single-event requests, one key each). */
  perKey: number;
  dollarsPerMillion: number;
}

/** Sums a counter's series (of `labels`, if given) in Prometheus text. */
export function counterTotal(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

function countsOf(text: string): Omit<CostCounts, "events"> {
  const key = { object: "key" };
  const alarms = counterTotal(text, "keyflow_do_alarms_total", key);
  const alarmsSet = counterTotal(text, "keyflow_do_alarms_set_total", key);
  return {
    workerRequests: counterTotal(text, "keyflow_http_requests_total", { route: "/v1/events" }),
    doRequests: counterTotal(text, "keyflow_do_calls_total", key) + alarms,
    alarms,
    alarmsSet,
    rowsWritten: counterTotal(text, "keyflow_do_rows_written_total", key) + alarmsSet,
    rowsRead: counterTotal(text, "keyflow_do_rows_read_total", key),
    hubRequests: counterTotal(text, "keyflow_do_calls_total", { object: "metrics" }),
    hubRowsWritten: counterTotal(text, "keyflow_do_rows_written_total", { object: "metrics" }),
    delivered: counterTotal(text, "keyflow_sink_delivered_total"),
  };
}

export function dollarsPerMillionEvents(c: CostCounts): number {
  const p = PRICES_PER_MILLION;
  const doRequests = c.doRequests + c.hubRequests;
  const rowsWritten = c.rowsWritten + c.hubRowsWritten;
  return (c.workerRequests * p.workerRequests + doRequests * p.doRequests + rowsWritten * p.rowsWritten + c.rowsRead * p.rowsRead) / c.events;
}

/**
 * Sends `events` events as requests of KEYS_PER_REQUEST keys × `perKey` events each (or, for
 * `perKey` 1, single-event requests), to keys of their own, and counts what they cost.
 */
async function measure(url: string, perKey: number, events: number, concurrency: number, sink: boolean): Promise<CostLine> {
  const scrape = async () => (await fetch(`${url}/metrics`)).text();
  const before = countsOf(await scrape());
  const keys = perKey === 1 ? 20 : KEYS_PER_REQUEST;
  const perRequest = perKey === 1 ? 1 : KEYS_PER_REQUEST * perKey;
  const bodies: string[] = [];
  let n = 0;
  for (let sent = 0; sent < events; sent += perRequest) {
    const lines: string[] = [];
    for (let k = 0; k < keys && lines.length < perRequest; k++) {
      for (let i = 0; i < (perKey === 1 ? 1 : perKey); i++, n++) {
        const key = perKey === 1 ? `c1-${n % keys}` : `c${perKey}-${k}`;
        lines.push(JSON.stringify({ event_id: `c${perKey}-${n}`, event_type: "purchase", user_id: key, timestamp: Date.now(), value: 1 }));
      }
    }
    bodies.push(lines.join("\n"));
  }
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const body = bodies[next++]!;
      const res = await fetch(`${url}/v1/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`cost bench: POST /v1/events answered ${res.status}: ${text.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  let after = countsOf(await scrape());
  if (sink) {
    // Settled: every event delivered, and the objects' last reports (after their last alarms) in.
    const deadline = Date.now() + 120_000;
    for (let last = ""; ; ) {
      const now = JSON.stringify({ ...after, hubRequests: 0, hubRowsWritten: 0 });
      if (after.delivered - before.delivered >= n && now === last) break;
      if (Date.now() > deadline) throw new Error(`cost bench: the webhook sink got ${after.delivered - before.delivered} of ${n} events in 120 s`);
      last = now;
      await Bun.sleep(500);
      after = countsOf(await scrape());
    }
  }
  const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]])) as Omit<CostCounts, "events">;
  const counts = { events: n, ...delta };
  return { perKey, ...counts, dollarsPerMillion: dollarsPerMillionEvents(counts) };
}

/** The default event counts: enough requests per key that a key's first (creating) commit weighs little. */
export const COST_PLAN: ReadonlyArray<{ perKey: number; events: number }> = [
  { perKey: 1, events: 2_000 },
  { perKey: 10, events: 4_000 },
  { perKey: 100, events: 20_000 },
  { perKey: 1000, events: 100_000 },
];

/** Fewer events, for --quick and the test: each key still gets several requests. */
export const QUICK_COST_PLAN: ReadonlyArray<{ perKey: number; events: number }> = [
  { perKey: 1, events: 400 },
  { perKey: 10, events: 2_000 },
  { perKey: 100, events: 10_000 },
  { perKey: 1000, events: 40_000 },
];

/**
 * Runs the plan on a fresh local workerd (default windows, metrics on), with no sinks or with a
 * webhook sink (a local receiver), waiting then until every event was delivered.
 */
export async function costLines(plan: ReadonlyArray<{ perKey: number; events: number }> = COST_PLAN, sink: "none" | "webhook" = "none"): Promise<CostLine[]> {
  const dir = tempDir("bench-cost");
  const receiver = sink === "webhook" ? startWebhookReceiver() : undefined;
  const env: Record<string, string> = { PORT: "0", KEYFLOW_DATA_DIR: dir.path };
  if (receiver) Object.assign(env, { KEYFLOW_WEBHOOK_URL: receiver.url, KEYFLOW_WEBHOOK_SECRET: receiver.secret });
  const worker = await spawnServer(WORKERD_SERVER, env);
  try {
    const lines: CostLine[] = [];
    for (const { perKey, events } of plan) lines.push(await measure(worker.url, perKey, events, perKey === 1 ? 16 : 2, receiver !== undefined));
    return lines;
  } finally {
    await worker.stop();
    receiver?.stop();
    dir.remove();
  }
}

const per = (n: number, events: number) => (n / events).toFixed(4);

export function costTable(lines: readonly CostLine[]): string {
  const head = "| events per key per request | events | Worker req/event | DO req/event | rows written/event | rows read/event | US$ per million events |";
  const rows = lines.map(
    (l) =>
      `| ${l.perKey === 1 ? "1 (single-event requests)" : `${l.perKey.toLocaleString("en-US")} (× ${KEYS_PER_REQUEST} keys)`} | ${l.events.toLocaleString("en-US")} | ${per(l.workerRequests, l.events)} | ${per(l.doRequests, l.events)} | ${per(l.rowsWritten, l.events)} | ${per(l.rowsRead, l.events)} | ${l.dollarsPerMillion.toFixed(3)} |`,
  );
  return [head, "|---|---:|---:|---:|---:|---:|---:|", ...rows].join("\n");
}

export async function costSection(plan?: ReadonlyArray<{ perKey: number; events: number }>): Promise<Row[]> {
  const rows: Row[] = [];
  for (const sink of ["none", "webhook"] as const) {
    const lines = await costLines(plan, sink);
    console.log(`  ${sink === "none" ? "no sinks" : "a webhook sink, every event delivered"}:`);
    console.log(costTable(lines).replace(/^/gm, "  "));
    for (const l of lines) {
      rows.push({
        id: `cost.${sink}.per_key_${l.perKey}`,
        section: "cost",
        metric: `${sink === "none" ? "no sinks" : "webhook"}, ${l.perKey === 1 ? "single-event requests" : `${l.perKey}/key × ${KEYS_PER_REQUEST} keys a request`}: US$/M events`,
        value: l.dollarsPerMillion,
        unit: "US$/M",
        better: "lower",
        ...(l.perKey === 100 ? { target: "<= $0.25/M" } : {}),
        note: "Workers Paid beyond included amounts: Worker requests $0.30/M, DO requests $0.15/M (key objects and the metrics hub), rows written $1.00/M, rows read $0.001/M; CPU and DO duration left out",
      });
    }
  }
  return rows;
}

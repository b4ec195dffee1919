// keyflow load generator: sends events to POST /v1/events on an open-loop schedule, measures latency
// from each request's scheduled send time, then checks every actor's totals against what the server
// acknowledged. Usage: bun run load --help
import { parseArgs } from "node:util";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Normal events start this far in the past, so no window closes by watermark during the run. */
const PAST = 3 * HOUR;
/** A late event is more than this behind every normal event of its key: the 1 h window plus 60 s lateness, plus margin. */
const LATE_GAP = HOUR + 2 * MINUTE;
const LATE_SPREAD = 10 * MINUTE;
const VERIFY_CONCURRENCY = 16;

const USAGE = `keyflow load generator: POST /v1/events at a target rate, then verify every actor's totals.

Usage: bun run load [options]        (or: bun scripts/load.ts [options])

  --url URL            server (default http://127.0.0.1:8787): the Bun/Deno host, \`npm run dev\`
                       (wrangler dev) or a deployed Worker
  --events N           events to send in total, duplicates included (default 10000)
  --rate R             target events/s (default 1000). Open loop: request i is due at start + i*batch/R;
                       latency is measured from that scheduled time, so a slow server shows up as latency
                       instead of a lower send rate (no coordinated omission). 0 = closed loop, as fast as
                       --concurrency allows, latency measured from the actual send
  --concurrency C      max requests in flight (default 32)
  --batch B            events per request (default 1): 1 sends single-event JSON, >1 sends NDJSON batches
  --keys K             distinct actor keys, chosen uniformly (default 100)
  --dup-rate F         fraction of sends that repeat an earlier event (same event_id) of the same key (default 0)
  --late-rate F        fraction of events that are late (default 0), see below
  --types LIST         comma-separated event types (default purchase,page_view,signup)
  --seed S             seed of the workload (default random; printed in the report)
  --timeout T          per-request timeout, e.g. 10s, 500ms (default 10s)
  --max-seconds S      abort the run after S seconds (default 300)
  --verify/--no-verify check actor totals after the run (default on)
  --json               print the final report as JSON on stdout (progress stays on stderr)
  --run-id ID          prefix of keys and event ids (default random, so runs do not collide)
  --help               this text

Workload. Events are {event_id, event_type, user_id, timestamp (epoch ms), value}, keys are <run-id>-k<n>.
Normal events are timestamped about 3 h in the past and advance with the schedule (1000/R ms per event;
1 ms at --rate 0), so with the default 1m,1h windows and 60 s allowed lateness no window closes during
the run. A late event is stamped 1 h 2 min to 1 h 12 min before its key's first event, so it is more than
1 h + 2 min behind the key's newest event and misses its closed 1m and 1h windows (late under any window
size up to 1 h and allowed lateness below 2 min). A key's first event is never a duplicate or late; a
duplicate or late event is sent only after the event it depends on has been answered. With the same
--seed and options, the keys, types, values, timestamps and which sends are duplicates or late repeat.

Verification. For every key, GET /v1/actors/:key and check totals.events = the distinct event ids
acknowledged as accepted (late ones included), totals.late = those acknowledged as late, and
totals.duplicates >= the sends acknowledged as duplicates. A batch answers only counts, so its events are
attributed per key by the workload's prediction; a batch whose counts differ from the prediction is a
failure. Windows are not checked (a key idle for 60 s closes its windows by wall clock).

Exit status: 0 when every request was acknowledged and verification passed; 1 on any verification
mismatch, transport error, HTTP error, rejected event or abort; 2 on bad options.

Examples:
  bun run load --events 10000 --rate 1000
  bun run load --events 100000 --rate 0 --batch 500 --concurrency 8 --keys 1000
  bun run load --rate 2000 --dup-rate 0.1 --late-rate 0.05 --seed 7 --json > report.json
  npm run dev & bun run load --url http://127.0.0.1:8787 --rate 200      # the Worker in wrangler dev
  bun run load --url https://keyflow.example.workers.dev --rate 100 --batch 50
`;

interface Options {
  url: string;
  events: number;
  rate: number;
  concurrency: number;
  batch: number;
  keys: number;
  dupRate: number;
  lateRate: number;
  types: string[];
  seed: string;
  timeoutMs: number;
  maxSeconds: number;
  verify: boolean;
  json: boolean;
  runId: string;
}

type Outcome = "accepted" | "late" | "duplicate" | "rejected" | "unknown";
interface Wire { event_id: string; event_type: string; user_id: string; timestamp: number; value: number }
interface LoadEvent {
  key: number;
  kind: "fresh" | "dup" | "late";
  wire: Wire;
  /** dup: the event it repeats; late: its key's first normal event. */
  dep?: LoadEvent;
  req?: Req;
  outcome?: Outcome;
}
interface Req {
  events: LoadEvent[];
  scheduledAt: number;
  retried429: boolean;
  done: Promise<void>;
  finish(): void;
}
interface KeyCounts { accepted: number; late: number; duplicates: number; unknown: number }

function usageError(message: string): never {
  console.error(`load: ${message}\nRun with --help for usage.`);
  process.exit(2);
}

function parseMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) usageError(`--timeout: "${text}" is not a duration like 10s or 500ms`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: MINUTE }[m[2] ?? "ms"] ?? 1);
}

export function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowNegative: true,
      options: {
        url: { type: "string", default: "http://127.0.0.1:8787" },
        events: { type: "string", default: "10000" },
        rate: { type: "string", default: "1000" },
        concurrency: { type: "string", default: "32" },
        batch: { type: "string", default: "1" },
        keys: { type: "string", default: "100" },
        "dup-rate": { type: "string", default: "0" },
        "late-rate": { type: "string", default: "0" },
        types: { type: "string", default: "purchase,page_view,signup" },
        seed: { type: "string" },
        timeout: { type: "string", default: "10s" },
        "max-seconds": { type: "string", default: "300" },
        verify: { type: "boolean", default: true },
        json: { type: "boolean", default: false },
        "run-id": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    usageError((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: keyof typeof values, min: number, max: number, integer = true): number => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      usageError(`--${name} must be ${integer ? "an integer" : "a number"} in ${min}..${max}, got "${values[name]}"`);
    }
    return n;
  };
  const types = values.types.split(",").map((t) => t.trim()).filter(Boolean);
  if (!types.length || types.some((t) => !/^[a-z0-9_.:-]{1,64}$/.test(t))) usageError("--types must be a comma list of [a-z0-9_.:-]{1,64}");
  const options: Options = {
    url: values.url.replace(/\/+$/, ""),
    events: num("events", 1, 1e9),
    rate: num("rate", 0, 1e7, false),
    concurrency: num("concurrency", 1, 10_000),
    batch: num("batch", 1, 10_000),
    keys: num("keys", 1, 1e7),
    dupRate: num("dup-rate", 0, 1, false),
    lateRate: num("late-rate", 0, 1, false),
    types,
    seed: values.seed ?? String(Math.floor(Math.random() * 2 ** 31)),
    timeoutMs: parseMs(values.timeout),
    maxSeconds: num("max-seconds", 0.001, 1e6, false),
    verify: values.verify,
    json: values.json,
    runId: values["run-id"] ?? `load-${crypto.randomUUID().slice(0, 8)}`,
  };
  if (options.dupRate + options.lateRate > 1) usageError("--dup-rate + --late-rate must be at most 1");
  if (!/^https?:\/\//.test(options.url)) usageError(`--url must be http(s)://…, got "${options.url}"`);
  return options;
}

// ---- workload: a pure function of the seed and options ----

function mulberry32(seedText: string): () => number {
  let a = 2166136261; // FNV-1a of the seed text, so any string seeds
  for (const ch of seedText) a = Math.imul(a ^ ch.charCodeAt(0), 16777619);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const keyName = (runId: string, key: number) => `${runId}-k${key}`;

function workload(o: Options, t0: number) {
  const rng = mulberry32(o.seed);
  const step = o.rate > 0 ? 1000 / o.rate : 1;
  const perKey = Array.from({ length: o.keys }, () => ({ originals: [] as LoadEvent[], first: undefined as LoadEvent | undefined }));
  const planned = { duplicates: 0, late: 0 };
  function next(i: number): LoadEvent {
    const key = Math.floor(rng() * o.keys);
    const [u, pick, jitter] = [rng(), rng(), rng()];
    const type = o.types[Math.floor(rng() * o.types.length)]!;
    const value = Math.round(rng() * 10_000) / 100;
    const ks = perKey[key]!;
    if (u < o.dupRate && ks.originals.length) {
      planned.duplicates++;
      const dep = ks.originals[Math.floor(pick * ks.originals.length)]!;
      return { key, kind: "dup", wire: dep.wire, dep };
    }
    const late = u >= o.dupRate && u < o.dupRate + o.lateRate && ks.first !== undefined;
    const timestamp = late ? t0 - LATE_GAP - Math.floor(jitter * LATE_SPREAD) : Math.floor(t0 + i * step);
    const wire = { event_id: `${o.runId}-e${i}`, event_type: type, user_id: keyName(o.runId, key), timestamp, value };
    const ev: LoadEvent = late ? { key, kind: "late", wire, dep: ks.first } : { key, kind: "fresh", wire };
    if (late) planned.late++;
    else ks.first ??= ev;
    ks.originals.push(ev);
    return ev;
  }
  return { next, planned };
}

/** What the server must answer, given how the event this one depends on was answered. */
function predict(ev: LoadEvent, req: Req): Outcome {
  if (ev.kind === "fresh") return "accepted";
  const dep = ev.dep!;
  const stored = dep.req === req || dep.outcome === "accepted" || dep.outcome === "late" || dep.outcome === "duplicate";
  if (!stored) return "unknown";
  return ev.kind === "dup" ? "duplicate" : "late";
}

// ---- stats ----

function percentile(sorted: number[], q: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
const round = (n: number | null, digits = 2) => (n === null ? null : Number(n.toFixed(digits)));

function newStats(keys: number) {
  return {
    eventsSent: 0,
    eventsAcked: 0,
    eventsFailed: 0,
    requestsSent: 0,
    requestsOk: 0,
    latencies: [] as number[],
    status: {} as Record<string, number>,
    outcomes: { accepted: 0, duplicates: 0, late: 0, rejected: 0 },
    retries429: 0,
    transportErrors: 0,
    httpErrors: 0,
    errorSamples: [] as string[],
    batchMismatches: [] as string[],
    batchMismatchCount: 0,
    perKey: Array.from({ length: keys }, (): KeyCounts => ({ accepted: 0, late: 0, duplicates: 0, unknown: 0 })),
  };
}
type Stats = ReturnType<typeof newStats>;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

function retryAfterMs(header: string | null): number {
  if (header && /^\d+(\.\d+)?$/.test(header.trim())) return Number(header) * 1000;
  const at = header ? Date.parse(header) : NaN;
  return Number.isNaN(at) ? 1000 : Math.max(0, at - Date.now());
}

// ---- http sender ----

function noteError(stats: Stats, message: string) {
  if (stats.errorSamples.length < 10) stats.errorSamples.push(message);
}

/** Records each event's outcome, its key's expectations and the request's completion. */
function settle(stats: Stats, req: Req, outcomes: Outcome[]) {
  req.events.forEach((ev, i) => {
    const outcome = outcomes[i]!;
    ev.outcome = outcome;
    const k = stats.perKey[ev.key]!;
    if (outcome === "accepted" || outcome === "late") k.accepted++;
    if (outcome === "late") k.late++;
    if (outcome === "duplicate") k.duplicates++;
    if (outcome === "unknown") k.unknown++;
  });
}

async function send(o: Options, stats: Stats, req: Req, stop: AbortSignal): Promise<void> {
  const events = req.events;
  try {
    for (const ev of events) if (ev.dep?.req && ev.dep.req !== req) await ev.dep.req.done;
    const predicted = events.map((ev) => predict(ev, req));
    const single = o.batch === 1;
    const body = single ? JSON.stringify(events[0]!.wire) : events.map((e) => JSON.stringify(e.wire)).join("\n") + "\n";
    const headers = { "content-type": single ? "application/json" : "application/x-ndjson" };
    const unknown = () => events.map((): Outcome => "unknown");
    for (;;) {
      let res: Response;
      let text: string;
      try {
        const signal = AbortSignal.any([stop, AbortSignal.timeout(o.timeoutMs)]);
        res = await fetch(`${o.url}/v1/events`, { method: "POST", headers, body, signal });
        text = await res.text();
      } catch (error) {
        stats.transportErrors++;
        stats.eventsFailed += events.length;
        noteError(stats, `transport: ${stop.aborted ? "aborted at --max-seconds" : (error as Error).message}`);
        return settle(stats, req, unknown());
      }
      stats.status[res.status] = (stats.status[res.status] ?? 0) + 1;
      if (res.status === 429 && !stop.aborted) {
        stats.retries429++;
        req.retried429 = true;
        await sleep(retryAfterMs(res.headers.get("retry-after")), stop);
        continue;
      }
      stats.latencies.push(performance.now() - req.scheduledAt);
      let parsed: Record<string, unknown> | undefined;
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {}
      if (!res.ok || !parsed) {
        stats.httpErrors++;
        stats.eventsFailed += events.length;
        noteError(stats, `HTTP ${res.status}: ${text.slice(0, 200)}`);
        return settle(stats, req, unknown());
      }
      stats.requestsOk++;
      return settle(stats, req, single ? singleOutcome(stats, res.status, parsed) : batchOutcomes(stats, req, predicted, parsed));
    }
  } finally {
    req.finish();
  }
}

function singleOutcome(stats: Stats, status: number, body: Record<string, unknown>): Outcome[] {
  stats.eventsAcked++;
  if (status === 200 && body.status === "duplicate") {
    stats.outcomes.duplicates++;
    return ["duplicate"];
  }
  stats.outcomes.accepted++;
  if (body.late === true) stats.outcomes.late++;
  return [body.late === true ? "late" : "accepted"];
}

function batchOutcomes(stats: Stats, req: Req, predicted: Outcome[], body: Record<string, unknown>): Outcome[] {
  const got = { accepted: Number(body.accepted), duplicates: Number(body.duplicates), late: Number(body.late) };
  const rejected = new Set(Array.isArray(body.rejected) ? body.rejected.map((r: { index: number }) => r.index) : []);
  stats.outcomes.accepted += got.accepted;
  stats.outcomes.duplicates += got.duplicates;
  stats.outcomes.late += got.late;
  stats.outcomes.rejected += rejected.size;
  stats.eventsAcked += req.events.length - rejected.size;
  stats.eventsFailed += rejected.size;
  if (rejected.size) noteError(stats, `rejected: ${JSON.stringify(body.rejected).slice(0, 300)}`);
  const kept = predicted.filter((_, i) => !rejected.has(i));
  const want = {
    accepted: kept.filter((p) => p === "accepted" || p === "late").length,
    duplicates: kept.filter((p) => p === "duplicate").length,
    late: kept.filter((p) => p === "late").length,
  };
  const matches = want.accepted === got.accepted && want.duplicates === got.duplicates && want.late === got.late;
  if (matches && !kept.includes("unknown")) return predicted.map((p, i) => (rejected.has(i) ? "rejected" : p));
  // Counts cannot be attributed per key: a failure unless explained (earlier attempts of a 429, unknown dependencies).
  if (!req.retried429 && !kept.includes("unknown")) {
    stats.batchMismatchCount++;
    if (stats.batchMismatches.length < 10) {
      const first = req.events[0]!.wire.event_id;
      stats.batchMismatches.push(`batch from ${first}: answered ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
  }
  return predicted.map((_, i) => (rejected.has(i) ? "rejected" : "unknown"));
}

// ---- scheduler ----

async function run(o: Options, stats: Stats, stop: AbortController) {
  const { next, planned } = workload(o, Date.now() - PAST - o.events * (o.rate > 0 ? 1000 / o.rate : 1));
  const requests = Math.ceil(o.events / o.batch);
  const inflight = new Set<Promise<void>>();
  const start = performance.now();
  let lastAcked = 0;
  const progress = setInterval(() => {
    const sorted = stats.latencies.slice().sort((a, b) => a - b);
    const p99 = percentile(sorted, 0.99);
    const errors = stats.transportErrors + stats.httpErrors;
    console.error(
      `[${((performance.now() - start) / 1000).toFixed(0).padStart(4)}s] sent ${stats.eventsSent}  acked ${stats.eventsAcked}  errors ${errors}  ` +
        `${stats.eventsAcked - lastAcked} events/s  p99 ${p99 === null ? "-" : `${p99.toFixed(1)} ms`}`,
    );
    lastAcked = stats.eventsAcked;
  }, 1000);
  let eventIndex = 0;
  for (let r = 0; r < requests && !stop.signal.aborted; r++) {
    const due = start + ((r * o.batch) / o.rate) * 1000;
    if (o.rate > 0) await sleep(due - performance.now(), stop.signal);
    while (inflight.size >= o.concurrency) await Promise.race(inflight);
    if (stop.signal.aborted) break;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const req: Req = { events: [], scheduledAt: o.rate > 0 ? due : performance.now(), retried429: false, done, finish };
    for (; req.events.length < o.batch && eventIndex < o.events; eventIndex++) {
      const ev = next(eventIndex);
      ev.req = req;
      req.events.push(ev);
    }
    stats.eventsSent += req.events.length;
    stats.requestsSent++;
    const p = send(o, stats, req, stop.signal).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  clearInterval(progress);
  return { durationMs: performance.now() - start, planned };
}

// ---- verify ----

interface Mismatch { key: string; field: string; expected: string; actual: number | string }

async function verify(o: Options, perKey: KeyCounts[]): Promise<{ checked: number; mismatches: Mismatch[] }> {
  const mismatches: Mismatch[] = [];
  let nextKey = 0;
  let checked = 0;
  const check = (key: string, field: string, actual: number, min: number, max: number) => {
    if (actual >= min && actual <= max) return;
    const expected = max === Infinity ? `>= ${min}` : min === max ? String(min) : `${min}..${max}`;
    mismatches.push({ key, field, expected, actual });
  };
  const worker = async () => {
    for (let k = nextKey++; k < perKey.length; k = nextKey++) {
      const key = keyName(o.runId, k);
      const want = perKey[k]!;
      let totals: { events: number; late: number; duplicates: number };
      try {
        const res = await fetch(`${o.url}/v1/actors/${encodeURIComponent(key)}`, { signal: AbortSignal.timeout(o.timeoutMs) });
        const body = (await res.json()) as { totals?: typeof totals };
        if (res.status === 404) totals = { events: 0, late: 0, duplicates: 0 };
        else if (res.ok && body.totals) totals = body.totals;
        else throw new Error(`HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
      } catch (error) {
        mismatches.push({ key, field: "request", expected: "totals", actual: (error as Error).message });
        continue;
      }
      checked++;
      check(key, "events", totals.events, want.accepted, want.accepted + want.unknown);
      check(key, "late", totals.late, want.late, want.late + want.unknown);
      check(key, "duplicates", totals.duplicates, want.duplicates, Infinity);
    }
  };
  await Promise.all(Array.from({ length: Math.min(VERIFY_CONCURRENCY, perKey.length) }, worker));
  return { checked, mismatches };
}

// ---- report ----

function buildReport(o: Options, stats: Stats, durationMs: number, aborted: boolean, planned: { duplicates: number; late: number }, verification: Awaited<ReturnType<typeof verify>> | null) {
  const sorted = stats.latencies.slice().sort((a, b) => a - b);
  const seconds = durationMs / 1000;
  const verificationPassed = verification ? verification.mismatches.length === 0 && stats.batchMismatchCount === 0 : null;
  const ok = !aborted && stats.transportErrors === 0 && stats.httpErrors === 0 && stats.outcomes.rejected === 0 && verificationPassed !== false;
  return {
    ok,
    url: o.url,
    run_id: o.runId,
    seed: o.seed,
    options: { events: o.events, rate: o.rate, concurrency: o.concurrency, batch: o.batch, keys: o.keys, dup_rate: o.dupRate, late_rate: o.lateRate, types: o.types, timeout_ms: o.timeoutMs, max_seconds: o.maxSeconds },
    duration_s: round(seconds, 3),
    aborted,
    events: { sent: stats.eventsSent, acked: stats.eventsAcked, failed: stats.eventsFailed, planned_duplicates: planned.duplicates, planned_late: planned.late },
    requests: { sent: stats.requestsSent, ok: stats.requestsOk },
    throughput: { events_per_s: round(stats.eventsAcked / seconds, 1), requests_per_s: round(stats.requestsOk / seconds, 1) },
    latency_ms: {
      measured_from: o.rate > 0 ? "scheduled send time" : "actual send time",
      p50: round(percentile(sorted, 0.5)),
      p95: round(percentile(sorted, 0.95)),
      p99: round(percentile(sorted, 0.99)),
      max: round(percentile(sorted, 1)),
    },
    status_codes: stats.status,
    outcomes: stats.outcomes,
    retries_429: stats.retries429,
    transport_errors: stats.transportErrors,
    http_errors: stats.httpErrors,
    error_samples: stats.errorSamples,
    verification: verification
      ? {
          passed: verificationPassed,
          keys_checked: verification.checked,
          mismatch_count: verification.mismatches.length,
          mismatches: verification.mismatches.slice(0, 10),
          batch_mismatch_count: stats.batchMismatchCount,
          batch_mismatches: stats.batchMismatches,
        }
      : null,
  };
}
type Report = ReturnType<typeof buildReport>;

function printReport(r: Report) {
  const l = r.latency_ms;
  const lines = [
    `keyflow load: ${r.url}  run ${r.run_id}  seed ${r.seed}`,
    `  duration        ${r.duration_s} s${r.aborted ? "  (ABORTED at --max-seconds)" : ""}`,
    `  events          ${r.events.sent} sent, ${r.events.acked} acked, ${r.events.failed} failed (planned: ${r.events.planned_duplicates} duplicates, ${r.events.planned_late} late)`,
    `  throughput      ${r.throughput.events_per_s} events/s, ${r.throughput.requests_per_s} requests/s (${r.requests.ok}/${r.requests.sent} requests ok)`,
    `  latency (ms)    p50 ${l.p50}  p95 ${l.p95}  p99 ${l.p99}  max ${l.max}  (from ${l.measured_from})`,
    `  status codes    ${Object.entries(r.status_codes).map(([code, n]) => `${code}: ${n}`).join(", ") || "none"}`,
    `  outcomes        accepted ${r.outcomes.accepted} (late ${r.outcomes.late}), duplicates ${r.outcomes.duplicates}, rejected ${r.outcomes.rejected}`,
    `  429 retried     ${r.retries_429}`,
    `  errors          ${r.transport_errors} transport, ${r.http_errors} HTTP`,
    ...r.error_samples.map((e) => `                  ${e}`),
  ];
  const v = r.verification;
  if (!v) lines.push("  verification    skipped (--no-verify)");
  else {
    lines.push(`  verification    ${v.passed ? "passed" : "FAILED"}: ${v.keys_checked} keys checked, ${v.mismatch_count} mismatches, ${v.batch_mismatch_count} batches answered differently than predicted`);
    for (const m of v.mismatches) lines.push(`                  ${m.key}: totals.${m.field} = ${m.actual}, expected ${m.expected}`);
    for (const b of v.batch_mismatches) lines.push(`                  ${b}`);
  }
  lines.push(`  result          ${r.ok ? "OK" : "FAILED"}`);
  console.log(lines.join("\n"));
}

// ---- main ----

async function main() {
  const o = parseOptions(process.argv.slice(2));
  try {
    const res = await fetch(`${o.url}/health`, { signal: AbortSignal.timeout(o.timeoutMs) });
    await res.arrayBuffer();
  } catch (error) {
    console.error(`load: cannot reach ${o.url}: ${(error as Error).message}`);
    process.exit(1);
  }
  console.error(
    `load: ${o.events} events to ${o.url} at ${o.rate > 0 ? `${o.rate} events/s (open loop)` : "full speed (closed loop)"}, ` +
      `batch ${o.batch}, concurrency ${o.concurrency}, ${o.keys} keys, run ${o.runId}, seed ${o.seed}`,
  );
  const stats = newStats(o.keys);
  const stop = new AbortController();
  const deadline = setTimeout(() => stop.abort(), o.maxSeconds * 1000);
  const { durationMs, planned } = await run(o, stats, stop);
  clearTimeout(deadline);
  const verification = o.verify ? await verify(o, stats.perKey) : null;
  const report = buildReport(o, stats, durationMs, stop.signal.aborted, planned, verification);
  if (o.json) console.log(JSON.stringify(report, null, 2));
  else printReport(report);
  process.exit(report.ok ? 0 : 1);
}

if (import.meta.main) await main();

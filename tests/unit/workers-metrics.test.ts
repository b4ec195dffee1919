/**
 * Metrics on Workers (src/hosts/durable/metrics-hub.ts, metrics-reporter.ts): isolates and key
 * objects report deltas and state to one hub, which sums them exactly, applies each report once,
 * and serves the self-hosted server's metric names. Time is injected everywhere; nothing sleeps.
 */
import { describe, expect, test } from "bun:test";
import { KeyflowMetrics } from "../../src/metrics/keyflow.ts";
import { Registry, type Series } from "../../src/metrics/registry.ts";
import { MetricsHub, STALE_AFTER_MS, FORGET_AFTER_MS, RESEND_WITHIN_MS, type ActorSinkState, type MetricsReport } from "../../src/hosts/durable/metrics-hub.ts";
import { ActorMetrics, IsolateMetrics, Reporter, metricsSettings, type MetricsHubStub } from "../../src/hosts/durable/metrics-reporter.ts";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { DurableHost } from "../../src/hosts/durable/durable-host.ts";
import { SinkChannel } from "../../src/delivery/channel.ts";
import { DEFAULT_CONFIG } from "../../src/settings/config.ts";
import { FlakyStore } from "../support/flaky-store.ts";
import { FakeSink } from "../support/fake-sink.ts";
import { fakeEnv } from "../support/fake-env.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const line = (text: string, prefix: string) => text.split("\n").find((l) => l.startsWith(prefix));

/** An isolate's deltas: what its app counted since its last report. */
function isolateDelta(events: number, tenant = "acme", type = "purchase"): Series[] {
  const m = new KeyflowMetrics();
  for (let i = 0; i < events; i++) m.event(tenant, type, "accepted");
  m.request("/v1/events", "POST", 202, 0.004);
  m.ingest(tenant, 0.003, events);
  return m.registry.series(true);
}

const sinkState = (over: Partial<ActorSinkState> = {}): ActorSinkState => ({
  sink: "webhook",
  backlog: 0,
  oldestAt: null,
  breaker: "closed",
  failingSince: null,
  lastError: null,
  lastLatencyMs: 12,
  consecutiveFailures: 0,
  ...over,
});

describe("registry: drain and absorb", () => {
  test("a drained registry starts again from zero; absorbing deltas sums them, histograms bucket by bucket", () => {
    const a = new Registry();
    const c = a.counter("x_total", "X.", ["tenant"]);
    const h = a.histogram("d_seconds", "D.", [], [0.1, 1]);
    c.inc(["t"], 2);
    h.observe([], 0.05);
    const first = a.series(true);
    expect(a.series()).toEqual([]);
    c.inc(["t"], 3);
    h.observe([], 5);
    const second = a.series(true);

    const b = new Registry();
    b.counter("x_total", "X.", ["tenant"]);
    b.histogram("d_seconds", "D.", [], [0.1, 1]);
    const touched = b.absorb([...first, ...second, { name: "unknown_total", labels: [], value: 1 }, { name: "x_total", labels: ["a", "b"], value: 1 }]);
    expect(touched).toEqual([
      { name: "x_total", labels: ["t"], value: 5 },
      { name: "d_seconds", labels: [], counts: [1, 1], sum: 5.05, count: 2 },
    ]);
    expect(b.text()).toContain('x_total{tenant="t"} 5\n');
    expect(b.text()).toContain('d_seconds_bucket{le="+Inf"} 2\n');
  });

  test("absorbed event types stay bounded: 200 of them, then _other", () => {
    const m = new KeyflowMetrics();
    const series: Series[] = [];
    for (let i = 0; i < 300; i++) series.push({ name: "keyflow_events_total", labels: ["t", `type${i}`, "accepted"], value: 1 });
    m.absorb(series);
    const lines = m.text().split("\n").filter((l) => l.startsWith("keyflow_events_total{"));
    expect(lines).toHaveLength(201);
    expect(lines).toContain('keyflow_events_total{tenant="t",type="_other",outcome="accepted"} 100');
  });
});

describe("MetricsHub", () => {
  test("sums isolates' deltas exactly, under the self-hosted server's metric names, sinks shown before any delivery", () => {
    const hub = new MetricsHub(new MemoryKvStore(), { sinks: ["webhook"] });
    expect(hub.report({ reporter: "isolate-a", epoch: "e1", seq: 1, series: isolateDelta(3) }, T0).applied).toBe(true);
    expect(hub.report({ reporter: "isolate-b", epoch: "e1", seq: 1, series: isolateDelta(4) }, T0).applied).toBe(true);
    const text = hub.text(T0);
    expect(text).toContain('keyflow_events_total{tenant="acme",type="purchase",outcome="accepted"} 7\n');
    expect(text).toContain('keyflow_http_requests_total{route="/v1/events",method="POST",status="202"} 2\n');
    expect(text).toContain('keyflow_ingest_duration_seconds_count{tenant="acme"} 2\n');
    expect(text).toContain('keyflow_events_received_total{tenant="acme"} 7\n');
    expect(text).toContain('keyflow_sink_delivered_total{sink="webhook"} 0\n');
    expect(text).toContain('keyflow_sink_backlog_records{sink="webhook"} 0\n');
    // Every family the hub serves is one the self-hosted server serves, with the same type, but
    // the Durable Objects' billed usage (keyflow_do_*), which exists on Workers only.
    const selfHosted = new KeyflowMetrics();
    selfHosted.collectHost(() => ({ now: T0, actorsInMemory: 0, journalRows: 0, commits: 0, checkpoints: 0, rowsWritten: 0, replayed: 0, sinks: [], backlog: new Map(), deadLetters: 0 }));
    const families = (t: string) => new Map([...t.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const served = families(selfHosted.text());
    const hubFamilies = families(text);
    for (const [name, type] of hubFamilies) expect(name.startsWith("keyflow_do_") ? "counter" : served.get(name), name).toBe(type);
    expect([...hubFamilies.keys()].filter((name) => name.startsWith("keyflow_do_"))).toHaveLength(5);
  });

  test("a report is applied once: a retry (same incarnation and number), or an earlier incarnation's, changes nothing; a new incarnation counts", () => {
    const store = new MemoryKvStore();
    const hub = new MetricsHub(store, { sinks: [] });
    const report: MetricsReport = { reporter: "isolate-a", epoch: "0190-b", seq: 1, series: isolateDelta(5) };
    expect(hub.report(report, T0).applied).toBe(true);
    expect(hub.report(report, T0 + 1).applied).toBe(false);
    expect(hub.report({ ...report, epoch: "0190-a", seq: 9 }, T0 + 2).applied).toBe(false);
    expect(hub.report({ ...report, seq: 2, series: isolateDelta(1) }, T0 + 3).applied).toBe(true);
    expect(hub.report({ ...report, epoch: "0190-c", seq: 1, series: isolateDelta(1) }, T0 + 4).applied).toBe(true);
    expect(line(hub.text(T0), "keyflow_events_total{")).toBe('keyflow_events_total{tenant="acme",type="purchase",outcome="accepted"} 7');
    // Restarted on the same storage: the totals, and what it has applied, are still known.
    const again = new MetricsHub(store, { sinks: [] });
    expect(again.report({ ...report, epoch: "0190-c", seq: 1 }, T0 + 5).applied).toBe(false);
    expect(line(again.text(T0), "keyflow_events_total{")).toBe('keyflow_events_total{tenant="acme",type="purchase",outcome="accepted"} 7');
    expect(again.text(T0)).toBe(hub.text(T0));
  });

  test("a failed write applies nothing: memory goes back to what is stored", () => {
    const store = new FlakyStore();
    const hub = new MetricsHub(store, { sinks: [] });
    hub.report({ reporter: "i", epoch: "e", seq: 1, series: isolateDelta(2) }, T0);
    store.failures = 1;
    expect(() => hub.report({ reporter: "i", epoch: "e", seq: 2, series: isolateDelta(3) }, T0)).toThrow("disk I/O error");
    expect(line(hub.text(T0), "keyflow_events_total{")).toEndWith(" 2");
    // The retry of the failed report is applied (it never was).
    expect(hub.report({ reporter: "i", epoch: "e", seq: 2, series: isolateDelta(3) }, T0).applied).toBe(true);
    expect(line(hub.text(T0), "keyflow_events_total{")).toEndWith(" 5");
  });

  test("a malformed report names no row and changes nothing", () => {
    const store = new MemoryKvStore();
    const hub = new MetricsHub(store, { sinks: [] });
    for (const bad of [{ reporter: "../x" }, { reporter: "a".repeat(200) }, { seq: 0 }, { seq: 1.5 }, { series: "x" }]) {
      expect(hub.report({ reporter: "i", epoch: "e", seq: 1, series: [], ...bad } as MetricsReport, T0).applied).toBe(false);
    }
    expect(store.size).toBe(0);
  });

  test("gauges sum each object's last state; breakers count objects that reported lately; the oldest record's age comes from the time passed in", () => {
    const hub = new MetricsHub(new MemoryKvStore(), { sinks: ["webhook"] });
    const actor = (id: string, at: number, sinks: ActorSinkState[], deadLetters = 0) =>
      hub.report({ reporter: id, epoch: "e", seq: 1, series: [], actor: { sinks, deadLetters } }, at);
    actor("do-1", T0, [sinkState({ backlog: 3, oldestAt: T0 - 4_000, breaker: "open", failingSince: T0 - 70_000, lastError: "503" })], 2);
    actor("do-2", T0, [sinkState({ backlog: 1, oldestAt: T0 - 1_000 })]);
    actor("do-3", T0 - STALE_AFTER_MS - 1, [sinkState({ breaker: "open", failingSince: T0 - 600_000 })], 1);
    const text = hub.text(T0 + 6_000);
    expect(text).toContain('keyflow_sink_backlog_records{sink="webhook"} 4\n');
    expect(text).toContain('keyflow_sink_oldest_undelivered_age_seconds{sink="webhook"} 10\n');
    expect(text).toContain("keyflow_dead_letters 3\n");
    expect(text).toContain('keyflow_sink_breaker_state{sink="webhook",state="open"} 1\n');
    expect(text).toContain('keyflow_sink_breaker_state{sink="webhook",state="closed"} 1\n');
    // /ready: down (one recent object's breaker is open), failing since that object's failure began; do-3's is stale.
    const [status] = hub.sinkStatus(T0 + 6_000);
    expect(status).toMatchObject({ sink: "webhook", breaker: "open", failingSince: T0 - 70_000, lastError: "503" });
    // The objects report again: delivered, breakers closed.
    hub.report({ reporter: "do-1", epoch: "e", seq: 2, series: [{ name: "keyflow_sink_delivered_total", labels: ["webhook"], value: 3 }], actor: { sinks: [sinkState()], deadLetters: 2 } }, T0 + 10_000);
    expect(hub.sinkStatus(T0 + 10_000)[0]).toMatchObject({ breaker: "closed", failingSince: null, lastError: null, delivered: 3, lastLatencyMs: 12 });
  });

  test("reporters with nothing left to show are forgotten after FORGET_AFTER_MS; those with a backlog or dead letters are kept", () => {
    const store = new MemoryKvStore();
    const hub = new MetricsHub(store, { sinks: ["webhook"] });
    hub.report({ reporter: "isolate-old", epoch: "e", seq: 1, series: isolateDelta(1) }, T0);
    hub.report({ reporter: "do-idle", epoch: "e", seq: 1, series: [], actor: { sinks: [sinkState()], deadLetters: 0 } }, T0);
    hub.report({ reporter: "do-dlq", epoch: "e", seq: 1, series: [], actor: { sinks: [sinkState()], deadLetters: 4 } }, T0);
    expect(hub.reporterCount).toBe(3);
    hub.report({ reporter: "isolate-new", epoch: "e", seq: 1, series: isolateDelta(1) }, T0 + FORGET_AFTER_MS + 1);
    expect(hub.reporterCount).toBe(2);
    expect(store.list("r/").map(([k]) => k)).toEqual(["r/do-dlq", "r/isolate-new"]);
    expect(hub.text(T0 + FORGET_AFTER_MS + 1)).toContain("keyflow_dead_letters 4\n");
    // Counts stay: only the memory of who reported goes.
    expect(line(hub.text(T0), "keyflow_events_total{")).toEndWith(" 2");
  });

  test("promtool check metrics accepts the hub's text", () => {
    const hub = new MetricsHub(new MemoryKvStore(), { sinks: ["webhook", "kafka"] });
    hub.report({ reporter: "i", epoch: "e", seq: 1, series: isolateDelta(2) }, T0);
    hub.report({ reporter: "do", epoch: "e", seq: 1, series: [], actor: { sinks: [sinkState({ backlog: 2, oldestAt: T0 })], deadLetters: 1 } }, T0);
    const promtool = Bun.which("promtool");
    if (!promtool) return void console.warn("promtool not installed: skipped (tests/e2e/workers-metrics.test.ts checks it on workerd)");
    const check = Bun.spawnSync([promtool, "check", "metrics"], { stdin: new TextEncoder().encode(hub.text(T0)) });
    const said = check.stdout.toString() + check.stderr.toString();
    expect(said, said).not.toMatch(/error|problem/i);
    expect(check.exitCode).toBe(0);
  });
});

describe("Reporter", () => {
  function setup(send: (r: MetricsReport) => Promise<unknown>) {
    const { clock } = fakeEnv(T0);
    let pending = 0;
    const collect = () => (pending ? { series: [{ name: "keyflow_events_received_total", labels: ["t"], value: pending }] } : undefined);
    const reporter = new Reporter({ reporter: "r", epoch: "e", intervalMs: 10_000, clock, collect: () => {
      const body = collect();
      pending = 0;
      return body;
    }, send });
    return { reporter, clock, add: (n: number) => (pending += n) };
  }

  test("at most one report per interval unless forced; nothing to say, nothing sent", async () => {
    const sent: MetricsReport[] = [];
    const { reporter, clock, add } = setup(async (r) => void sent.push(r));
    await reporter.flush();
    expect(sent).toHaveLength(0);
    add(1);
    await reporter.flush();
    add(2);
    await reporter.flush();
    expect(sent.map((r) => r.seq)).toEqual([1]);
    clock.time += 10_000;
    await reporter.flush();
    add(3);
    await reporter.flush(true);
    expect(sent.map((r) => [r.seq, r.series[0] && "value" in r.series[0] ? r.series[0].value : 0])).toEqual([[1, 1], [2, 2], [3, 3]]);
  });

  test("an answer lost after the hub applied the report: sent again with the same number, counted once", async () => {
    const hub = new MetricsHub(new MemoryKvStore(), { sinks: [] });
    let lose = 1;
    let down = 1;
    const { reporter, clock, add } = setup(async (r) => {
      if (down-- > 0) throw new Error("hub unreachable"); // never got there
      hub.report(r, clock.now());
      if (lose-- > 0) throw new Error("Durable Object reset because its code was updated"); // got there, answer lost
    });
    add(5);
    await reporter.flush(true); // unreachable: kept
    await reporter.flush(true); // applied, answer lost: kept
    add(2); // newer counts wait behind the unacknowledged report
    await reporter.flush(true); // same seq again: the hub ignores it; then the new counts go
    await reporter.flush(true);
    expect(line(hub.text(T0), "keyflow_events_received_total{")).toBe('keyflow_events_received_total{tenant="t"} 7');
  });

  test("a report unacknowledged for longer than RESEND_WITHIN_MS is dropped (the hub may have forgotten its number): counts lost, never doubled", async () => {
    const sent: number[] = [];
    let fail = true;
    const { reporter, clock, add } = setup(async (r) => {
      if (fail) throw new Error("down");
      sent.push(r.seq);
    });
    add(1);
    await reporter.flush(true);
    clock.time += RESEND_WITHIN_MS + 1;
    fail = false;
    add(1);
    await reporter.flush(true);
    expect(sent).toEqual([2]);
  });

  test("a forced flush asked for while a report is in flight runs when that one is answered", async () => {
    const sent: number[] = [];
    let answer: () => void = () => {};
    const { reporter, add } = setup((r) => new Promise<void>((resolve) => ((answer = resolve), sent.push(r.seq))));
    add(1);
    const first = reporter.flush(true);
    add(1);
    const second = reporter.flush(true);
    expect(sent).toEqual([1]);
    answer();
    // The second report goes out once the first one's answer is in (a few microtask turns).
    for (let turn = 0; sent.length < 2 && turn < 100; turn++) await Promise.resolve();
    answer();
    await Promise.all([first, second]);
    expect(sent).toEqual([1, 2]);
  });
});

describe("ActorMetrics: a key's Durable Object", () => {
  test("after its alarm delivers, an object reports its channels' deltas and its delivery state; again only once something changed", async () => {
    const { clock } = fakeEnv(T0);
    const sink = new FakeSink("webhook");
    const config = { ...DEFAULT_CONFIG, sinks: ["webhook"] };
    const channels = [new SinkChannel(sink, config.delivery, { next: () => 0.5 })];
    let alarmAt: number | null = null;
    const host = new DurableHost({ config, clock, store: new MemoryKvStore(), alarms: { setAlarm: (at) => void (alarmAt = at), deleteAlarm: () => void (alarmAt = null) }, channels });
    const hub = new MetricsHub(new MemoryKvStore(), { sinks: ["webhook"] });
    const reports: MetricsReport[] = [];
    const metrics = new ActorMetrics({ id: "do-1", epoch: "e", intervalMs: 10_000, clock, channels, send: async (r) => (reports.push(r), hub.report(r, clock.now())) });
    const event = (id: string) => ({ id, assigned: false, type: "purchase", key: "default/alice", ts: T0 });

    const { scheduled } = host.ingest("default/alice", [event("e1"), event("e2")]);
    await scheduled;
    // Before delivery: two records wait; the alarm is near, so the object waits for the interval.
    await metrics.afterRun(host.loaded, alarmAt);
    expect(reports).toHaveLength(1); // the first report is due at once
    expect(reports[0]!.actor!.sinks[0]).toMatchObject({ backlog: 2, oldestAt: T0 });
    clock.time = alarmAt!;
    await host.alarm(0);
    // Delivered; the next alarm is a window's close, far off: the object reports before it goes idle.
    await metrics.afterRun(host.loaded, alarmAt);
    expect(reports).toHaveLength(2);
    expect(reports[1]!.series).toEqual([
      { name: "keyflow_sink_delivered_total", labels: ["webhook"], value: 2 },
      { name: "keyflow_sink_attempts_total", labels: ["webhook"], value: 1 },
    ]);
    expect(reports[1]!.actor!.sinks[0]).toMatchObject({ backlog: 0, breaker: "closed" });
    await metrics.afterRun(host.loaded, alarmAt);
    expect(reports).toHaveLength(2); // nothing changed
    const text = hub.text(clock.now());
    expect(text).toContain('keyflow_sink_delivered_total{sink="webhook"} 2\n');
    expect(text).toContain('keyflow_sink_backlog_records{sink="webhook"} 0\n');
  });
});

describe("IsolateMetrics: a Worker isolate", () => {
  function setup(intervalMs = 10_000) {
    const { clock, timers } = fakeEnv(T0);
    const hub = new MetricsHub(new MemoryKvStore(), { sinks: ["webhook"] });
    const calls = { report: 0, sinkStatus: 0 };
    const stub: MetricsHubStub = {
      report: async (r) => (calls.report++, hub.report(r, clock.now())),
      text: async () => hub.text(clock.now()),
      sinkStatus: async () => (calls.sinkStatus++, hub.sinkStatus(clock.now())),
    };
    const points: unknown[] = [];
    const isolate = new IsolateMetrics({ id: "isolate-1", epoch: "e", intervalMs, clock, timers, hub: () => stub, analytics: { writeDataPoint: (p) => void points.push(p) } });
    const waited: Array<Promise<unknown>> = [];
    return { isolate, clock, timers, hub, calls, points, waitUntil: (p: Promise<unknown>) => void waited.push(p), waited };
  }

  test("requests schedule one report per interval in a waitUntil; a scrape sends this isolate's counts first", async () => {
    const { isolate, timers, calls, waitUntil, waited } = setup();
    for (let i = 0; i < 5; i++) {
      isolate.metrics.event("acme", "purchase", "accepted");
      isolate.afterRequest(waitUntil);
    }
    expect(waited).toHaveLength(1);
    expect(calls.report).toBe(0);
    timers.advance(10_000);
    await Promise.all(waited);
    expect(calls.report).toBe(1);
    isolate.metrics.event("acme", "purchase", "duplicate");
    const text = await isolate.scrape();
    expect(text).toContain('keyflow_events_total{tenant="acme",type="purchase",outcome="accepted"} 5\n');
    expect(text).toContain('keyflow_events_total{tenant="acme",type="purchase",outcome="duplicate"} 1\n');
    expect(calls.report).toBe(2);
  });

  test("an interval longer than a waitUntil may last is cut to 20 s for the isolate", async () => {
    const { isolate, timers, calls, waitUntil, waited } = setup(60_000);
    isolate.metrics.event("acme", "purchase", "accepted");
    isolate.afterRequest(waitUntil);
    timers.advance(20_000);
    await Promise.all(waited);
    expect(calls.report).toBe(1);
  });

  test("/ready asks the hub at most once per 5 s per isolate", async () => {
    const { isolate, clock, calls } = setup();
    await isolate.sinkStatus();
    await isolate.sinkStatus();
    expect(calls.sinkStatus).toBe(1);
    clock.time += 5_000;
    expect((await isolate.sinkStatus()).map((s) => s.sink)).toEqual(["webhook"]);
    expect(calls.sinkStatus).toBe(2);
  });

  test("with an Analytics Engine dataset bound, each request is also one data point (never awaited)", () => {
    const { isolate, points } = setup();
    isolate.metrics.request("/v1/events", "POST", 202, 0.002);
    expect(points).toEqual([{ indexes: ["/v1/events"], blobs: ["/v1/events", "POST", "202"], doubles: [0.002] }]);
  });
});

test("KEYFLOW_METRICS and KEYFLOW_METRICS_INTERVAL", () => {
  expect(metricsSettings({})).toEqual({ on: true, intervalMs: 10_000 });
  expect(metricsSettings({ KEYFLOW_METRICS: "off", KEYFLOW_METRICS_INTERVAL: "30s" })).toEqual({ on: false, intervalMs: 30_000 });
  expect(() => metricsSettings({ KEYFLOW_METRICS: "maybe", KEYFLOW_METRICS_INTERVAL: "10ms" })).toThrow(/KEYFLOW_METRICS=.*KEYFLOW_METRICS_INTERVAL/s);
});

/**
 * keyflow's deterministic simulator: the real actor core and either real host (the Durable Object
 * host or the process host) with virtual time and one seeded PRNG. `bun run simulate --seed N`.
 *
 * Modules:
 *   prng.ts        the one PRNG (xorshift32, splitmix-seeded) and a data hash for poison records
 *   virtual-time.ts virtual clock + discrete-event queue (ties broken by insertion order), the hosts' Timers
 *   swarm.ts       the runtime config of a seed (random knobs: windows, bounds, batch, budget, ...)
 *   faults.ts      which faults a seed turns on (swarm testing), fault and path counters
 *   workload.ts    clients: keys (hostile names too), events, duplicates, out-of-order / late times, skew, bursts
 *   store.ts       storage that survives crashes, with failing writes
 *   durable.ts     the Durable Object host: one alarm slot (at-least-once, 6 retries from 2 s), serialized
 *                  handlers with interleaving at sink awaits, crashes, eviction; runs src/hosts/durable
 *                  with or without the three fixes the simulator found (--glue)
 *   process.ts     the process host: src/hosts/process (group commit, command journal, checkpoints,
 *                  eviction, delivery loops) crashed at any point and recovered from its store
 *   sinks.ts      idempotent sinks with faults: transient, partial, timeout (unknown outcome), late
 *                 apply, duplicated request, slow, outage, permanent (data-determined poison)
 *   model.ts      the ground truth, written from the spec, fed only what committed
 *   invariants.ts the checker: continuous checks at each commit / ack / sink effect, full checks at the end
 *
 * A run: fault phase (the workload is sent while faults fire) -> liveness phase (faults off; time
 * advances until everything must have converged) -> full checks -> repair phase, if any record was
 * dead-lettered (the sinks are fixed, every DLQ is replayed; then everything must be everywhere).
 */
import { ACTOR_ROW } from "../actor/layout.ts";
import type { Config } from "../settings/config.ts";
import { parseGlue, type Broken, type Glue, type SimContext } from "./context.ts";
import { chooseFaults, Counters, enabledFaults, type FaultPlan } from "./faults.ts";
import { TraceHash } from "./hash.ts";
import { DurableSimHost } from "./durable.ts";
import { ProcessSimHost } from "./process.ts";
import type { RequestResult, SimHost } from "./sim-host.ts";
import { Checker, mirrorCount, type Violation } from "./invariants.ts";
import { hash32, Prng } from "./prng.ts";
import { VirtualTime } from "./virtual-time.ts";
import { SimSink } from "./sinks.ts";
import { chooseAnalytics, chooseConfig, describeConfig, modelConfig, processKnobs } from "./swarm.ts";
import { generateWorkload, planWorkload, type ClientRequest } from "./workload.ts";

/** Virtual start time (fixed: nothing reads the host clock). */
export const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);

export const DEFAULTS = { keys: 4, events: 240, steps: 200_000 };

export interface SimOptions {
  seed: number;
  keys?: number;
  events?: number;
  /** Step budget of the fault phase; then faults go off and the liveness phase starts. */
  steps?: number;
  /** A deliberate defect (tests of the checker). */
  broken?: Broken;
  /** Which host runs the actors (default "durable"). */
  host?: "durable" | "process";
  /** The Durable Object glue (default "fixed", as deployed; "unfixed" takes out the simulator's fixes). */
  glue?: Glue;
  /** false: the seed runs without keyflow.config.json analytics, whatever it draws (default true). */
  analytics?: boolean;
  /** Keep the last N steps for the report (0 = none). */
  traceTail?: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: Violation;
  /** The one-line replay command. */
  replay: string;
  /** Fingerprint of the whole run: every step, every sink effect, every stored row. */
  hash: string;
  counters: Counters;
  steps: number;
  virtualMs: number;
  config: Config;
  plan: FaultPlan;
  enabled: string[];
  workload: string;
  stats: Record<string, number>;
  peaks: Checker["peaks"];
  tail: string[];
}

export function replayCommand(opts: SimOptions): string {
  const parts = ["bun run simulate --seed", String(opts.seed)];
  if (opts.keys !== undefined && opts.keys !== DEFAULTS.keys) parts.push("--keys", String(opts.keys));
  if (opts.events !== undefined && opts.events !== DEFAULTS.events) parts.push("--events", String(opts.events));
  if (opts.steps !== undefined && opts.steps !== DEFAULTS.steps) parts.push("--steps", String(opts.steps));
  parts.push("--host", opts.host ?? "durable");
  if (opts.glue && opts.glue !== "fixed") parts.push("--glue", opts.glue);
  if (opts.broken && opts.broken !== "none") parts.push("--broken", opts.broken);
  if (opts.analytics === false) parts.push("--no-analytics");
  return parts.join(" ");
}

/** Lets every promise continuation of the step run (the microtask queue drains before a macrotask). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs one seed: fault phase, liveness phase, full checks. Deterministic: the seed decides everything. */
export async function runSeed(opts: SimOptions): Promise<SimResult> {
  const keys = opts.keys ?? DEFAULTS.keys;
  const eventCount = opts.events ?? DEFAULTS.events;
  const maxSteps = opts.steps ?? DEFAULTS.steps;
  const broken = opts.broken ?? "none";
  const prng = new Prng(opts.seed);
  const counters = new Counters();
  const sched = new VirtualTime(T0);
  const trace = new TraceHash();

  // Swarm: configuration, faults and workload of this seed.
  const { config, knobs } = chooseConfig(prng);
  // From a PRNG of its own, derived from the seed: seeds keep the configuration, faults and workload
  // they had before analytics existed (tests name seeds that reproduce a bug).
  const analytics = opts.analytics === false ? undefined : chooseAnalytics(new Prng(hash32("analytics", opts.seed >>> 0)), config.windows);
  if (analytics) config.analytics = analytics;
  const plan = chooseFaults(prng);
  const wplan = planWorkload(prng, { keys, events: eventCount }, config.windows, config.allowedLatenessMs);
  const requests = generateWorkload(prng, wplan, T0, counters);

  // The process host's own knobs are drawn after everything else, so a seed runs the same
  // configuration, faults and workload on both hosts.
  const kind = opts.host ?? "durable";
  if (kind === "process") Object.assign(config, processKnobs(prng, config));

  const ctx: SimContext = { sched, prng, counters, faultsOn: true, poisonOn: true, plan, config, trace, observer: undefined!, broken, fixes: parseGlue(opts.glue ?? "fixed") };
  const checker = new Checker(ctx, T0, modelConfig(config, broken));
  ctx.observer = checker;
  const sinks = config.sinks.map((name) => new SimSink(name, ctx, hash32(name, opts.seed >>> 0)));
  // Half the seeds commit off the event loop, as the Bun server does (drawn apart, so seeds keep their workloads).
  const offLoopWrites = new Prng(hash32("off-loop-writes", opts.seed >>> 0)).chance(0.5);
  const host: SimHost = kind === "process" ? new ProcessSimHost(ctx, sinks, offLoopWrites) : new DurableSimHost(ctx, sinks, wplan.keys);

  // Clients: send, and retry until acknowledged (a lost reply is retried too).
  const attempt = (req: ClientRequest) => {
    if (req.done) return;
    req.attempts++;
    const res = host.request(req.key, req.events);
    if (res instanceof Promise) void res.then((r) => answered(req, r));
    else answered(req, res);
  };
  const answered = (req: ClientRequest, res: RequestResult) => {
    if ("ok" in res) {
      if (ctx.faultsOn && prng.chance(plan.responseLost)) {
        counters.fault("client_response_lost");
        sched.after(prng.range(50, 2_000), "retry", req.key, () => attempt(req));
        return;
      }
      req.done = true;
      checker.acknowledged(req.key, req.events, res.ok);
      return;
    }
    const delay = "backpressure" in res ? res.backpressure * 1_000 + prng.int(500) : prng.range(50, Math.min(10_000, 100 * 2 ** req.attempts));
    sched.after(delay, "retry", req.key, () => attempt(req));
  };
  for (const req of requests) sched.at(req.sendAt, "send", req.key, () => attempt(req));

  // Background faults: crashes, evictions, sink outages (each a chain of Poisson arrivals).
  const chain = (mean: number, kind: string, key: string, act: () => void) => {
    if (mean <= 0) return;
    const next = () =>
      sched.after(prng.exp(mean), kind, key, () => {
        if (!ctx.faultsOn) return;
        act();
        next();
      });
    next();
  };
  for (const target of host.faultTargets()) {
    chain(plan.crashMeanMs, "crash", target, () => {
      if (host.crash(target)) counters.fault("crash");
    });
    chain(plan.evictMeanMs, "evict", target, () => {
      if (host.evict(target)) counters.fault("evict");
    });
  }
  for (const sink of sinks) {
    chain(plan.sink.outageMeanMs, "outage", sink.name, () => {
      counters.fault("sink_outage");
      sink.down(sched.now() + prng.range(1_000, plan.sink.outageMaxMs));
    });
  }

  // The run: the fault phase until the workload has been sent (or the step budget is spent),
  // then the liveness phase: no more faults; time advances until everything must have converged.
  const lastSend = requests.length ? requests[requests.length - 1]!.sendAt : T0;
  const faultEnd = lastSend + 5_000;
  const typeShapes = [...(config.analytics?.types.values() ?? [])].flatMap((t) => t.windows.map((w) => (w.kind === "session" ? w.gapMs : w.sizeMs)));
  const maxWindow = Math.max(...config.windows.map((w) => w.size), ...typeShapes);
  const settleTime = maxWindow + config.allowedLatenessMs + config.idleTimeoutMs + 30 * 60_000;
  let deadline = Infinity;
  let steps = 0;
  const tailSize = opts.traceTail ?? 40;
  const tail: string[] = [];
  /** Runs tasks in time order up to `until` (or to the end of the fault phase, which then sets the deadline). */
  const drive = async () => {
    for (;;) {
      const next = sched.peekTime();
      if (next === undefined) return;
      if (ctx.faultsOn && (next > faultEnd || steps >= maxSteps)) {
        ctx.faultsOn = false;
        checker.phase = "liveness";
        deadline = Math.max(sched.now(), Math.min(next, faultEnd)) + settleTime;
      }
      if (next > deadline) return;
      const task = sched.pop()!;
      steps++;
      checker.step = steps;
      checker.task = `${task.kind} ${JSON.stringify(task.key)}`;
      trace.text(task.kind).text(task.key).num(task.at);
      if (tailSize) {
        tail.push(`#${steps} +${task.at - T0}ms ${checker.phase} ${task.kind} ${JSON.stringify(task.key)}`);
        if (tail.length > tailSize) tail.shift();
      }
      task.fn();
      await settle();
      if (checker.first) return;
    }
  };
  await drive();
  if (!checker.first) {
    if (ctx.faultsOn) {
      ctx.faultsOn = false;
      checker.phase = "liveness";
    }
    checker.finish(host, wplan.keys, sinks, requests, knobs.shortBudget);
  }

  // Repair phase: the sinks are fixed (no more poison) and an operator replays every DLQ; then every
  // record must be at every sink and every DLQ empty.
  const dead = wplan.keys.some((key) => host.live(key)?.outbox.deadLetters().length || host.storedRows(key).some(([k]) => k.startsWith(ACTOR_ROW.deadLetterPrefix)));
  if (!checker.first && dead) {
    ctx.poisonOn = false;
    checker.phase = "repair";
    const mirrorsBefore = mirrorCount(sinks);
    const replayed = (key: string, n: number | "storage" | null) => {
      if (n === "storage") sched.after(1_000, "replay", key, () => replay(key));
      else if (n) counters.path("dlq_replayed", n);
    };
    const replay = (key: string) => {
      const n = host.replayDeadLetters(key);
      if (n instanceof Promise) void n.then((r) => replayed(key, r));
      else replayed(key, n);
    };
    wplan.keys.forEach((key, i) => sched.after(1 + i, "replay", key, () => replay(key)));
    deadline = sched.now() + 30 * 60_000;
    await drive();
    if (!checker.first) checker.finishRepair(host, wplan.keys, sinks, mirrorsBefore);
  }
  if (!checker.first) {
    const own = await host.finish();
    if (own) checker.violation(own);
  }

  // Fingerprint: the trace, then all durable state and every sink's effects.
  for (const [k, v] of host.allRows()) trace.text(k).text(v);
  for (const sink of sinks) for (const [id, e] of sink.effects) trace.text(id).num(e.applies);
  trace.num(prng.draws);

  const stats: Record<string, number> = {
    requests: requests.length,
    clientAttempts: requests.reduce((n, r) => n + r.attempts, 0),
    storageWrites: host.stats.storageWrites,
    coldStarts: host.stats.coldStarts,
    sinkCalls: sinks.reduce((n, s) => n + s.stats.calls, 0),
    effects: sinks.reduce((n, s) => n + s.effects.size, 0),
    reapplied: sinks.reduce((n, s) => n + s.stats.reapplied, 0),
    acceptedEvents: [...checker.models.values()].reduce((n, m) => n + m.totals.events, 0),
    closedWindows: [...checker.models.values()].reduce((n, m) => n + m.everClosed.length, 0),
  };
  const violation = checker.first;
  return {
    seed: opts.seed,
    ok: violation === undefined,
    ...(violation ? { violation } : {}),
    replay: replayCommand(opts),
    hash: trace.hex(),
    counters,
    steps,
    virtualMs: sched.now() - T0,
    config,
    plan,
    enabled: enabledFaults(plan, { ...wplan }),
    workload: `keys=${keys} events=${eventCount} requests=${requests.length} span=${wplan.durationMs}ms maxBatch=${wplan.maxBatch} values=${wplan.values} types=${wplan.types.join(",")} dup=${wplan.dupRate} ooo=${wplan.oooRate} late=${wplan.lateRate} burst=${wplan.burstRate} skew=${wplan.skewMs}`,
    stats,
    peaks: checker.peaks,
    tail,
  };
}

export { describeConfig };

/** The report of a failed seed: what broke, where, and how to replay it. */
export function formatViolation(r: SimResult): string {
  const v = r.violation!;
  return [
    `VIOLATION seed=${r.seed} at step ${v.step} (+${v.time} ms virtual, ${v.phase} phase, during ${v.task})`,
    `  ${v.message}`,
    `  replay: ${r.replay}`,
  ].join("\n");
}

import type { Event } from "../actor/event.ts";
import type { Counters } from "./faults.ts";
import type { Prng } from "./prng.ts";

export interface WorkloadPlan {
  keys: string[];
  /** Relative popularity of each key (uniform or Zipf-like). */
  weights: number[];
  events: number;
  /** Virtual time over which the first sends are spread. */
  durationMs: number;
  maxBatch: number;
  types: string[];
  values: "int" | "halves" | "sparse" | "none";
  /** Share of events that repeat one already sent (client retries / at-least-once producers). */
  dupRate: number;
  /** Share of events behind the newest one, within the allowed lateness. */
  oooRate: number;
  /** Share of events far behind: late for their windows. */
  lateRate: number;
  /** Chance that a request starts a burst of requests within milliseconds. */
  burstRate: number;
  /** Producer clock skew bound (each key's producer is off by up to this much), 0 = none. */
  skewMs: number;
}

export interface ClientRequest {
  id: number;
  key: string;
  events: Event[];
  sendAt: number;
  attempts: number;
  done: boolean;
}

/** Keys are client data: some are named like Object.prototype members or hold slashes, dots and emoji. */
const HOSTILE_KEYS = ["user/1 ü", "__proto__", "constructor", "a/../%2F", "toString", "😀 k"];
const KEY_NAMES = (i: number) => (i >= 1 && i <= HOSTILE_KEYS.length ? HOSTILE_KEYS[i - 1]! : `user-${i}`);
/** Event types too: __proto__ and constructor are valid types, and must be counted as such. */
const TYPES = ["view", "click", "buy", "refund", "signup", "__proto__", "constructor"];

export function planWorkload(
  prng: Prng,
  opts: { keys: number; events: number },
  windows: ReadonlyArray<{ size: number }>,
  allowedLatenessMs: number,
): WorkloadPlan & { allowedLatenessMs: number; maxWindow: number } {
  const keys = Array.from({ length: opts.keys }, (_, i) => KEY_NAMES(i));
  const zipf = prng.chance(0.5);
  return {
    keys,
    weights: keys.map((_, i) => (zipf ? 1 / (i + 1) : 1)),
    events: opts.events,
    durationMs: prng.pick([20_000, 60_000, 180_000, 600_000]),
    maxBatch: prng.pick([1, 3, 8, 20]),
    types: prng.subset(TYPES, 0.5),
    values: prng.pick(["int", "halves", "sparse", "none"] as const),
    dupRate: prng.chance(0.6) ? prng.pick([0.02, 0.1, 0.25]) : 0,
    oooRate: prng.chance(0.6) ? prng.pick([0.05, 0.2, 0.5]) : 0,
    lateRate: prng.chance(0.5) ? prng.pick([0.01, 0.05, 0.15]) : 0,
    burstRate: prng.chance(0.4) ? prng.pick([0.02, 0.1]) : 0,
    skewMs: prng.chance(0.3) ? prng.pick([500, 5_000, 30_000]) : 0,
    allowedLatenessMs,
    maxWindow: Math.max(...windows.map((w) => w.size)),
  };
}

/** The client requests of a run, each for one key (as the worker splits a batch per Durable Object). */
export function generateWorkload(
  prng: Prng,
  plan: ReturnType<typeof planWorkload>,
  t0: number,
  counters: Counters,
): ClientRequest[] {
  const requests: ClientRequest[] = [];
  const sent = new Map<string, Event[]>();
  const seq = new Map<string, number>();
  const skew = new Map(plan.keys.map((k) => [k, plan.skewMs ? prng.range(-plan.skewMs, plan.skewMs) : 0]));
  const total = plan.weights.reduce((a, b) => a + b, 0);
  const pickKey = () => {
    let r = prng.next() * total;
    for (let i = 0; i < plan.keys.length; i++) if ((r -= plan.weights[i]!) < 0) return plan.keys[i]!;
    return plan.keys[plan.keys.length - 1]!;
  };
  const meanBatch = (plan.maxBatch + 1) / 2;
  const meanGap = (plan.durationMs * meanBatch) / Math.max(1, plan.events);
  let t = t0 + prng.range(0, 1_000);
  let burst = 0;
  let made = 0;
  while (made < plan.events) {
    if (burst > 0) {
      burst--;
      t += prng.int(4);
    } else {
      t += prng.exp(meanGap);
      if (prng.chance(plan.burstRate)) {
        burst = prng.range(5, 30);
        counters.fault("burst");
      }
    }
    const key = pickKey();
    const history = sent.get(key) ?? [];
    sent.set(key, history);
    const size = Math.min(prng.range(1, plan.maxBatch), plan.events - made);
    const events: Event[] = [];
    // Every other request carries a correlation ID (drawn from no PRNG, so seeds replay as before).
    const requestId = requests.length % 2 ? `req-${requests.length}` : undefined;
    for (let j = 0; j < size; j++) {
      if (history.length && prng.chance(plan.dupRate)) {
        // The same event again: same id and payload (a producer's retry).
        const recent = history.slice(-50);
        events.push(prng.chance(0.2) && events.length ? events[events.length - 1]! : prng.pick(recent));
        counters.fault("client_dup");
        made++;
        continue;
      }
      const n = (seq.get(key) ?? 0) + 1;
      seq.set(key, n);
      let delay = prng.range(0, 300);
      if (prng.chance(plan.lateRate)) {
        delay = plan.allowedLatenessMs + plan.maxWindow + prng.range(1, 600_000);
        counters.fault("late_event");
      } else if (prng.chance(plan.oooRate)) {
        delay = prng.range(1, Math.max(1_000, plan.allowedLatenessMs));
        counters.fault("out_of_order");
      }
      const offset = skew.get(key)!;
      if (offset !== 0) counters.fault("clock_skew");
      const e: Event = { id: `${key}#${n}`, assigned: false, type: prng.pick(plan.types), key, ts: Math.max(0, t + offset - delay) };
      const value = drawValue(prng, plan.values);
      if (value !== undefined) e.value = value;
      if (prng.chance(0.1)) e.properties = { plan: prng.pick(["free", "pro"]), n };
      if (requestId !== undefined) e.requestId = requestId;
      events.push(e);
      history.push(e);
      made++;
    }
    requests.push({ id: requests.length, key, events, sendAt: t, attempts: 0, done: false });
  }
  return requests;
}

function drawValue(prng: Prng, dist: WorkloadPlan["values"]): number | undefined {
  switch (dist) {
    case "int":
      return prng.range(-50, 1_000);
    case "halves":
      return prng.range(-200, 200) / 2;
    case "sparse":
      return prng.chance(0.3) ? undefined : prng.range(0, 100);
    case "none":
      return undefined;
  }
}

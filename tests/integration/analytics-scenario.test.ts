import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Pool } from "@neondatabase/serverless";
import { Redis } from "@upstash/redis";
import { RedisSink } from "../../src/sinks/redis/sink.ts";
import { consumeAll, createTopic, ensureServices, kafkaClient } from "../support/kafka.ts";
import { preparePostgres } from "../support/postgres.ts";
import { localSinkEnv, REDIS_FRONT } from "../support/sink-env.ts";
import { until } from "../support/sink-faults.ts";
import { BUN_SERVER, processTarget, tempDir } from "../support/targets.ts";

// Issue 12's proof point, end to end on the real local sinks (scripts/services.sh): a seed-style stream
// of purchases over 20 keys, a few of which burst, through a Bun server with keyflow.config.json
// giving purchases tumbling 1m, sliding 1m and session 2m windows and a threshold rule on each. The
// alerts in Postgres, Redis and Kafka must be exactly those of a model written here from the window
// definitions (nothing of src/actor imported), and the purchase windows Postgres and Redis hold once
// everything has closed must be exactly the model's windows. Emit "updates": every window update,
// session retractions included, reaches the sinks along the way.
//
// The stream keeps each key's events in timestamp order (no late or out-of-order event), so that a
// session only grows forwards (its start, its identity for the rules, is its first event) and a
// sliding window is created by the arrival of one of its own events; the keys' streams are
// interleaved at random. Client retries (an event posted again with its id) land in the same
// request and in later ones.

const SEED = Number(process.env.KEYFLOW_SCENARIO_SEED ?? (Date.now() % 2 ** 31));
console.log(`analytics scenario: seed ${SEED} (KEYFLOW_SCENARIO_SEED=${SEED} replays it)`);

const run = `as${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });
const SEC = 1_000;
const MIN = 60_000;

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// The configuration.

const SLIDING = { name: "sliding:1m", size: MIN };
const SESSION = { name: "session:2m", gap: 2 * MIN };
const TUMBLING = { name: "1m", size: MIN };
const RULES = {
  rapid: { name: "rapid", type: "purchase", window: SLIDING.name, aggregate: "count", op: ">", threshold: 5 },
  bigSession: { name: "big_session", type: "purchase", window: SESSION.name, aggregate: "sum", op: ">", threshold: 1000 },
  busyMinute: { name: "busy_minute", type: "purchase", window: TUMBLING.name, aggregate: "count", op: ">", threshold: 8 },
} as const;

// ---------------------------------------------------------------------------------------------
// The stream.

interface Purchase {
  event_id: string;
  event_type: "purchase";
  key: string;
  timestamp: number;
  value: number;
}

/**
 * 20 keys over 30 minutes starting BASE: 15 quiet keys (at most 12 purchases worth 1-30, 20 s to
 * 5 min apart: provably never more than 4 in a minute, nor 360 in a session), one near miss (a run
 * of exactly 5 purchases within seconds, more than a minute from any other: 5 is not > 5, then quiet
 * purchases) and 4 keys that burst twice amid quiet purchases: 14-25 purchases worth 80-200 within
 * seconds, some at the same millisecond. The window bounds are hit on purpose: quiet purchases are
 * often exactly 1 min, 1 min + 1 ms, 2 min or 2 min + 1 ms apart (sliding windows and session gaps
 * are inclusive); burst-16's first burst starts on a minute; the second bursts of burst-17 and
 * burst-18 (and maybe burst-19) are split in two halves worth less than 1000 each (7-9 purchases
 * worth 80-110), exactly 2 min apart (one session: it passes 1000 in its second half) or 2 min + 1 ms
 * apart (two sessions: no big_session alert). Values are whole quarters, so every sum is exact in
 * any order. BASE is two hours back, so that an event now is far enough ahead to close every window
 * (allowed lateness 1h) without being in the future.
 */
function generate(seed: number, base: number) {
  const rand = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const quarters = (lo: number, hi: number) => int(lo * 4, hi * 4) / 4;
  /** The time to a quiet key's next purchase: a window bound, or anything from 20 s to 5 min. */
  const quietGap = () => (rand() < 0.3 ? [MIN, MIN + 1, 2 * MIN, 2 * MIN + 1][int(0, 3)]! : int(20 * SEC, 5 * MIN));
  const end = base + 30 * MIN;
  const keys: Array<{ key: string; role: "quiet" | "near-miss" | "burst"; events: Purchase[] }> = [];
  const add = (list: Purchase[], key: string, ts: number, value: number) =>
    list.push({ event_id: `${key}-e${list.length + 1}`, event_type: "purchase", key, timestamp: ts, value });
  for (let i = 0; i < 20; i++) {
    const role = i < 15 ? "quiet" : i === 15 ? "near-miss" : "burst";
    const key = `${run}-${role}-${String(i).padStart(2, "0")}`;
    const events: Purchase[] = [];
    const splitGap = i === 17 ? 2 * MIN : i === 18 ? 2 * MIN + 1 : i === 19 ? [0, 2 * MIN, 2 * MIN + 1][int(0, 2)]! : 0;
    const bursts =
      role === "burst"
        ? [
            { at: base + int(6 * MIN, 10 * MIN), onMinute: i === 16, splitGap: 0 },
            { at: base + int(18 * MIN, 23 * MIN), onMinute: false, splitGap },
          ]
        : [];
    let t = base + int(0, 3 * MIN);
    // The near miss starts with its run, so that no cap on its purchases can leave it out.
    const nearMiss = role === "near-miss" ? [t] : [];
    while (t < end && events.length < (role === "burst" ? 100 : 12)) {
      if (bursts.length && t >= bursts[0]!.at) {
        const burst = bursts.shift()!;
        if (burst.onMinute) t = Math.ceil(t / MIN) * MIN;
        if (burst.splitGap) {
          // Halves of their own: more than the gap from any other purchase.
          t += 2 * MIN + 1;
          for (const half of [0, 1]) {
            for (let j = int(7, 9); j > 0; j--) {
              add(events, key, t, quarters(80, 110));
              t += j > 1 ? int(0, 800) : 0;
            }
            t += half ? 2 * MIN + 1 + int(0, 3 * MIN) : burst.splitGap;
          }
          continue;
        }
        const n = int(14, 25);
        for (let j = 0; j < n; j++) {
          add(events, key, t, quarters(80, 200));
          t += rand() < 0.2 ? 0 : int(1, 800);
        }
        t += quietGap();
      } else if (nearMiss.length && t >= nearMiss[0]!) {
        nearMiss.shift();
        for (let j = 0; j < 5; j++) {
          add(events, key, t, quarters(1, 30));
          t += int(0, 2 * SEC);
        }
        t += int(61 * SEC, 5 * MIN);
      } else {
        add(events, key, t, quarters(1, 30));
        t += quietGap();
      }
    }
    keys.push({ key, role, events });
  }

  // The keys' streams interleaved at random, each key's in its own order.
  const queues = keys.map((k) => [...k.events]);
  const stream: Purchase[] = [];
  for (;;) {
    const left = queues.reduce((n, q) => n + q.length, 0);
    if (!left) break;
    let pick = Math.floor(rand() * left);
    const q = queues.find((q) => (pick -= q.length) < 0)!;
    stream.push(q.shift()!);
  }

  // Four requests; in each, a few retries of its own events after them, and a few of the previous request's.
  const requests: Purchase[][] = [];
  const per = Math.ceil(stream.length / 4);
  for (let r = 0; r < 4; r++) requests.push(stream.slice(r * per, (r + 1) * per));
  let retries = 0;
  for (let r = 0; r < requests.length; r++) {
    const req = requests[r]!;
    const originals = [...req];
    for (let n = int(3, 6); n > 0; n--) {
      const e = originals[int(0, originals.length - 1)]!;
      req.splice(int(req.indexOf(e) + 1, req.length), 0, { ...e });
      retries++;
    }
    if (r > 0) {
      const earlier = requests[r - 1]!;
      for (let n = int(3, 6); n > 0; n--) {
        req.splice(int(0, req.length), 0, { ...earlier[int(0, earlier.length - 1)]! });
        retries++;
      }
    }
  }
  return { keys, requests, retries, accepted: stream.length };
}

// ---------------------------------------------------------------------------------------------
// The model: from the definitions, per key over its accepted events (the first of each id) in arrival order.

interface ModelAlert {
  rule: string;
  key: string;
  shape: string;
  start: number;
  end: number;
  value: number;
  eventId: string;
}

interface ModelWindow {
  shape: string;
  start: number;
  end: number;
  count: number;
  sum: number;
}

/**
 * Sliding windows (Kafka Streams' SlidingWindows): for every integer s, the window [s, s + size],
 * both ends inclusive; each distinct non-empty set of events is one window, identified by the first
 * s giving it. The set changes only where an event enters (s = t - size) or leaves (s = t + 1), so
 * the first s of every set is among those. Returns each window's events (indices, ascending).
 */
function slidingWindows(events: readonly Purchase[], size: number): Array<{ start: number; members: number[] }> {
  const starts = new Set<number>();
  for (const e of events) starts.add(e.timestamp - size).add(e.timestamp + 1);
  const seen = new Set<string>();
  const windows: Array<{ start: number; members: number[] }> = [];
  for (const s of [...starts].sort((a, b) => a - b)) {
    const members: number[] = [];
    events.forEach((e, i) => {
      if (s <= e.timestamp && e.timestamp <= s + size) members.push(i);
    });
    const set = members.join(",");
    if (!members.length || seen.has(set)) continue;
    seen.add(set);
    windows.push({ start: s, members });
  }
  return windows;
}

/** Sessions: events split where consecutive ones are more than gap apart (gap inclusive); [first ts, last ts]. */
function sessions(events: readonly Purchase[], gap: number): Array<{ members: number[] }> {
  const out: Array<{ members: number[] }> = [];
  events.forEach((e, i) => {
    const last = out.at(-1);
    if (last && e.timestamp - events[last.members.at(-1)!]!.timestamp <= gap) last.members.push(i);
    else out.push({ members: [i] });
  });
  return out;
}

const sumOf = (events: readonly Purchase[], members: readonly number[]) => members.reduce((s, i) => s + events[i]!.value, 0);

/**
 * A rule fires once per window, at the first arrival after which the window's aggregate (over its
 * events arrived so far) satisfies it; with in-order arrival a window exists from its first event's
 * arrival on, and changes only at its own events' arrivals. The alert: the window as it is then
 * (a session's end grows with it), the value, the arriving event.
 */
function modelAlerts(key: string, events: readonly Purchase[]): ModelAlert[] {
  const alerts: ModelAlert[] = [];
  const fired = { rapid: new Set<number>(), bigSession: new Set<number>(), busyMinute: new Set<number>() };
  for (let k = 0; k < events.length; k++) {
    const e = events[k]!;
    const prefix = events.slice(0, k + 1);
    // Sliding: the windows of the events so far that hold this one.
    for (const w of slidingWindows(prefix, SLIDING.size)) {
      if (!w.members.includes(k) || fired.rapid.has(w.start)) continue;
      if (w.members.length > RULES.rapid.threshold) {
        fired.rapid.add(w.start);
        alerts.push({ rule: RULES.rapid.name, key, shape: SLIDING.name, start: w.start, end: w.start + SLIDING.size, value: w.members.length, eventId: e.event_id });
      }
    }
    // Session: the session of the events so far that holds this one (the last: arrival is in order).
    const session = sessions(prefix, SESSION.gap).at(-1)!;
    const start = prefix[session.members[0]!]!.timestamp;
    const sum = sumOf(prefix, session.members);
    if (!fired.bigSession.has(start) && sum > RULES.bigSession.threshold) {
      fired.bigSession.add(start);
      alerts.push({ rule: RULES.bigSession.name, key, shape: SESSION.name, start, end: e.timestamp, value: sum, eventId: e.event_id });
    }
    // Tumbling: [floor(ts / size) * size, + size).
    const minute = Math.floor(e.timestamp / TUMBLING.size) * TUMBLING.size;
    const count = prefix.filter((p) => Math.floor(p.timestamp / TUMBLING.size) * TUMBLING.size === minute).length;
    if (!fired.busyMinute.has(minute) && count > RULES.busyMinute.threshold) {
      fired.busyMinute.add(minute);
      alerts.push({ rule: RULES.busyMinute.name, key, shape: TUMBLING.name, start: minute, end: minute + TUMBLING.size, value: count, eventId: e.event_id });
    }
  }
  return alerts;
}

/** Every purchase window of the key once all are closed. */
function modelWindows(events: readonly Purchase[]): ModelWindow[] {
  const windows: ModelWindow[] = [];
  for (const w of slidingWindows(events, SLIDING.size)) {
    windows.push({ shape: SLIDING.name, start: w.start, end: w.start + SLIDING.size, count: w.members.length, sum: sumOf(events, w.members) });
  }
  for (const s of sessions(events, SESSION.gap)) {
    const first = events[s.members[0]!]!;
    const last = events[s.members.at(-1)!]!;
    windows.push({ shape: SESSION.name, start: first.timestamp, end: last.timestamp, count: s.members.length, sum: sumOf(events, s.members) });
  }
  const minutes = new Map<number, number[]>();
  events.forEach((e, i) => {
    const start = Math.floor(e.timestamp / TUMBLING.size) * TUMBLING.size;
    minutes.set(start, [...(minutes.get(start) ?? []), i]);
  });
  for (const [start, members] of minutes) windows.push({ shape: TUMBLING.name, start, end: start + TUMBLING.size, count: members.length, sum: sumOf(events, members) });
  return windows;
}

/** Each key's accepted events: the first of each id, in arrival order (requests in turn, each in its order). */
function acceptedByKey(requests: readonly Purchase[][]): Map<string, Purchase[]> {
  const seen = new Set<string>();
  const byKey = new Map<string, Purchase[]>();
  for (const e of requests.flat()) {
    if (seen.has(`${e.key}\n${e.event_id}`)) continue;
    seen.add(`${e.key}\n${e.event_id}`);
    byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
  }
  return byKey;
}

const alertText = (a: ModelAlert) => JSON.stringify([a.rule, a.key, a.shape, a.start, a.end, a.value, a.eventId]);
const windowText = (key: string, w: ModelWindow) => JSON.stringify([key, w.shape, w.start, w.end, w.count, w.sum]);

// ---------------------------------------------------------------------------------------------

let pool: Pool;

beforeAll(async () => {
  ensureServices();
  pool = await preparePostgres();
}, 300_000);

/** Removes what a run named `name` left: its rows, its Redis keys and its Kafka topics. */
async function removeTraces(name: string): Promise<void> {
  for (const table of ["alerts", "window_aggregates", "raw_events", "processed_events"]) {
    await pool?.query(`DELETE FROM ${table} WHERE actor_key LIKE $1`, [`${name}-%`]).catch(() => undefined);
  }
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, { match: `${name}:*`, count: 1_000 }).catch(() => ["0", [] as string[]] as const);
    if (found.length) await redis.del(...found).catch(() => undefined);
    cursor = String(next);
  } while (cursor !== "0");
  const admin = kafkaClient(`keyflow-cleanup-${name}`).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${name}.`));
  if (topics.length) await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => undefined);
  await admin.disconnect();
}

afterAll(async () => {
  await removeTraces(run);
  await pool?.end();
});

describe(`analytics scenario on the real sinks (seed ${SEED})`, () => {
  // On a minute: a seed replays the same stream, only whole minutes later.
  const BASE = Math.floor(Date.now() / MIN) * MIN - 2 * 60 * MIN;
  const scenario = generate(SEED, BASE);
  const { keys, requests } = scenario;
  const accepted = acceptedByKey(requests);
  const expected = [...accepted].flatMap(([key, events]) => modelAlerts(key, events)).map(alertText).sort();
  const expectedWindows = [...accepted].flatMap(([key, events]) => modelWindows(events).map((w) => windowText(key, w))).sort();
  const counts = (rule: string) => expected.filter((a) => JSON.parse(a)[0] === rule).length;
  const summary =
    `seed ${SEED}: ${keys.length} keys, ${scenario.accepted} purchases (${keys.filter((k) => k.role === "burst").map((k) => k.events.length).join("+")} on the burst keys), ` +
    `${scenario.retries} retries in ${requests.length} requests; alerts: ${expected.length} (rapid ${counts("rapid")}, big_session ${counts("big_session")}, busy_minute ${counts("busy_minute")}); ` +
    `purchase windows: ${expectedWindows.length}`;
  console.log(summary);

  /** Errors name the seed, so that a failure can be replayed. */
  const seeded = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (error) {
      if (error instanceof Error) error.message = `[${summary}]\n${error.message}`;
      throw error;
    }
  };

  const config = tempDir("scenario-config");
  const configFile = join(config.path, "keyflow.config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      types: { purchase: { windows: [TUMBLING.name, SLIDING.name, SESSION.name] } },
      rules: Object.values(RULES),
    }),
  );
  const alertsTopic = `${run}.alerts`;
  let target: ReturnType<typeof processTarget>;

  beforeAll(async () => {
    await createTopic(alertsTopic, 1);
    target = processTarget(BUN_SERVER, {
      ...localSinkEnv(run),
      KEYFLOW_KAFKA_ALERTS_TOPIC: alertsTopic,
      KEYFLOW_SINK_MAX_DELAY: "20ms",
      KEYFLOW_CONFIG: configFile,
      KEYFLOW_WINDOWS: TUMBLING.name,
      // Nothing closes during the stream (it spans 30 minutes), nor by the wall clock during the test.
      KEYFLOW_ALLOWED_LATENESS: "1h",
      KEYFLOW_IDLE_TIMEOUT: "1h",
      // Every update reaches the sinks, session retractions included.
      KEYFLOW_EMIT: "updates",
      KEYFLOW_LOG_LEVEL: "warn",
    });
    await target.start();
  }, 120_000);

  afterAll(async () => {
    await target?.stop();
    config.remove();
  });

  const post = async (events: unknown[]) => {
    const res = await target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
    if (res.status !== 200) throw new Error(`POST /v1/events: ${res.status} ${await res.text()}`);
    return (await res.json()) as { accepted: number; duplicates: number };
  };

  /** Until every key's outbox is delivered to every sink (nothing in flight, nothing dead-lettered). */
  const delivered = async (what: string) => {
    await until(`${what}: every outbox delivered`, 120_000, async () => {
      for (const { key } of keys) {
        const res = await target.fetch(`/v1/actors/${encodeURIComponent(key)}/outbox`);
        if (res.status !== 200) throw new Error(`outbox of ${key}: ${res.status} ${await res.text()}`);
        const outbox = (await res.json()) as { backlog: Record<string, number>; dead_letters: number };
        if (outbox.dead_letters) throw new Error(`outbox of ${key}: ${outbox.dead_letters} dead letters`);
        const sinks = Object.keys(outbox.backlog);
        if (sinks.sort().join() !== "kafka,postgres,redis") throw new Error(`outbox of ${key}: sinks ${sinks.join()}`);
        if (Object.values(outbox.backlog).some((n) => n > 0)) return false;
      }
      return true;
    });
  };

  const pgAlerts = async () =>
    (
      await pool.query(
        `SELECT tenant, actor_key, rule, shape, window_start, window_end, aggregate, value, baseline, event_id FROM alerts WHERE actor_key LIKE $1`,
        [`${run}-%`],
      )
    ).rows;

  /** Postgres, Redis and Kafka each hold exactly the model's alerts: nothing missing, doubled or extra. */
  async function checkAlerts(what: string): Promise<void> {
    await delivered(what);
    const aggregateOf = new Map<string, string>(Object.values(RULES).map((r) => [r.name, r.aggregate]));

    const rows = await pgAlerts();
    for (const r of rows) expect({ tenant: r.tenant, aggregate: r.aggregate, baseline: r.baseline }).toEqual({ tenant: "default", aggregate: aggregateOf.get(r.rule)!, baseline: null });
    const fromPostgres = rows.map((r) =>
      alertText({ rule: r.rule, key: r.actor_key, shape: r.shape, start: new Date(r.window_start).getTime(), end: new Date(r.window_end).getTime(), value: r.value, eventId: r.event_id }),
    );
    expect(fromPostgres.sort()).toEqual(expected);

    const fromRedis: string[] = [];
    for (const { key } of keys) {
      const entries = (await redis.xrange(RedisSink.alertStreamKey(`${run}:`, "default", key), "-", "+")) as Record<string, Record<string, unknown>>;
      for (const e of Object.values(entries)) {
        expect([String(e.tenant), String(e.aggregate)]).toEqual(["default", aggregateOf.get(String(e.rule))!]);
        fromRedis.push(alertText({ rule: String(e.rule), key, shape: String(e.shape), start: Number(e.start), end: Number(e.end), value: Number(e.value), eventId: String(e.event_id) }));
      }
    }
    expect(fromRedis.sort()).toEqual(expected);

    // Anything doubled would have been produced before the outboxes emptied; the settle catches it in flight.
    const messages = await consumeAll(alertsTopic, expected.length, 60_000, { settleMs: 1_500 });
    const fromKafka = messages.map((m) => {
      const v = JSON.parse(m.value!.toString());
      expect([m.key?.toString(), m.headers.rule?.toString(), m.headers.event_id?.toString(), v.kind, v.tenant, v.aggregate]).toEqual([
        v.key,
        v.rule,
        v.event_id,
        "alert",
        "default",
        aggregateOf.get(v.rule)!,
      ]);
      return alertText({ rule: v.rule, key: v.key, shape: v.window.shape, start: Date.parse(v.window.start), end: Date.parse(v.window.end), value: v.value, eventId: v.event_id });
    });
    expect(fromKafka.sort()).toEqual(expected);
  }

  test(
    "the model: bursting keys alert under every rule, the near miss and the quiet keys never",
    seeded(async () => {
      // What the model relies on: each key's accepted events are its own, in timestamp order, all in the past.
      expect([...accepted.keys()].sort()).toEqual(keys.map((k) => k.key).sort());
      for (const { key, events } of keys) {
        expect(accepted.get(key)!.map((e) => e.event_id)).toEqual(events.map((e) => e.event_id));
        expect(events.every((e, i) => i === 0 || events[i - 1]!.timestamp <= e.timestamp)).toBe(true);
        expect(events.at(-1)!.timestamp).toBeLessThan(Date.now() - 60 * MIN);
      }
      for (const { key, role } of keys) {
        const rules = new Set(expected.map((a) => JSON.parse(a)).filter((a) => a[1] === key).map((a) => a[0]));
        if (role === "burst") expect([key, rules.has("rapid"), rules.has("big_session")]).toEqual([key, true, true]);
        else expect([key, [...rules]]).toEqual([key, []]);
      }
      // One big session per burst, but burst-18's halves 2 min + 1 ms apart are two sessions under 1000.
      const bigSessions = keys.filter((k) => k.role === "burst").map(({ key }) => expected.filter((a) => JSON.parse(a)[0] === "big_session" && JSON.parse(a)[1] === key).length);
      expect(bigSessions.slice(0, 3)).toEqual([2, 2, 1]);
      // Every burst of 14+ purchases within seconds: unless it straddles a minute boundary, its minute has 9+.
      expect(counts("busy_minute")).toBeGreaterThan(0);
    }),
  );

  test(
    "each rule fires once per window with its triggering event, in Postgres, Redis and Kafka exactly as the model says",
    seeded(async () => {
      let accepted = 0;
      let duplicates = 0;
      for (const request of requests) {
        const r = await post(request);
        accepted += r.accepted;
        duplicates += r.duplicates;
      }
      expect([accepted, duplicates]).toEqual([scenario.accepted, scenario.retries]);
      await checkAlerts("after the stream");
    }),
    300_000,
  );

  test(
    "the whole stream again and a restart change nothing",
    seeded(async () => {
      for (const request of requests) expect((await post(request)).accepted).toBe(0);
      await target.restart();
      for (const request of requests) expect((await post(request)).accepted).toBe(0);
      await checkAlerts("after a second post and a restart");
    }),
    300_000,
  );

  test(
    "once an event far ahead closes everything, Postgres and Redis hold exactly the model's purchase windows: no superseded session left",
    seeded(async () => {
      // A page view per key, now: past every purchase window's end + gap + allowed lateness.
      const now = Date.now() - 5 * SEC;
      const r = await post(keys.map(({ key }) => ({ event_id: `${key}-close`, event_type: "page_view", key, timestamp: now, value: 1 })));
      expect(r.accepted).toBe(keys.length);
      await checkAlerts("after closing");
      const { rows } = await pool.query(
        `SELECT actor_key, size, shape, window_start, window_end, count, sum, final FROM window_aggregates
         WHERE actor_key LIKE $1 AND event_type = 'purchase' AND size = ANY($2)`,
        [`${run}-%`, [SLIDING.name, SESSION.name, TUMBLING.name]],
      );
      const shapeKind = { [SLIDING.name]: "sliding", [SESSION.name]: "session", [TUMBLING.name]: "tumbling" };
      const notFinal = rows.filter((w) => !w.final || w.shape !== shapeKind[w.size]);
      expect(notFinal).toEqual([]);
      const fromPostgres = rows.map((w) =>
        windowText(w.actor_key, { shape: w.size, start: new Date(w.window_start).getTime(), end: new Date(w.window_end).getTime(), count: Number(w.count), sum: w.sum }),
      );
      expect(fromPostgres.sort()).toEqual(expectedWindows);

      // Redis: the same windows in the window hashes (a type's own windows one hash each, the key's 1m
      // windows a hash with "purchase:" fields), every one final; retracted sessions' hashes deleted.
      const names: string[] = [];
      let cursor = "0";
      do {
        const [next, found] = await redis.scan(cursor, { match: `${run}:*`, count: 1_000 });
        names.push(...found.filter((n) => n.includes("window:")));
        cursor = String(next);
      } while (cursor !== "0");
      const pipeline = redis.pipeline();
      for (const name of names) pipeline.hgetall(name);
      const hashes = (await pipeline.exec()) as Array<Record<string, unknown> | null>;
      const fromRedis: string[] = [];
      const notFinalInRedis: string[] = [];
      hashes.forEach((h, i) => {
        if (!h) return;
        const size = String(h.size);
        const own = h.event_type === "purchase" && (size === SLIDING.name || size === SESSION.name);
        const minute = h.event_type === undefined && size === TUMBLING.name && h["purchase:count"] !== undefined;
        if (!own && !minute) return;
        if (String(h.final) !== "1") notFinalInRedis.push(names[i]!);
        const [count, sum] = own ? [h.count, h.sum] : [h["purchase:count"], h["purchase:sum"]];
        fromRedis.push(windowText(String(h.key), { shape: size, start: Number(h.start), end: Number(h.end), count: Number(count), sum: Number(sum) }));
      });
      expect(notFinalInRedis).toEqual([]);
      expect(fromRedis.sort()).toEqual(expectedWindows);
    }),
    300_000,
  );
});

// Out of order, sessions merge and grow backwards: under KEYFLOW_EMIT=updates the superseded sessions
// go to the sinks as retractions, which Postgres applies as deletes and Redis as hash deletions, so
// both hold exactly the sessions that exist now, while they are still open.
describe("session retractions on the real Postgres and Redis", () => {
  const prefix = `${run}x`;
  const key = `${prefix}-merge 'k'`;
  const config = tempDir("retraction-config");
  const configFile = join(config.path, "keyflow.config.json");
  writeFileSync(configFile, JSON.stringify({ types: { purchase: { windows: ["session:2m"] } } }));
  let target: ReturnType<typeof processTarget>;

  beforeAll(async () => {
    target = processTarget(BUN_SERVER, {
      ...localSinkEnv(prefix),
      KEYFLOW_SINK_MAX_DELAY: "20ms",
      KEYFLOW_CONFIG: configFile,
      KEYFLOW_WINDOWS: "1m",
      KEYFLOW_ALLOWED_LATENESS: "1h",
      KEYFLOW_IDLE_TIMEOUT: "1h",
      KEYFLOW_EMIT: "updates",
      KEYFLOW_LOG_LEVEL: "warn",
    });
    await target.start();
  }, 120_000);

  afterAll(async () => {
    await target?.stop();
    config.remove();
    await removeTraces(prefix);
  });

  const T = Math.floor(Date.now() / MIN) * MIN - 30 * MIN;
  const post = async (offsets: number[], tag: string) => {
    const events = offsets.map((dt, i) => ({ event_id: `${tag}-${i}`, event_type: "purchase", key, timestamp: T + dt, value: 1 }));
    const res = await target.fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
    expect(res.status).toBe(200);
  };
  /** [start, end, count] of the session rows in Postgres and of the session hashes in Redis, once the outbox is delivered. */
  const sessions = async () => {
    await until("the outbox delivered", 60_000, async () => {
      const res = await target.fetch(`/v1/actors/${encodeURIComponent(key)}/outbox`);
      const outbox = (await res.json()) as { backlog: Record<string, number> };
      return Object.values(outbox.backlog).every((n) => n === 0);
    });
    const { rows } = await pool.query(
      `SELECT window_start, window_end, count FROM window_aggregates WHERE actor_key = $1 AND event_type = 'purchase' AND size = 'session:2m' ORDER BY window_start`,
      [key],
    );
    const pg = rows.map((r) => [new Date(r.window_start).getTime() - T, new Date(r.window_end).getTime() - T, Number(r.count)]);
    const names: string[] = [];
    let cursor = "0";
    do {
      const [next, found] = await redis.scan(cursor, { match: `${prefix}:window:*session:2m*`, count: 1_000 });
      names.push(...found);
      cursor = String(next);
    } while (cursor !== "0");
    const hashes = await Promise.all(names.map((n) => redis.hgetall(n) as Promise<Record<string, unknown> | null>));
    const fromRedis = hashes
      .filter((h): h is Record<string, unknown> => h !== null && h.key === key)
      .map((h) => [Number(h.start) - T, Number(h.end) - T, Number(h.count)])
      .sort((a, b) => a[0]! - b[0]!);
    return { pg, redis: fromRedis };
  };

  test("a merge and a backward extension leave exactly the live sessions in both sinks", async () => {
    await post([0, 4 * MIN], "a"); // two sessions: [0, 0] and [4m, 4m]
    expect(await sessions()).toEqual({ pg: [[0, 0, 1], [4 * MIN, 4 * MIN, 1]], redis: [[0, 0, 1], [4 * MIN, 4 * MIN, 1]] });
    await post([2 * MIN], "b"); // bridges them: [0, 4m]; [4m, 4m] is retracted
    expect(await sessions()).toEqual({ pg: [[0, 4 * MIN, 3]], redis: [[0, 4 * MIN, 3]] });
    await post([-MIN], "c"); // extends it backwards: [-1m, 4m]; [0, 4m] is retracted
    expect(await sessions()).toEqual({ pg: [[-MIN, 4 * MIN, 4]], redis: [[-MIN, 4 * MIN, 4]] });
  }, 180_000);
});

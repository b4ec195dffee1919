// The analytics section of `bun run bench` (issue 12): the actor core in memory, as coreRates
// (bench-core.ts) measures it, with keyflow.config.json's sliding and session windows and three
// rules on, against the same actors with tumbling windows only, in the same run.
import { Actor } from "../src/actor/actor.ts";
import type { Event } from "../src/actor/event.ts";
import { DEFAULT_CONFIG, type Config } from "../src/settings/config.ts";
import { parseAnalyticsConfig } from "../src/settings/analytics.ts";
import { benchEvents } from "./bench-core.ts";

/**
 * What the Kafka Streams reference's analytics job (scripts/kstreams/src/main/java/keyflow/kstreams/Job.java)
 * runs, as keyflow.config.json says it: purchases get sliding 10m and session 30m windows next to the
 * key's 1m and 1h ones, and the job's three rules:
 *   1. enrichment `high_value` = true when value > 1000 (Job's mapValues);
 *   2. `count_1m_over_10`: an alert when a 1m window's count first exceeds 10;
 *   3. `sum_1h_over_5000`: an alert when a 1h window's sum first exceeds 5000.
 * and a fourth, the fraud detector's burst on the sliding window (`burst_sliding_10m`: count > 20), so
 * that a rule reads every sliding window an event updates.
 * The Java job aggregates a key's events of every type in each window; keyflow's rules and its
 * sliding and session windows are per event type, so here they watch purchases (a third of the stream).
 */
export const ANALYTICS_JSON = {
  types: { purchase: { windows: ["1m", "1h", "sliding:10m", "session:30m"] } },
  enrich: [{ set: "high_value", value: true, when: { path: "value", op: ">", value: 1000 } }],
  rules: [
    { name: "count_1m_over_10", type: "purchase", window: "1m", aggregate: "count", op: ">", threshold: 10 },
    { name: "sum_1h_over_5000", type: "purchase", window: "1h", aggregate: "sum", op: ">", threshold: 5000 },
    { name: "burst_sliding_10m", type: "purchase", window: "sliding:10m", aggregate: "count", op: ">", threshold: 20 },
  ],
};

/** The same, plus a distinct count of product ids and the 50th and 99th percentiles of purchases' values. */
export const EXTRAS_JSON = {
  ...ANALYTICS_JSON,
  types: { purchase: { ...ANALYTICS_JSON.types.purchase, distinct: { path: "properties.product_id" }, percentiles: [50, 99] } },
};

export type AnalyticsVariant = "tumbling" | "analytics" | "extras";

/** Each variant's actor configuration: KEYFLOW_WINDOWS 1m,1h, with or without keyflow.config.json. */
export function analyticsConfigs(): Record<AnalyticsVariant, Config> {
  const windows = DEFAULT_CONFIG.windows;
  return {
    tumbling: DEFAULT_CONFIG,
    analytics: { ...DEFAULT_CONFIG, analytics: parseAnalyticsConfig(ANALYTICS_JSON, windows) },
    extras: { ...DEFAULT_CONFIG, analytics: parseAnalyticsConfig(EXTRAS_JSON, windows) },
  };
}

/**
 * benchEvents' stream with a `product_id` property on every event (one of 50; the properties come out
 * of JSON.parse, as on the HTTP path), so that the distinct count has something to count. Every
 * variant gets this same stream; those without a distinct count never read it.
 */
export function analyticsEvents(count: number, keys: number): Event[] {
  const events = benchEvents(count, keys);
  const properties = JSON.parse(JSON.stringify(events.map((_, i) => ({ product_id: `p${(i * 7) % 50}` })))) as Array<Record<string, unknown>>;
  return events.map((e, i) => ({ ...e, properties: properties[i] }));
}

export interface AnalyticsRate {
  /** events/s of ingest alone. */
  ingest: number;
  /** events/s of ingest and then a tick() of every actor that closes all its windows, timed together. */
  withClose: number;
}

export interface AnalyticsRates {
  /** By variant, then by events per actor call: the faster of `passes` passes (each figure on its own). */
  rates: Record<AnalyticsVariant, Map<number, AnalyticsRate>>;
  /** Alerts the rules fired and windows closed in the analytics variant's last pass, by events per call. */
  analyticsOutput: Map<number, { alerts: number; closed: number }>;
}

/** A wall clock past every window's end + allowed lateness: tick() advances each key's watermark there (idle). */
const CLOSE_AFTER_MS = 6 * 3_600_000;

/**
 * events/s of the actor core (ingest + dedupe + windows, as coreRates) for each variant and each count
 * of events per actor call (the extras variant only for each of `extrasPerCall`: it is the slow one):
 * the same events, in the same calls in the same order. Variants alternate within a pass, so that the
 * machine's drift hits them alike, each after a full GC, so that none pays for the garbage of the one before; each keeps the faster of `passes` passes (the first also warms the
 * JIT, see coreRates). Ingest is timed alone, as in the core section (in the stream's 10 s of event
 * time little closes), and then with a tick of every actor that closes all its windows, the way the
 * Kafka Streams reference ends its run (a last record 3 h later): the whole job.
 */
export function analyticsRates(count: number, keys: number, perCall: number[], extrasPerCall: number[] = perCall, passes = 2): AnalyticsRates {
  const list = analyticsEvents(count, keys);
  const byKey = new Map<string, Event[]>();
  for (const e of list) (byKey.get(e.key) ?? byKey.set(e.key, []).get(e.key)!).push(e);
  const configs = analyticsConfigs();
  const rates = { tumbling: new Map(), analytics: new Map(), extras: new Map() } as AnalyticsRates["rates"];
  const analyticsOutput = new Map<number, { alerts: number; closed: number }>();
  for (const per of [...new Set([...perCall, ...extrasPerCall])]) {
    const variants: AnalyticsVariant[] = ["tumbling"];
    if (perCall.includes(per)) variants.push("analytics");
    if (extrasPerCall.includes(per)) variants.push("extras");
    // Each key's events cut into calls of `per`, in event-time order, as coreRates makes them.
    const slices: Array<{ key: string; events: Event[] }> = [];
    for (const [key, evs] of byKey) for (let i = 0; i < evs.length; i += per) slices.push({ key, events: evs.slice(i, i + per) });
    slices.sort((a, b) => a.events[0]!.ts - b.events[0]!.ts);
    for (let pass = 0; pass < passes; pass++) {
      for (const variant of variants) {
        Bun.gc(true);
        const actors = new Map<string, Actor>();
        for (const key of byKey.keys()) actors.set(key, new Actor(key, configs[variant]));
        const calls = slices.map((s) => ({ actor: actors.get(s.key)!, events: s.events }));
        const now = Date.now();
        const t = performance.now();
        for (const call of calls) call.actor.ingest(call.events, now);
        const ingested = performance.now();
        for (const actor of actors.values()) actor.tick(now + CLOSE_AFTER_MS);
        const closed = performance.now();
        const held = rates[variant].get(per);
        rates[variant].set(per, {
          ingest: Math.max(held?.ingest ?? 0, (count / (ingested - t)) * 1000),
          withClose: Math.max(held?.withClose ?? 0, (count / (closed - t)) * 1000),
        });
        // As the Kafka Streams reference checks its run: the closed 1h windows counted every event once.
        let counted = 0;
        const output = { alerts: 0, closed: 0 };
        for (const actor of actors.values()) {
          const closedWindows = actor.closedWindows();
          for (const w of closedWindows) if (w.spec === "1h") counted += w.all.count;
          output.alerts += actor.recentAlerts().length;
          output.closed += closedWindows.length;
        }
        if (counted !== count) throw new Error(`analytics bench, ${variant}, ${per} per call: the closed 1h windows counted ${counted} events of ${count}`);
        if (variant === "analytics") analyticsOutput.set(per, output);
      }
    }
  }
  return { rates, analyticsOutput };
}

import { Actor } from "../src/actor/actor.ts";
import { DEFAULT_CONFIG } from "../src/settings/config.ts";
import type { Event } from "../src/actor/event.ts";

const T0 = Date.now() - 3 * 3_600_000;

/** Pre-parsed events over `keys` keys: ids and types come out of JSON.parse, as on the HTTP path. */
export function benchEvents(count: number, keys: number): Event[] {
  const wire = Array.from({ length: count }, (_, i) => ({ id: `evt-${i}-${(i * 2654435761) % 1e9}`, type: i % 3 ? "page_view" : "purchase" }));
  const parsed = JSON.parse(JSON.stringify(wire)) as Array<{ id: string; type: string }>;
  return parsed.map((w, i) => ({ id: w.id, assigned: false, type: w.type, key: `user${i % keys}`, ts: T0 + Math.floor(i / keys) * 100, value: i % 100 }));
}

/**
 * The actor core in memory (ingest + dedupe + windows 1m/1h) in events/s, for each count of events
 * per actor call, next to its baseline from the same run: one Set.add per event id over the same keys.
 */
export function coreRates(count: number, keys: number, perCall: number[]): { baseline: number; rates: Map<number, number> } {
  const list = benchEvents(count, keys);
  const byKey = new Map<string, Event[]>();
  for (const e of list) (byKey.get(e.key) ?? byKey.set(e.key, []).get(e.key)!).push(e);
  // The faster of two passes: the first also warms the JIT, and one cold pass made the ratio swing 2x.
  let baseline = 0;
  let t = 0;
  for (let pass = 0; pass < 2; pass++) {
    const sets = new Map<string, Set<string>>();
    t = performance.now();
    for (const e of list) {
      let set = sets.get(e.key);
      if (!set) sets.set(e.key, (set = new Set()));
      set.add(e.id);
    }
    baseline = Math.max(baseline, (count / (performance.now() - t)) * 1000);
  }
  const rates = new Map<number, number>();
  for (const per of perCall) {
    // As the baseline: the faster of two passes, each over fresh actors (the first pass also warms the JIT).
    let best = 0;
    for (let pass = 0; pass < 2; pass++) {
      const calls: Array<{ actor: Actor; events: Event[] }> = [];
      for (const [key, evs] of byKey) {
        const actor = new Actor(key, DEFAULT_CONFIG);
        for (let i = 0; i < evs.length; i += per) calls.push({ actor, events: evs.slice(i, i + per) });
      }
      calls.sort((a, b) => a.events[0]!.ts - b.events[0]!.ts);
      const now = Date.now();
      t = performance.now();
      for (const call of calls) call.actor.ingest(call.events, now);
      best = Math.max(best, (count / (performance.now() - t)) * 1000);
    }
    rates.set(per, best);
  }
  return { baseline, rates };
}

/**
 * The reference model: what every key's state must be, from the events the server acknowledged
 * (valid events must be acknowledged; invalid ones the server took anyway are kept too, so that one
 * defect does not hide others behind a wall of state differences).
 */
import { MINUTE, type ModelEvent, type Times } from "./workload.ts";

export interface Pair {
  ev: ModelEvent;
  /** Acknowledgements (accepted or duplicate) of this key and event_id. */
  acks: number;
  /** A request holding it had no answer (5xx, timeout): it may or may not be stored. */
  maybe: boolean;
  /** Arrival-time events: when the accepting request was in flight. */
  arrival?: [number, number];
}

export interface KeyState {
  key: string;
  pairs: Set<string>;
  anon: Array<{ ev: ModelEvent; arrival?: [number, number] }>;
  /** Why this key's state cannot be predicted (a request for it got no answer, ...). */
  unknown: string[];
  /** Invalid events the server took for this key (already reported). */
  wrong: string[];
  /** The first request that made this key's state unknown. */
  unknownSpec?: unknown;
}

export const pairKey = (key: string, id: string) => JSON.stringify([key, id]);

export class Model {
  readonly pairs = new Map<string, Pair>();
  readonly keys = new Map<string, KeyState>();
  /** Keys sent in any event-bearing request, valid or not: none of them may have an actor without events. */
  readonly touched = new Set<string>();
  acceptedTotal = 0;
  duplicatesTotal = 0;
  unknownOutcomes = 0;

  key(k: string): KeyState {
    let s = this.keys.get(k);
    if (!s) this.keys.set(k, (s = { key: k, pairs: new Set(), anon: [], unknown: [], wrong: [] }));
    return s;
  }

  pairOf(ev: ModelEvent): Pair | undefined {
    return ev.id === null ? undefined : this.pairs.get(pairKey(ev.key, ev.id));
  }

  /** "old": acknowledged before; "new": never; "maybe": unknown. */
  status(ev: ModelEvent): "old" | "new" | "maybe" {
    const p = this.pairOf(ev);
    if (!p) return "new";
    if (p.acks > 0) return "old";
    return p.maybe ? "maybe" : "new";
  }

  ack(ev: ModelEvent, interval: [number, number], wrongLabel?: string): void {
    const ks = this.key(ev.key);
    if (wrongLabel && !ks.wrong.includes(wrongLabel)) ks.wrong.push(wrongLabel);
    if (ev.id === null) {
      ks.anon.push({ ev, arrival: ev.ts === "arrival" ? interval : undefined });
      return;
    }
    const pk = pairKey(ev.key, ev.id);
    let p = this.pairs.get(pk);
    if (!p) this.pairs.set(pk, (p = { ev, acks: 0, maybe: false }));
    if (p.acks === 0 && ev.ts === "arrival") p.arrival = interval;
    p.acks++;
    ks.pairs.add(pk);
  }

  /** Widens the arrival interval of an event accepted by one of several concurrent sends. */
  widen(ev: ModelEvent, interval: [number, number]): void {
    const p = this.pairOf(ev);
    if (p?.arrival) p.arrival = [Math.min(p.arrival[0], interval[0]), Math.max(p.arrival[1], interval[1])];
  }

  unknown(key: string, reason: string, ev?: ModelEvent, spec?: unknown): void {
    const ks = this.key(key);
    if (ks.unknown.length < 3) ks.unknown.push(reason);
    ks.unknownSpec ??= spec;
    if (ev && ev.id !== null) {
      const pk = pairKey(ev.key, ev.id);
      let p = this.pairs.get(pk);
      if (!p) this.pairs.set(pk, (p = { ev, acks: 0, maybe: false }));
      p.maybe = true;
    }
  }

  hasEvents(key: string): boolean {
    const ks = this.keys.get(key);
    return !!ks && (ks.anon.length > 0 || [...ks.pairs].some((pk) => this.pairs.get(pk)!.acks > 0));
  }
}

export interface Agg {
  count: number;
  valued: number;
  sum: number;
  abs: number;
  min: number | null;
  max: number | null;
}

export const emptyAgg = (): Agg => ({ count: 0, valued: 0, sum: 0, abs: 0, min: null, max: null });

export function addAgg(a: Agg, v: number | undefined): void {
  a.count++;
  if (v === undefined) return;
  a.valued++;
  a.sum += v;
  a.abs += Math.abs(v);
  a.min = a.min === null || v < a.min ? v : a.min;
  a.max = a.max === null || v > a.max ? v : a.max;
}

export interface WindowExpect {
  all: Agg;
  types: Map<string, Agg>;
}

export interface KeyExpect {
  events: number;
  duplicates: number;
  byType: Map<string, number>;
  /** Windows of the fixed minutes (explicit timestamps), by start. */
  fixed: Map<number, WindowExpect>;
  /** Everything else (arrival-time events): compared as a union, since the minute of arrival is not exact. */
  rest: WindowExpect;
  first?: number;
  last?: number;
  hasArrival: boolean;
}

/** The state a key must have. */
export function expectedState(model: Model, ks: KeyState, times: Times): KeyExpect {
  const exp: KeyExpect = { events: 0, duplicates: 0, byType: new Map(), fixed: new Map(), rest: { all: emptyAgg(), types: new Map() }, hasArrival: false };
  const add = (ev: ModelEvent) => {
    exp.events++;
    exp.byType.set(ev.type, (exp.byType.get(ev.type) ?? 0) + 1);
    let w: WindowExpect;
    if (ev.ts === "arrival") {
      exp.hasArrival = true;
      w = exp.rest;
    } else {
      const start = Math.floor(ev.ts / MINUTE) * MINUTE;
      if (!times.fixed.has(start)) throw new Error(`model bug: event at ${ev.ts} outside the fixed minutes`);
      w = exp.fixed.get(start) ?? exp.fixed.set(start, { all: emptyAgg(), types: new Map() }).get(start)!;
      exp.first = exp.first === undefined ? ev.ts : Math.min(exp.first, ev.ts);
      exp.last = exp.last === undefined ? ev.ts : Math.max(exp.last, ev.ts);
    }
    addAgg(w.all, ev.measure);
    const t = w.types.get(ev.type) ?? w.types.set(ev.type, emptyAgg()).get(ev.type)!;
    addAgg(t, ev.measure);
  };
  for (const pk of ks.pairs) {
    const p = model.pairs.get(pk)!;
    if (p.acks === 0) continue;
    add(p.ev);
    exp.duplicates += p.acks - 1;
  }
  for (const a of ks.anon) add(a.ev);
  return exp;
}

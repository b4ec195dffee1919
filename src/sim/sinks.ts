import { SinkError } from "../delivery/sink.ts";
import type { OutboxRecord } from "../actor/outbox.ts";
import type { SimContext } from "./context.ts";
import { hash32 } from "./prng.ts";
import { windowEffect } from "./model.ts";

/** Identity of a record's effect in a sink: what an idempotent sink dedupes on (as tests/support/fake-sink.ts). */
export function effectId(r: OutboxRecord): string {
  if (r.kind === "event") return `event|${r.key}|${r.id}`;
  if (r.kind === "window") return windowEffect(r.key, r);
  if (r.kind === "alert") return `alert|${r.key}|${r.rule}|${r.window.shape}|${r.window.start}`;
  return `dead|${r.key}|${r.sink}|${r.record.n}`;
}

/**
 * The permanent-fault predicate: a sink refuses a record for good when a hash of (sink, effect) falls
 * under the poison rate. It depends on the data only, so every retry of the record fails the same way,
 * and the checker knows exactly which records must end in the dead-letter queue.
 * Mirrors of dead letters are never poison (they could not be dead-lettered again).
 */
export function isPoison(sink: string, r: OutboxRecord | { kind: "event" | "window"; key: string }, rate: number, salt: number): boolean {
  if (rate <= 0 || r.kind === "dead_letter") return false;
  return hash32(`${sink}|${effectId(r as OutboxRecord)}`, salt) / 2 ** 32 < rate;
}

/**
 * A record's content as its effect: without its outbox position and routing (a DLQ replay re-sends
 * it under a new n) and without the process host's journal reference (bookkeeping, not content).
 */
export function payload(r: OutboxRecord): string {
  const { n: _n, only: _only, ref: _ref, ...rest } = r as OutboxRecord & { ref?: unknown };
  return JSON.stringify(Object.fromEntries(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : 1))));
}

/** The party a sink call answers to; a crashed instance never hears back. */
export interface Caller {
  key: string;
  alive(): boolean;
  /** Told the call's latency when it is sent (the host may schedule a crash inside it). */
  sent(latency: number): void;
}

export interface Effect {
  record: OutboxRecord;
  text: string;
  applies: number;
}

/**
 * A downstream system with injected faults. It applies records idempotently by effectId, as a real
 * sink must, at a virtual time of its own: a request is applied (all, a prefix, or nothing) and
 * answered later, so the sender may crash, time out, retry, or hear back twice.
 */
export class SimSink {
  /** Effects applied, by effectId (first application wins; later ones must be identical). */
  readonly effects = new Map<string, Effect>();
  readonly stats = { calls: 0, applied: 0, reapplied: 0 };
  private outageUntil = 0;
  /** sink-drops-record: the effect this broken sink acknowledges but never applies. */
  private dropped: string | undefined;

  constructor(
    readonly name: string,
    private readonly ctx: SimContext,
    private readonly poisonSalt: number,
  ) {}

  /** The sink is down until `until` (outage fault). */
  down(until: number): void {
    this.outageUntil = Math.max(this.outageUntil, until);
  }

  poison(r: OutboxRecord): boolean {
    return this.ctx.poisonOn && isPoison(this.name, r, this.ctx.plan.sink.poison, this.poisonSalt);
  }

  deliver(records: OutboxRecord[], caller: Caller): Promise<void> {
    const { ctx } = this;
    const { prng, counters, sched } = ctx;
    const f = ctx.plan.sink;
    const faults = ctx.faultsOn;
    this.stats.calls++;
    // What travels on the wire: a copy, so nothing the sender does later can change it.
    const wire = JSON.parse(JSON.stringify(records)) as OutboxRecord[];
    const now = sched.now();
    let latency = prng.range(1, 40);
    if (faults && prng.chance(f.slow)) {
      latency = prng.range(500, 15_000);
      counters.fault("sink_slow");
    }
    let apply = 0;
    let applyAt = now + Math.floor(latency / 2);
    let error: SinkError | undefined;
    const poisonAt = wire.findIndex((r) => this.poison(r));
    if (faults && now < this.outageUntil) {
      error = new SinkError(`${this.name}: 503 service unavailable (outage)`, false);
    } else if (faults && prng.chance(f.transient)) {
      counters.fault("sink_transient");
      error = new SinkError(`${this.name}: ${prng.pick(["429 too many requests", "502 bad gateway", "connection refused"])}`, false);
    } else if (poisonAt >= 0) {
      counters.fault("sink_permanent");
      if (f.style === "indexed") {
        apply = poisonAt;
        error = new SinkError(`${this.name}: record ${poisonAt} refused (poison)`, true, poisonAt);
      } else {
        error = new SinkError(`${this.name}: batch refused (poison)`, true);
        if (wire.length > 1) counters.path("bisect");
      }
    } else if (faults && prng.chance(f.timeout)) {
      counters.fault("sink_timeout");
      apply = prng.pick([0, wire.length, wire.length, prng.int(wire.length + 1)]);
      latency = prng.range(1_000, 10_000);
      applyAt = now + prng.int(latency);
      if (prng.chance(f.lateApply)) {
        counters.fault("sink_late_apply");
        applyAt = now + latency + prng.range(1, 20_000);
      }
      error = new SinkError(`${this.name}: timed out after ${latency} ms`, false);
    } else if (faults && wire.length > 1 && prng.chance(f.partial)) {
      counters.fault("sink_partial");
      apply = prng.range(1, wire.length - 1);
      error = new SinkError(`${this.name}: record ${apply} failed (503)`, false, apply);
    } else {
      apply = wire.length;
    }
    if (apply > 0) {
      const part = wire.slice(0, apply);
      sched.at(applyAt, "sink.apply", caller.key, () => this.apply(part));
      if (faults && prng.chance(f.dupAck)) {
        counters.fault("sink_dup_ack");
        sched.at(now + latency + prng.int(5_000), "sink.apply.dup", caller.key, () => this.apply(part));
      }
    }
    caller.sent(latency);
    return new Promise<void>((resolve, reject) => {
      sched.at(now + latency, "sink.respond", caller.key, () => {
        if (!caller.alive()) {
          counters.path("response_dropped");
          return;
        }
        if (error) reject(error);
        else resolve();
      });
    });
  }

  private apply(records: OutboxRecord[]): void {
    for (const r of records) {
      const id = effectId(r);
      if (this.ctx.broken === "sink-drops-record" && r.kind === "event" && (this.dropped ?? (this.dropped = id)) === id) continue;
      this.ctx.trace.text(this.name).text(id);
      this.ctx.observer.applied(this, r);
      const text = payload(r);
      const seen = this.effects.get(id);
      if (seen) {
        seen.applies++;
        this.stats.reapplied++;
      } else {
        this.effects.set(id, { record: r, text, applies: 1 });
        this.stats.applied++;
      }
    }
  }
}

import { SinkError, type Sink } from "../../src/delivery/sink.ts";
import type { OutboxRecord } from "../../src/actor/outbox.ts";

/** Identity of a record's effect in a sink: what an idempotent sink dedupes on. */
export function effectId(r: OutboxRecord): string {
  if (r.kind === "event") return `event|${r.key}|${r.id}`;
  if (r.kind === "window") return `window|${r.key}|${r.spec}|${r.start}|${r.revision}`;
  if (r.kind === "alert") return `alert|${r.key}|${r.rule}|${r.window.shape}|${r.window.start}`;
  return `dead|${r.key}|${r.sink}|${r.record.n}`;
}

/**
 * A sink for unit tests that injects faults. It applies records idempotently (by effectId), as a
 * real sink must, and keeps every call so tests can check order, redelivery and exactly-once effect.
 */
export class FakeSink implements Sink {
  readonly calls: OutboxRecord[][] = [];
  readonly applied = new Map<string, OutboxRecord>();
  readonly order: OutboxRecord[] = [];
  /** Fail the next N calls transiently (sink down). */
  down = 0;
  /** Apply the batch, then report a timeout anyway (the outcome is unknown to the sender). */
  lieNext = 0;
  /** Records this predicate matches are refused permanently, as a whole batch (like a failed SQL statement). */
  poison: (r: OutboxRecord) => boolean = () => false;
  /** Calls with more records than this are refused as too large (like HTTP 413), as a whole. */
  maxRecords = Infinity;
  /** Records this predicate matches are too large even alone (refused as too large in any batch). */
  huge: (r: OutboxRecord) => boolean = () => false;
  /** When set, each call waits until the test releases it (release()), so calls overlap. */
  hold = false;
  private held: Array<() => void> = [];
  /** Calls in flight now, and the most seen at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Calls that carried a key some other call in flight also carried (per-key order at risk). */
  overlaps = 0;
  private readonly keysInFlight = new Map<string, number>();

  /** Lets every held call go on. */
  release(): number {
    const held = this.held.splice(0);
    for (const go of held) go();
    return held.length;
  }

  constructor(readonly name: string) {}

  async deliver(records: OutboxRecord[]): Promise<void> {
    this.calls.push(records);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const keys = [...new Set(records.map((r) => r.key))];
    if (keys.some((k) => this.keysInFlight.has(k))) this.overlaps++;
    for (const k of keys) this.keysInFlight.set(k, (this.keysInFlight.get(k) ?? 0) + 1);
    try {
      if (this.hold) await new Promise<void>((go) => this.held.push(go));
      this.take(records);
    } finally {
      this.inFlight--;
      for (const k of keys) {
        const left = this.keysInFlight.get(k)! - 1;
        if (left) this.keysInFlight.set(k, left);
        else this.keysInFlight.delete(k);
      }
    }
  }

  private take(records: OutboxRecord[]): void {
    if (this.down > 0) {
      this.down--;
      throw new SinkError(`${this.name}: connection refused`, false);
    }
    if (records.length > this.maxRecords || records.some(this.huge)) {
      throw new SinkError(`${this.name}: HTTP 413 request too large`, false, undefined, true);
    }
    if (records.some(this.poison)) throw new SinkError(`${this.name}: payload refused`, true);
    for (const r of records) {
      const id = effectId(r);
      if (!this.applied.has(id)) this.order.push(r);
      this.applied.set(id, r);
    }
    if (this.lieNext > 0) {
      this.lieNext--;
      throw new SinkError(`${this.name}: timed out`, false);
    }
  }

  eventIds(key?: string): string[] {
    return this.order.filter((r) => r.kind === "event" && (key === undefined || r.key === key)).map((r) => (r as { id: string }).id);
  }
}

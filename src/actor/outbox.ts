import { assert } from "../ports/assert.ts";
import type { Aggregate } from "./windows.ts";

/** An accepted event, as forwarded to sinks. */
export interface EventRecord {
  kind: "event";
  /** Position in this actor's outbox: monotonic, never reused; the idempotency key with `key`. */
  n: number;
  key: string;
  id: string;
  type: string;
  ts: number;
  value?: number;
  properties?: Record<string, unknown>;
  receivedAt: number;
  late: boolean;
  /** Deliver to this sink only (DLQ replays and mirrors). */
  only?: string;
}

/** A window's aggregates: every revision under emit=updates, and once as final when it closes. */
export interface WindowRecord {
  kind: "window";
  n: number;
  key: string;
  spec: string;
  start: number;
  end: number;
  revision: number;
  final: boolean;
  all: Aggregate;
  types: Record<string, Aggregate>;
  closedAt?: number;
  only?: string;
}

/** A copy of a dead-lettered record, mirrored to the Postgres failed_events table. */
export interface DeadLetterRecord {
  kind: "dead_letter";
  n: number;
  key: string;
  sink: string;
  record: EventRecord | WindowRecord;
  error: string;
  failedAt: number;
  only?: string;
}

export type OutboxRecord = EventRecord | WindowRecord | DeadLetterRecord;
export type NewRecord = DistributiveOmit<EventRecord, "n"> | DistributiveOmit<WindowRecord, "n"> | DistributiveOmit<DeadLetterRecord, "n">;
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export interface DeadLetter {
  id: number;
  sink: string;
  record: EventRecord | WindowRecord;
  error: string;
  attempts: number;
  failedAt: number;
}

export interface OutboxMeta {
  nextN: number;
  nextSeq: number;
  nextDeadId: number;
}

export const OUTBOX_ROW = {
  segment: (seq: number) => `ob/${String(seq).padStart(12, "0")}`,
  cursor: (sink: string) => `oc/${sink}`,
  dead: (id: number) => `dl/${String(id).padStart(12, "0")}`,
};

const SEGMENT_MAX_CHARS = 512 * 1024;

/**
 * An actor's transactional outbox: records appended in the same commit as the state change that made
 * them, one cursor per sink (a slow sink never blocks the others), and a dead-letter queue.
 * Records are persisted in segments (one row per commit), dropped once every sink is past them.
 */
export class Outbox {
  private records: OutboxRecord[] = [];
  private segments: Array<{ seq: number; last: number }> = [];
  private readonly cursors = new Map<string, number>();
  private readonly dead = new Map<number, DeadLetter>();
  private meta: OutboxMeta = { nextN: 0, nextSeq: 0, nextDeadId: 0 };
  private unsaved: OutboxRecord[] = [];
  private dirtyCursors = new Set<string>();
  private deadPuts = new Set<number>();
  private deadDeletes: number[] = [];
  private segmentDeletes: number[] = [];

  /** `mirror`: the sink that also receives a copy of each dead letter (Postgres' failed_events table). */
  constructor(
    readonly sinks: readonly string[],
    readonly mirror?: string,
  ) {
    for (const sink of sinks) {
      this.cursors.set(sink, 0);
      this.dirtyCursors.add(sink);
    }
  }

  get enabled(): boolean {
    return this.sinks.length > 0;
  }

  append(record: NewRecord): void {
    if (!this.enabled) return;
    const full = { ...record, n: this.meta.nextN++ } as OutboxRecord;
    this.records.push(full);
    this.unsaved.push(full);
  }

  /**
   * Records not yet delivered to `sink`, oldest first, at most `max`. Records meant only for other
   * sinks are passed over, and the cursor moves past those ahead of the first one returned.
   */
  pending(sink: string, max: number): OutboxRecord[] {
    const first = this.records[0]?.n ?? this.meta.nextN;
    const foreign = (r: OutboxRecord) => r.only !== undefined && r.only !== sink;
    let i = Math.max(0, this.cursor(sink) - first);
    while (i < this.records.length && foreign(this.records[i]!)) i++;
    const skipTo = first + i;
    const out: OutboxRecord[] = [];
    for (; i < this.records.length && out.length < max; i++) if (!foreign(this.records[i]!)) out.push(this.records[i]!);
    if (skipTo > this.cursor(sink)) this.ack(sink, skipTo);
    return out;
  }

  /** Records `sink` has still to take (records for other sinks only are counted too: it is a bound). */
  backlog(sink?: string): number {
    if (sink !== undefined) return this.meta.nextN - this.cursor(sink);
    let most = 0;
    for (const s of this.sinks) most = Math.max(most, this.meta.nextN - this.cursor(s));
    return most;
  }

  /** `sink` has taken every record before `next`. */
  ack(sink: string, next: number): void {
    const cursor = this.cursor(sink);
    if (next <= cursor) return;
    assert(next <= this.meta.nextN, "outbox: a sink cannot be acked past the last record");
    this.cursors.set(sink, next);
    this.dirtyCursors.add(sink);
    this.collect();
  }

  /** Moves a record that `sink` cannot take to the dead-letter queue; mirrors it to failed_events. */
  deadLetter(sink: string, record: OutboxRecord, error: string, attempts: number, now: number): void {
    if (record.kind === "dead_letter") return; // a mirror that failed stays where it is: no mirror of a mirror
    const id = this.meta.nextDeadId++;
    const { only: _only, ...original } = record;
    this.dead.set(id, { id, sink, record: original, error, attempts, failedAt: now });
    this.deadPuts.add(id);
    if (this.mirror !== undefined && this.sinks.includes(this.mirror)) {
      this.append({ kind: "dead_letter", key: record.key, sink, record: original, error, failedAt: now, only: this.mirror });
    }
  }

  deadLetters(): DeadLetter[] {
    return [...this.dead.values()];
  }

  /** Puts dead letters (all, or those of `sink`, or with these ids) back in the outbox, for their sink only. */
  replay(filter: { sink?: string; ids?: number[] }): number {
    let count = 0;
    for (const entry of [...this.dead.values()]) {
      if (filter.sink !== undefined && entry.sink !== filter.sink) continue;
      if (filter.ids !== undefined && !filter.ids.includes(entry.id)) continue;
      if (!this.sinks.includes(entry.sink)) continue;
      const { n: _n, ...record } = entry.record;
      this.append({ ...record, only: entry.sink });
      this.dead.delete(entry.id);
      this.deadPuts.delete(entry.id);
      this.deadDeletes.push(entry.id);
      count++;
    }
    return count;
  }

  private cursor(sink: string): number {
    return this.cursors.get(sink) ?? this.meta.nextN;
  }

  /** Drops records and segments every sink is past. */
  private collect(): void {
    let low = Infinity;
    for (const sink of this.sinks) low = Math.min(low, this.cursor(sink));
    let drop = 0;
    while (drop < this.records.length && this.records[drop]!.n < low) drop++;
    if (drop) this.records.splice(0, drop);
    while (this.segments.length && this.segments[0]!.last < low) this.segmentDeletes.push(this.segments.shift()!.seq);
  }

  getMeta(): OutboxMeta {
    return { ...this.meta };
  }

  /** Rows to write since the last drain (the actor's state row carries getMeta()). */
  drain(): { puts: Array<[string, string]>; deletes: string[] } {
    const puts: Array<[string, string]> = [];
    const deletes: string[] = [];
    let parts: string[] = [];
    let chars = 0;
    const flushSegment = (last: number) => {
      const seq = this.meta.nextSeq++;
      puts.push([OUTBOX_ROW.segment(seq), `[${parts.join(",")}]`]);
      this.segments.push({ seq, last });
      parts = [];
      chars = 0;
    };
    this.unsaved.forEach((record, i) => {
      const text = JSON.stringify(record);
      parts.push(text);
      chars += text.length + 1;
      if (chars >= SEGMENT_MAX_CHARS || i === this.unsaved.length - 1) flushSegment(record.n);
    });
    this.unsaved = [];
    // Segments written and already passed by every sink in this same drain go at once.
    this.collect();
    for (const sink of this.dirtyCursors) puts.push([OUTBOX_ROW.cursor(sink), String(this.cursor(sink))]);
    this.dirtyCursors.clear();
    for (const id of this.deadPuts) puts.push([OUTBOX_ROW.dead(id), JSON.stringify(this.dead.get(id))]);
    this.deadPuts.clear();
    for (const id of this.deadDeletes.splice(0)) deletes.push(OUTBOX_ROW.dead(id));
    for (const seq of this.segmentDeletes.splice(0)) deletes.push(OUTBOX_ROW.segment(seq));
    return { puts, deletes };
  }

  /** Rebuilds from rows: `ob/` segments, `oc/` cursors, `dl/` dead letters, in key order. */
  static restore(sinks: readonly string[], mirror: string | undefined, meta: OutboxMeta | undefined, rows: Iterable<[string, string]>): Outbox {
    const outbox = new Outbox(sinks, mirror);
    if (meta) outbox.meta = { ...meta };
    const stored = new Set<string>();
    for (const [key, text] of rows) {
      if (key.startsWith("ob/")) {
        const records = JSON.parse(text) as OutboxRecord[];
        outbox.records.push(...records);
        outbox.segments.push({ seq: Number(key.slice(3)), last: records[records.length - 1]!.n });
      } else if (key.startsWith("oc/")) {
        const sink = key.slice(3);
        if (!outbox.cursors.has(sink)) continue;
        outbox.cursors.set(sink, Number(text));
        outbox.dirtyCursors.delete(sink);
        stored.add(sink);
      } else if (key.startsWith("dl/")) {
        const entry = JSON.parse(text) as DeadLetter;
        outbox.dead.set(entry.id, entry);
      }
    }
    // A sink enabled since the last run starts at the end: it receives what comes from now on.
    for (const sink of sinks) if (!stored.has(sink)) outbox.cursors.set(sink, outbox.meta.nextN);
    outbox.collect();
    return outbox;
  }
}

import { assert } from "../ports/assert.ts";
import { ACTOR_ROW, rowNumber } from "./layout.ts";
import type { Aggregate } from "./windows.ts";
import type { AlertRecord, WindowShape } from "./analytics.ts";
import type { ExtrasView } from "./window-extras.ts";

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
  /** The correlation ID of the request that brought the event (absent for events from before it was kept). */
  requestId?: string;
  /** Fields enrichment rules added (keyflow.config.json), if any. */
  enriched?: Record<string, string | number | boolean>;
  /** Deliver to this sink only (DLQ replays and mirrors). */
  only?: string;
  /**
   * Where the event already lies in the host's journal (the process host sets it): a checkpoint then
   * stores the record as this reference, not as a second copy of the event.
   */
  ref?: RecordRef;
}

/** An event's place in the process host's journal: [journal row seq, entry in the row, event in the entry]. */
export type RecordRef = [seq: number, entry: number, event: number];

/** The event fields a journal reference resolves to. */
export type RecordBody = Pick<EventRecord, "key" | "id" | "type" | "ts" | "value" | "properties" | "receivedAt" | "requestId">;
export type ResolveRef = (ref: RecordRef) => RecordBody | undefined;

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
  /** The shape's kind (records from before it was kept have none: tumbling, or hopping when the spec has a hop). */
  shape?: WindowShape["kind"];
  /** A type's own window (keyflow.config.json): its event type; `all` and `types` then cover that type alone. */
  type?: string;
  /** A session superseded by a merge or a backward extension: sinks delete it by (start, end). */
  retracted?: boolean;
  /** Distinct counts and percentiles by type, where configured. */
  extras?: Record<string, ExtrasView>;
}

/** A detection rule that fired (once per rule and window), for the sinks' alerts topic, table and stream. */
export type OutboxAlert = AlertRecord & { n: number; only?: string };

/** What sinks write: every record but a dead letter's mirror. */
export type SinkRecord = EventRecord | WindowRecord | OutboxAlert;

/** A copy of a dead-lettered record, mirrored to the Postgres failed_events table. */
export interface DeadLetterRecord {
  kind: "dead_letter";
  n: number;
  key: string;
  sink: string;
  record: SinkRecord;
  error: string;
  failedAt: number;
  only?: string;
}

export type OutboxRecord = SinkRecord | DeadLetterRecord;
export type NewRecord = DistributiveOmit<OutboxRecord, "n">;
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export interface DeadLetter {
  id: number;
  sink: string;
  /** The record in full (never a journal reference: the journal does not keep it). */
  record: SinkRecord;
  error: string;
  attempts: number;
  failedAt: number;
}

export interface OutboxMeta {
  nextN: number;
  nextSeq: number;
  nextDeadId: number;
  /** Each sink's cursor: it has taken every record before it (older rows kept these as oc/ rows). */
  cursors?: Array<[string, number]>;
}

/**
 * A record stored as a reference to the journal: its position, lateness, enrichment and routing (what
 * the actor derived when it took the event, which the journal does not hold).
 */
interface StoredRef {
  n: number;
  ref: RecordRef;
  late: boolean;
  enriched?: Record<string, string | number | boolean>;
  only?: string;
}

const SEGMENT_MAX_CHARS = 512 * 1024;
/** What an absent list reads as. */
const NONE: readonly never[] = Object.freeze([]);

/**
 * An actor's transactional outbox: records appended with the state change that made them, one
 * cursor per sink (a slow sink never blocks the others), and a dead-letter queue. A record goes to
 * sinks only once the commit that made it is durable (markDurable). Records no sink has taken yet
 * are persisted in segments (one row per commit), dropped once every sink is past them.
 */
export class Outbox {
  // Lists and maps stay undefined while empty (most of the time): an empty array costs 64 bytes an actor.
  private records: OutboxRecord[] | undefined;
  /** Stored segments: their last record, and the oldest journal row their references need, if any. */
  private segments: Array<{ seq: number; last: number; minRef?: number }> | undefined;
  /** Each sink's cursor, in the order of `sinks` (an array, not a Map: ~200 bytes less an actor). */
  private readonly cursors: number[];
  private dead: Map<number, DeadLetter> | undefined;
  /** OutboxMeta's counters, as fields rather than an object of their own (one object fewer an actor). */
  private nextRecord = 0;
  private nextSegment = 0;
  private nextDead = 0;
  /** Records from here on were appended after the last durable commit: no sink gets them yet. */
  private durableN = 0;
  private unsaved: OutboxRecord[] | undefined;
  private deadPuts: Set<number> | undefined;
  private deadDeletes: number[] | undefined;
  private segmentDeletes: number[] | undefined;
  private legacyRows: string[] | undefined;
  /** The cursors or counters (kept in the actor's state row) changed since the last drain. */
  private metaChanged = false;
  /** Segments read by restore, rebuilt once the cursors are known. */

  /** `mirror`: the sink that also receives a copy of each dead letter (Postgres' failed_events table). */
  constructor(
    readonly sinks: readonly string[],
    readonly mirror?: string,
  ) {
    // Without sinks nothing is ever written to it: the shared empty array will do.
    this.cursors = sinks.length ? sinks.map(() => 0) : (NONE as never[]);
  }

  get enabled(): boolean {
    return this.sinks.length > 0;
  }

  /** The position the next record gets. */
  get nextN(): number {
    return this.nextRecord;
  }

  append(record: NewRecord): OutboxRecord | undefined {
    if (!this.enabled) return undefined;
    const full = { ...record, n: this.nextRecord++ } as OutboxRecord;
    this.metaChanged = true;
    (this.records ??= []).push(full);
    (this.unsaved ??= []).push(full);
    return full;
  }

  /** Everything appended so far (or before record `upTo`) is durable: sinks may have it. */
  markDurable(upTo = this.nextRecord): void {
    assert(upTo <= this.nextRecord, "outbox: only appended records become durable");
    if (upTo > this.durableN) this.durableN = upTo;
  }

  /**
   * Durable records not yet delivered to `sink`, oldest first, at most `max`. Records meant only for
   * other sinks are passed over, and the cursor moves past those ahead of the first one returned.
   */
  pending(sink: string, max: number): OutboxRecord[] {
    const records = this.records ?? NONE;
    const first = records[0]?.n ?? this.nextRecord;
    const end = Math.min(records.length, this.durableN - first);
    const foreign = (r: OutboxRecord) => r.only !== undefined && r.only !== sink;
    let i = Math.max(0, this.cursor(sink) - first);
    while (i < end && foreign(records[i]!)) i++;
    const skipTo = first + i;
    const out: OutboxRecord[] = [];
    for (; i < end && out.length < max; i++) if (!foreign(records[i]!)) out.push(records[i]!);
    if (skipTo > this.cursor(sink)) this.ack(sink, skipTo);
    return out;
  }

  /** Records `sink` has still to take (records for other sinks only are counted too: it is a bound). */
  backlog(sink?: string): number {
    if (sink !== undefined) return this.nextRecord - this.cursor(sink);
    let most = 0;
    for (const s of this.sinks) most = Math.max(most, this.nextRecord - this.cursor(s));
    return most;
  }

  /** The record at position `n`, while some sink has still to take it. */
  record(n: number): OutboxRecord | undefined {
    const first = this.records?.[0]?.n;
    return first === undefined ? undefined : this.records![n - first];
  }

  /** `sink` has taken every record before `next`. */
  ack(sink: string, next: number): void {
    const cursor = this.cursor(sink);
    if (next <= cursor) return;
    assert(next <= this.nextRecord, "outbox: a sink cannot be acked past the last record");
    this.cursors[this.sinks.indexOf(sink)] = next;
    this.metaChanged = true;
    this.collect();
  }

  /** Moves a record that `sink` cannot take to the dead-letter queue, and mirrors it. */
  deadLetter(sink: string, record: OutboxRecord, error: string, attempts: number, now: number): void {
    if (record.kind === "dead_letter") return; // a mirror that failed stays where it is: no mirror of a mirror
    const id = this.nextDead++;
    const { only: _only, ref: _ref, ...original } = record as EventRecord;
    const copy = original as SinkRecord;
    (this.dead ??= new Map()).set(id, { id, sink, record: copy, error, attempts, failedAt: now });
    (this.deadPuts ??= new Set()).add(id);
    if (this.mirror !== undefined && this.sinks.includes(this.mirror)) {
      this.append({ kind: "dead_letter", key: record.key, sink, record: copy, error, failedAt: now, only: this.mirror });
    }
  }

  deadLetters(): DeadLetter[] {
    return this.dead ? [...this.dead.values()] : [];
  }

  /** Puts dead letters (all, or those of `sink`, or with these ids) back in the outbox, for their sink only. */
  replay(filter: { sink?: string; ids?: number[] }): number {
    let count = 0;
    for (const entry of this.deadLetters()) {
      if (filter.sink !== undefined && entry.sink !== filter.sink) continue;
      if (filter.ids !== undefined && !filter.ids.includes(entry.id)) continue;
      if (!this.sinks.includes(entry.sink)) continue;
      const { n: _n, ...record } = entry.record;
      this.append({ ...record, only: entry.sink });
      this.dead!.delete(entry.id);
      this.deadPuts?.delete(entry.id);
      (this.deadDeletes ??= []).push(entry.id);
      count++;
    }
    return count;
  }

  /** `sink`'s cursor: it has taken every record before this position. */
  position(sink: string): number {
    return this.cursor(sink);
  }

  private cursor(sink: string): number {
    const i = this.sinks.indexOf(sink);
    return i < 0 ? this.nextRecord : this.cursors[i]!;
  }

  /** The lowest cursor: every sink has taken the records before it. */
  private low(): number {
    let low = this.nextRecord;
    for (const sink of this.sinks) low = Math.min(low, this.cursor(sink));
    return low;
  }

  /** Drops records and segments every sink is past. */
  private collect(): void {
    const low = this.low();
    let drop = 0;
    const records = this.records;
    if (records) {
      while (drop < records.length && records[drop]!.n < low) drop++;
      if (drop) records.splice(0, drop);
      if (!records.length) this.records = undefined;
    }
    const segments = this.segments;
    if (segments) {
      while (segments.length && segments[0]!.last < low) (this.segmentDeletes ??= []).push(segments.shift()!.seq);
      if (!segments.length) this.segments = undefined;
    }
  }

  getMeta(): OutboxMeta {
    return { nextN: this.nextRecord, nextSeq: this.nextSegment, nextDeadId: this.nextDead, cursors: this.sinks.map((sink, i) => [sink, this.cursors[i]!]) };
  }

  /**
   * Rows to write since the last drain (the actor's state row carries getMeta()): a segment of the
   * records appended since that no sink has taken yet, dead-letter changes, and rows to delete.
   * `inlineRefs`: store journal-referenced records in full (the journal is about to go).
   */
  drain(inlineRefs = false): { puts: Array<[string, string]>; deletes: string[]; metaChanged: boolean } {
    const puts: Array<[string, string]> = [];
    const deletes: string[] = this.legacyRows ?? [];
    this.legacyRows = undefined;
    const seqBefore = this.nextSegment;
    const low = this.low();
    let parts: string[] = [];
    let chars = 0;
    let waiting = this.unsaved?.filter((r) => r.n >= low) ?? [];
    this.unsaved = undefined;
    if (inlineRefs && this.minStoredRef() !== undefined) {
      // Stored references are about to lose their journal rows: store what is left of them in full.
      for (const { seq } of this.segments ?? NONE) (this.segmentDeletes ??= []).push(seq);
      this.segments = undefined;
      waiting = [...(this.records ?? NONE)];
    }
    let minRef: number | undefined;
    const flushSegment = (last: number) => {
      const seq = this.nextSegment++;
      puts.push([ACTOR_ROW.outboxSegment(seq), `[${parts.join(",")}]`]);
      (this.segments ??= []).push(minRef === undefined ? { seq, last } : { seq, last, minRef });
      parts = [];
      chars = 0;
      minRef = undefined;
    };
    waiting.forEach((record, i) => {
      const stored = storedForm(record, inlineRefs);
      if (!("kind" in stored) && (minRef === undefined || stored.ref[0] < minRef)) minRef = stored.ref[0];
      const text = JSON.stringify(stored);
      parts.push(text);
      chars += text.length + 1;
      if (chars >= SEGMENT_MAX_CHARS || i === waiting.length - 1) flushSegment(record.n);
    });
    for (const id of this.deadPuts ?? NONE) puts.push([ACTOR_ROW.deadLetter(id), JSON.stringify(this.dead!.get(id))]);
    this.deadPuts = undefined;
    for (const id of this.deadDeletes ?? []) deletes.push(ACTOR_ROW.deadLetter(id));
    for (const seq of this.segmentDeletes ?? []) deletes.push(ACTOR_ROW.outboxSegment(seq));
    this.deadDeletes = this.segmentDeletes = undefined;
    const metaChanged = this.metaChanged || this.nextSegment !== seqBefore || deletes.length > 0;
    this.metaChanged = false;
    return { puts, deletes, metaChanged };
  }

  /** The oldest journal row that this outbox's stored segments refer to (the host keeps it), if any. */
  minStoredRef(): number | undefined {
    let min: number | undefined;
    for (const { minRef } of this.segments ?? NONE) if (minRef !== undefined && (min === undefined || minRef < min)) min = minRef;
    return min;
  }

  /**
   * Rebuilds from rows in key order: `ob/` segments, `dl/` dead letters, and `oc/` cursors of older
   * rows. `resolve` turns a record stored as a journal reference back into the record.
   */
  static restore(
    sinks: readonly string[],
    mirror: string | undefined,
    meta: OutboxMeta | undefined,
    rows: Iterable<[string, string]>,
    resolve?: ResolveRef,
  ): Outbox {
    const outbox = new Outbox(sinks, mirror);
    const cursors = new Map<string, number>(meta?.cursors ?? []);
    const storedRows: Array<Array<OutboxRecord | StoredRef>> = [];
    if (meta) {
      outbox.nextRecord = meta.nextN;
      outbox.nextSegment = meta.nextSeq;
      outbox.nextDead = meta.nextDeadId;
    }
    for (const [key, text] of rows) {
      if (key.startsWith(ACTOR_ROW.outboxPrefix)) {
        const stored = JSON.parse(text) as Array<OutboxRecord | StoredRef>;
        let minRef: number | undefined;
        for (const r of stored) if ("ref" in r && !("kind" in r) && (minRef === undefined || r.ref[0] < minRef)) minRef = r.ref[0];
        const seq = rowNumber(key, ACTOR_ROW.outboxPrefix);
        const last = stored[stored.length - 1]!.n;
        (outbox.segments ??= []).push(minRef === undefined ? { seq, last } : { seq, last, minRef });
        storedRows.push(stored);
      } else if (key.startsWith(ACTOR_ROW.legacyCursorPrefix)) {
        const sink = key.slice(ACTOR_ROW.legacyCursorPrefix.length);
        if (!cursors.has(sink)) cursors.set(sink, Number(text));
        (outbox.legacyRows ??= []).push(key);
      } else if (key.startsWith(ACTOR_ROW.deadLetterPrefix)) {
        const entry = JSON.parse(text) as DeadLetter;
        (outbox.dead ??= new Map()).set(entry.id, entry);
      }
    }
    // A sink enabled since the last run starts at the end: it receives what comes from now on.
    sinks.forEach((sink, i) => (outbox.cursors[i] = cursors.get(sink) ?? outbox.nextRecord));
    // A segment may still list records every sink has taken since (it goes at the next drain): only
    // the others are rebuilt, so only theirs need their journal rows.
    const low = outbox.low();
    for (const row of storedRows) for (const r of row) if (r.n >= low) (outbox.records ??= []).push(fromStored(r, resolve));
    outbox.collect();
    outbox.durableN = outbox.nextRecord;
    return outbox;
  }
}

function storedForm(record: OutboxRecord, inlineRefs: boolean): OutboxRecord | StoredRef {
  // Only an event lies in the journal: windows, alerts and dead-letter mirrors are stored in full.
  if (record.kind !== "event" || record.ref === undefined) return record;
  if (inlineRefs) {
    const { ref: _ref, ...full } = record;
    return full;
  }
  const stored: StoredRef = { n: record.n, ref: record.ref, late: record.late };
  if (record.enriched !== undefined) stored.enriched = record.enriched;
  if (record.only !== undefined) stored.only = record.only;
  return stored;
}

function fromStored(row: OutboxRecord | StoredRef, resolve: ResolveRef | undefined): OutboxRecord {
  if ("kind" in row) return row;
  const body = resolve?.(row.ref);
  assert(body !== undefined, `outbox: the journal row of record ${row.n} (${row.ref.join("/")}) must be kept while a sink needs it`);
  // Fields in the order the actor first wrote them, so a rebuilt record reads exactly as the original.
  const record = { kind: "event", key: body.key, id: body.id, type: body.type, ts: body.ts, receivedAt: body.receivedAt, late: row.late } as EventRecord;
  if (body.value !== undefined) record.value = body.value;
  if (body.properties !== undefined) record.properties = body.properties;
  if (body.requestId !== undefined) record.requestId = body.requestId;
  if (row.enriched !== undefined) record.enriched = row.enriched;
  if (row.only !== undefined) record.only = row.only;
  record.n = row.n;
  record.ref = row.ref;
  return record;
}

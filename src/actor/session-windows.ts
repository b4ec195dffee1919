import { assert } from "../ports/assert.ts";
import type { AggregateOps } from "./aggregate-ops.ts";

/**
 * Session windows of one key and one shape, as Kafka Streams defines SessionWindows
 * (ofInactivityGapWithNoGrace / ofInactivityGapAndGrace; KStreamSessionWindowAggregate).
 *
 * A session is [first event ts, last event ts], inclusive at both ends (a lone event: [t, t]). An
 * event at t joins every open session with end >= t - gap and start <= t + gap (Kafka's
 * findSessions(key, t - gap, t + gap)), merging them when it bridges two: events t1 <= t2 are in
 * one session iff a chain of events links them with steps <= gap (an event exactly gap after the
 * last one extends the session).
 *
 * Identity and revisions: a session is identified by (start, end), Kafka's session-store key. When
 * an event extends a session or merges sessions, Kafka forwards a tombstone for each old key and a
 * record for the new one; add() likewise returns the superseded sessions as `retracted` and the new
 * one as `upserted`, so sinks delete by identity and upsert idempotently. The identity is valid for
 * good: a session only grows while open (a changed span strictly contains the old one), and an open
 * session ends after every closed one, so a retracted or closed (start, end) never comes back. An
 * event inside [start, end] changes no identity: the session is upserted with the next revision and
 * nothing is retracted (Kafka removes and puts back the same key). Revision: 1 when created, +1 per update, and
 * a merged session takes the largest merged revision + 1, so (key, start, end, revision) never
 * repeats.
 *
 * Closing: the watermark is the largest timestamp seen, or passed to close() (idle advance). A
 * session is closed when end + gap + allowedLateness < watermark (Kafka since KAFKA-8289 and
 * KAFKA-12718: windowCloseTime = stream-time - grace - gap; until then an on-time event could
 * still extend it). A closed session is final: no event joins it any more, and it waits in state
 * only until close() returns it. An event joins the open sessions within gap of it; it is late,
 * applied nowhere, when it joins none and t + gap + allowedLateness < watermark (the session it
 * would start is closed already; Kafka drops a record whose merged session ends before
 * windowCloseTime). So an event older than that still extends an open session within gap of it
 * backwards.
 *
 * Closed sessions are invisible to later events, as in Kafka Streams 4.1 (its session store no
 * longer returns a session past its close time, in-memory and RocksDB alike): an event within gap
 * of a closed session, or even inside its span, starts or extends an open session instead of
 * reopening the closed one. Open sessions are disjoint and more than gap apart; a closed session
 * and a later one may be gap or less apart, or overlap. That is the price of final results:
 * reopening would retract a session already emitted as final (the anomaly of apache/beam#18677).
 * Kafka's javadoc example (gap 5: 10, 12, 20, then 16 merges everything into [10, 20]) holds only
 * while [10, 12] is open at stream time 20, i.e. with a grace period of 3 or more.
 *
 * Compared with Kafka Streams 4.1.1 through TopologyTestDriver on random streams
 * (scripts/window-diff.ts), every event's tombstones and upserts are the same, except around an
 * off-by-one of Kafka's: its session store already hides a session that ends at exactly
 * stream time - gap - grace while its processor still accepts events into it, so the next such
 * event overwrites that session there (an event lost); here it joins it.
 *
 * Memory: the open sessions, each an aggregate (no events: sessions never shrink, so merge
 * suffices for min/max and sketches), all ending within gap + allowedLateness of the watermark,
 * plus the closed ones close() has not returned yet. Events must be deduplicated by the caller.
 * Timestamps are integer milliseconds.
 */

export interface Session<A> {
  start: number;
  end: number;
  aggregate: A;
  revision: number;
}

export interface SessionAddResult<A> {
  /** The session now holding the event (a copy); null when the event is late. */
  upserted: Session<A> | null;
  /** Sessions superseded by `upserted` (their last state), by start: delete them by (start, end). */
  retracted: Session<A>[];
  late: boolean;
}

/** A checkpoint: plain JSON when A is (see AggregateOps). */
export interface SessionWindowsState<A> {
  version: 1;
  gapMs: number;
  allowedLatenessMs: number;
  watermark: number | null;
  /** Open sessions, by start. */
  sessions: Session<A>[];
  /** Closed sessions close() has not returned yet. */
  closed: Session<A>[];
}

export class SessionWindows<A, V> {
  private watermarkMs: number | null = null;
  /** Open sessions, by start: disjoint and more than gap apart. */
  private sessions: Session<A>[] = [];
  /** Closed sessions close() has not returned yet. */
  private closed: Session<A>[] = [];

  constructor(
    readonly gapMs: number,
    readonly allowedLatenessMs: number,
    private readonly ops: AggregateOps<A, V>,
  ) {
    assert(Number.isSafeInteger(gapMs) && gapMs > 0, "a session gap is a positive whole number of ms");
    assert(Number.isSafeInteger(allowedLatenessMs) && allowedLatenessMs >= 0, "allowed lateness is a whole number of ms >= 0");
  }

  get watermark(): number | null {
    return this.watermarkMs;
  }

  /** `copy` false: the upserted session is the store's own (read it before the next call; never change it). */
  add(ts: number, value: V, copy = true): SessionAddResult<A> {
    assert(Number.isSafeInteger(ts), "event timestamps are whole ms");
    this.advance(ts);
    // The open sessions within gap of ts: consecutive, at most one on each side of it.
    const first = this.sessions.findIndex((s) => s.end + this.gapMs >= ts);
    let count = 0;
    while (first >= 0 && first + count < this.sessions.length && this.sessions[first + count]!.start - this.gapMs <= ts) count++;
    assert(count <= 2, "an event joins at most the sessions just before and after it");
    if (count === 0 && ts + this.gapMs + this.allowedLatenessMs < this.watermarkMs!) return { upserted: null, retracted: [], late: true };
    const joined = this.sessions.slice(first, first + count);
    let session: Session<A>;
    let retracted: Session<A>[] = [];
    if (count === 0) {
      session = { start: ts, end: ts, aggregate: this.ops.add(this.ops.empty(), value), revision: 1 };
      this.sessions.splice(this.insertionIndex(ts), 0, session);
    } else if (count === 1 && joined[0]!.start <= ts && ts <= joined[0]!.end) {
      session = joined[0]!;
      session.aggregate = this.ops.add(session.aggregate, value);
      session.revision++;
    } else {
      retracted = joined.map((s) => this.copy(s));
      session = this.merge(joined, ts, value);
      this.sessions.splice(first, count, session);
    }
    this.checkNeighbours(this.sessions.indexOf(session));
    return { upserted: copy ? this.copy(session) : session, retracted, late: false };
  }

  /** Advances the watermark to `watermark` if later; returns the sessions now closed (final), by end. */
  close(watermark: number): Session<A>[] {
    assert(Number.isSafeInteger(watermark), "a watermark is whole ms");
    this.advance(watermark);
    const closed = this.closed;
    this.closed = [];
    return closed.sort((a, b) => a.end - b.end || a.start - b.start);
  }

  /** Open sessions (accepting events), by start (copies). */
  open(): Session<A>[] {
    return this.sessions.map((s) => this.copy(s));
  }

  /** The smallest watermark at which close() returns a session, or null when there is none. */
  nextCloseAt(): number | null {
    if (this.closed.length) return this.watermarkMs;
    // By start and disjoint: the first open session ends first.
    const first = this.sessions[0];
    return first ? first.end + this.gapMs + this.allowedLatenessMs + 1 : null;
  }

  toJSON(): SessionWindowsState<A> {
    return {
      version: 1,
      gapMs: this.gapMs,
      allowedLatenessMs: this.allowedLatenessMs,
      watermark: this.watermarkMs,
      sessions: this.sessions.map((s) => this.copy(s)),
      closed: this.closed.map((s) => this.copy(s)),
    };
  }

  /** Takes ownership of the state's aggregates. */
  static fromJSON<A, V>(state: SessionWindowsState<A>, ops: AggregateOps<A, V>): SessionWindows<A, V> {
    assert(state.version === 1, "session window state version 1");
    const sw = new SessionWindows(state.gapMs, state.allowedLatenessMs, ops);
    sw.watermarkMs = state.watermark;
    const own = ({ start, end, aggregate, revision }: Session<A>) => ({ start, end, aggregate, revision });
    sw.sessions = state.sessions.map(own);
    sw.closed = state.closed.map(own);
    for (let i = 0; i < sw.sessions.length; i++) sw.checkNeighbours(i);
    assert(sw.closed.every((s) => sw.isClosed(s)), "closed sessions are past their close time");
    assert(sw.watermarkMs !== null || sw.sessions.length + sw.closed.length === 0, "state without a watermark is empty");
    return sw;
  }

  /** Moves the watermark to `to` if later, and the sessions that closed with it to `closed` (the next close() returns them). */
  advance(to: number): void {
    if (this.watermarkMs !== null && to <= this.watermarkMs) return;
    this.watermarkMs = to;
    // Open sessions are by start and disjoint, so by end too: the closed ones come first.
    let n = 0;
    while (n < this.sessions.length && this.isClosed(this.sessions[n]!)) n++;
    if (n) this.closed.push(...this.sessions.splice(0, n));
  }

  private isClosed(s: Session<A>): boolean {
    return this.watermarkMs !== null && s.end + this.gapMs + this.allowedLatenessMs < this.watermarkMs;
  }

  private merge(joined: Session<A>[], ts: number, value: V): Session<A> {
    let aggregate = joined[0]!.aggregate;
    for (const s of joined.slice(1)) aggregate = this.ops.merge(aggregate, s.aggregate);
    return {
      start: Math.min(ts, joined[0]!.start),
      end: Math.max(ts, joined.at(-1)!.end),
      aggregate: this.ops.add(aggregate, value),
      revision: Math.max(...joined.map((s) => s.revision)) + 1,
    };
  }

  private insertionIndex(ts: number): number {
    const i = this.sessions.findIndex((s) => s.start > ts);
    return i < 0 ? this.sessions.length : i;
  }

  private checkNeighbours(i: number): void {
    const s = this.sessions[i];
    assert(s !== undefined && s.start <= s.end && !this.isClosed(s), "an open session spans start..end");
    const before = this.sessions[i - 1];
    const after = this.sessions[i + 1];
    assert(!before || s.start - before.end > this.gapMs, "open sessions are more than gap apart, by start");
    assert(!after || after.start - s.end > this.gapMs, "open sessions are more than gap apart, by start");
  }

  private copy(s: Session<A>): Session<A> {
    return { start: s.start, end: s.end, aggregate: this.ops.clone(s.aggregate), revision: s.revision };
  }
}

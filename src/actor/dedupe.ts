import { assert } from "../ports/assert.ts";

/**
 * IDs recorded together; persisted as one storage row, so a batch costs one write, not one per
 * event. `runs` keep each ID's arrival time compactly: consecutive IDs that arrived at the same
 * time share one [time, count] pair, so an ID expires exactly `horizon` after it arrived, however
 * the host groups commits into segments (the process host drains only at checkpoints).
 */
interface Segment {
  seq: number;
  ids: string[];
  /** Flat [at, count, at, count, ...]: a pair array per run would cost 48 bytes more each (issue 14). */
  runs: number[];
  /** IDs of this segment still in the index (eviction takes them from the front). */
  live: number;
  /** Where in `runs` the run of the oldest live ID starts, and how many IDs the runs before it hold (advances only). */
  run: number;
  before: number;
}

export interface DedupeLimits {
  horizon: number;
  maxIds: number;
}

/** A segment as persisted. Rows before version 2 held {at, ids}: every ID at the segment's newest time. */
type SegmentRow = { runs: Array<[number, number]>; ids: string[] } | { at: number; ids: string[] };

const SEGMENT_MAX_IDS = 8_192;
/**
 * Up to this many IDs an index finds them by scanning its segments, with no Set: a Set's first entry
 * costs ~250 bytes, and most keys' actors hold a handful of IDs (issue 14: memory per idle actor).
 */
const SMALL_IDS = 8;
const SEGMENT_MAX_CHARS = 512 * 1024;
/**
 * A drained segment smaller than this stays open: the next drain rewrites it with what was added
 * since, instead of a new row. Keys that get an event or two per checkpoint (or per request, on a
 * Durable Object) would otherwise leave a row per event: rows to read at every load, and a delete
 * per event once they expire. A fuller segment is closed, so a drain never rewrites much.
 */
const SEGMENT_KEEP_OPEN_IDS = 64;
const SEGMENT_KEEP_OPEN_CHARS = 4 * 1024;

/**
 * Bounded, durable set of seen event IDs. Oldest expire first: by age (horizon) and by count (maxIds).
 * Set insertion order equals segment order, because an ID is never re-added while it is present.
 */
export class DedupeIndex {
  /** The live IDs, once there are more than SMALL_IDS of them (it goes again when they all expire). */
  private seen: Set<string> | undefined;
  private count = 0;
  private readonly segments: Segment[] = [];
  private head = 0;
  private nextSeq = 0;
  private open: Segment | undefined;
  private openChars = 0;
  /** Segments to write and to delete at the next drain; undefined while none (an empty Set or array costs an actor memory). */
  private dirty: Set<Segment> | undefined;
  private dropped: number[] | undefined;
  /**
   * At most the arrival time of the oldest live ID (adding never makes it older; evicting only makes
   * it newer): while it is within the horizon and the count within its bound, expire() has nothing to
   * do and reads no segment. Most calls are such, and the segments are cold memory (issue 14).
   */
  private oldestBound = Infinity;

  constructor(private readonly limits: DedupeLimits) {}

  get size(): number {
    return this.count;
  }

  has(id: string): boolean {
    return this.seen ? this.seen.has(id) : this.scan(id);
  }

  /** Whether a live ID is `id`, by looking at each (the index is small). */
  private scan(id: string): boolean {
    for (let s = this.head; s < this.segments.length; s++) {
      const { ids, live } = this.segments[s]!;
      for (let i = ids.length - live; i < ids.length; i++) if (ids[i] === id) return true;
    }
    return false;
  }

  /** Counts an ID just appended to a segment; past SMALL_IDS the Set takes over from scanning. */
  private track(id: string, at: number): void {
    this.count++;
    if (at < this.oldestBound) this.oldestBound = at;
    if (this.seen) this.seen.add(id);
    else if (this.count > SMALL_IDS) {
      this.seen = new Set();
      for (let s = this.head; s < this.segments.length; s++) {
        const { ids, live } = this.segments[s]!;
        for (let i = ids.length - live; i < ids.length; i++) this.seen.add(ids[i]!);
      }
    }
  }

  /** Records `id` unless it is already known; returns whether it was new. One hash operation (or a short scan). */
  addIfNew(id: string, at: number): boolean {
    const size = this.count;
    const seen = this.seen;
    if (seen) {
      if (seen.add(id).size === size) return false;
    } else if (this.scan(id)) return false;
    let seg = this.open;
    if (!seg || seg.ids.length >= SEGMENT_MAX_IDS || this.openChars >= SEGMENT_MAX_CHARS) {
      seg = { seq: this.nextSeq++, ids: [], runs: [], live: 0, run: 0, before: 0 };
      this.segments.push(seg);
      this.open = seg;
      this.openChars = 0;
      (this.dirty ??= new Set()).add(seg);
    } else if (!this.dirty?.has(seg)) (this.dirty ??= new Set()).add(seg); // kept open by the last drain
    seg.ids.push(id);
    seg.live++;
    if (seen) {
      this.count++;
      if (at < this.oldestBound) this.oldestBound = at;
    } else this.track(id, at);
    const last = seg.runs.length - 2;
    if (last >= 0 && seg.runs[last] === at) seg.runs[last + 1]!++;
    else seg.runs.push(at, 1);
    this.openChars += id.length + 3;
    this.expire(at);
    return true;
  }

  add(id: string, at: number): void {
    assert(this.addIfNew(id, at), "dedupe: an ID present in the index is never added again");
  }

  /** Evicts IDs older than the horizon and beyond the count bound, oldest first. */
  expire(now: number): void {
    const cutoff = now - this.limits.horizon;
    if (this.count <= this.limits.maxIds && this.oldestBound >= cutoff) return;
    while (this.head < this.segments.length && (this.count > this.limits.maxIds || this.oldestAt() < cutoff)) this.evictOldest();
    if (this.head > 0 && this.head === this.segments.length) {
      // All expired: an idle actor keeps none of its old segments.
      this.segments.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.segments.length) {
      this.segments.splice(0, this.head);
      this.head = 0;
    }
    this.oldestBound = this.oldestAt();
  }

  /** Arrival time of the oldest ID still in the index (Infinity when empty). Amortized O(1). */
  private oldestAt(): number {
    const seg = this.segments[this.head];
    if (!seg || seg.live === 0) return Infinity;
    const oldest = seg.ids.length - seg.live;
    while (seg.before + seg.runs[seg.run + 1]! <= oldest) {
      seg.before += seg.runs[seg.run + 1]!;
      seg.run += 2;
    }
    return seg.runs[seg.run]!;
  }

  private evictOldest(): void {
    const seg = this.segments[this.head]!;
    const id = seg.ids[seg.ids.length - seg.live]!;
    if (this.seen) assert(this.seen.delete(id), "dedupe: eviction follows insertion order");
    if (--this.count === 0) this.seen = undefined;
    if (--seg.live > 0) return;
    this.head++;
    this.dirty?.delete(seg);
    if (this.open === seg) this.open = undefined;
    (this.dropped ??= []).push(seg.seq);
  }

  /** Rows to write since the last call: changed segments, and segments that fully expired. */
  drain(): { puts: Array<[number, string]>; deletes: number[] } {
    const puts: Array<[number, string]> = [];
    for (const seg of this.dirty ?? []) puts.push([seg.seq, JSON.stringify({ runs: runPairs(seg.runs), ids: seg.ids } satisfies SegmentRow)]);
    this.dirty = undefined;
    const deletes = this.dropped ?? [];
    this.dropped = undefined;
    if (this.open && (this.open.ids.length >= SEGMENT_KEEP_OPEN_IDS || this.openChars >= SEGMENT_KEEP_OPEN_CHARS)) this.open = undefined;
    return { puts, deletes };
  }

  /**
   * Rebuilds the index from persisted segments (in seq order) by adding their IDs again, each run at
   * its own time, under the same expiry rules: the result is the index that wrote them, at `now`.
   */
  static restore(limits: DedupeLimits, rows: Array<[number, string]>, now: number): DedupeIndex {
    const index = new DedupeIndex(limits);
    for (const [seq, text] of rows) {
      const row = JSON.parse(text) as SegmentRow;
      const runs = "runs" in row ? row.runs : [[row.at, row.ids.length] as [number, number]];
      const seg: Segment = { seq, ids: [], runs: [], live: 0, run: 0, before: 0 };
      index.segments.push(seg);
      index.nextSeq = seq + 1;
      let i = 0;
      for (const [at, count] of runs) {
        index.expire(at);
        seg.runs.push(at, count);
        for (const end = i + count; i < end; i++) {
          const id = row.ids[i]!;
          // Re-added after it expired: the earlier copy, and everything older, was evicted first.
          while (index.has(id)) index.evictOldest();
          seg.ids.push(id);
          seg.live++;
          index.track(id, at);
          if (index.count > limits.maxIds) index.expire(at);
        }
      }
    }
    index.expire(now);
    index.dirty = undefined;
    // The newest segment takes the next IDs if it is small, as it would have had the index stayed in memory.
    const last = index.segments.at(-1);
    if (last && last.live > 0) {
      index.openChars = last.ids.reduce((n, id) => n + id.length + 3, 0);
      if (last.ids.length < SEGMENT_KEEP_OPEN_IDS && index.openChars < SEGMENT_KEEP_OPEN_CHARS) index.open = last;
    }
    return index;
  }
}

function runPairs(runs: readonly number[]): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < runs.length; i += 2) pairs.push([runs[i]!, runs[i + 1]!]);
  return pairs;
}

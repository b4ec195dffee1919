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
  runs: Array<[at: number, count: number]>;
  /** IDs of this segment still in the index (eviction takes them from the front). */
  live: number;
  /** The run the oldest live ID belongs to, and how many IDs the runs before it hold (advances only). */
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
const SEGMENT_MAX_CHARS = 512 * 1024;

/**
 * Bounded, durable set of seen event IDs. Oldest expire first: by age (horizon) and by count (maxIds).
 * Set insertion order equals segment order, because an ID is never re-added while it is present.
 */
export class DedupeIndex {
  private readonly seen = new Set<string>();
  private readonly segments: Segment[] = [];
  private head = 0;
  private nextSeq = 0;
  private open: Segment | undefined;
  private openChars = 0;
  private readonly dirty = new Set<Segment>();
  private readonly dropped: number[] = [];

  constructor(private readonly limits: DedupeLimits) {}

  get size(): number {
    return this.seen.size;
  }

  has(id: string): boolean {
    return this.seen.has(id);
  }

  /** Records `id` unless it is already known; returns whether it was new. One hash operation. */
  addIfNew(id: string, at: number): boolean {
    const size = this.seen.size;
    if (this.seen.add(id).size === size) return false;
    let seg = this.open;
    if (!seg || seg.ids.length >= SEGMENT_MAX_IDS || this.openChars >= SEGMENT_MAX_CHARS) {
      seg = { seq: this.nextSeq++, ids: [], runs: [], live: 0, run: 0, before: 0 };
      this.segments.push(seg);
      this.open = seg;
      this.openChars = 0;
      // The open segment stays dirty until drain() closes it: appends need not mark it again.
      this.dirty.add(seg);
    }
    seg.ids.push(id);
    seg.live++;
    const run = seg.runs[seg.runs.length - 1];
    if (run && run[0] === at) run[1]++;
    else seg.runs.push([at, 1]);
    this.openChars += id.length + 3;
    if (size + 1 > this.limits.maxIds || this.oldestAt() < at - this.limits.horizon) this.expire(at);
    return true;
  }

  add(id: string, at: number): void {
    assert(this.addIfNew(id, at), "dedupe: an ID present in the index is never added again");
  }

  /** Evicts IDs older than the horizon and beyond the count bound, oldest first. */
  expire(now: number): void {
    const cutoff = now - this.limits.horizon;
    while (this.head < this.segments.length && (this.seen.size > this.limits.maxIds || this.oldestAt() < cutoff)) this.evictOldest();
    if (this.head > 1024 && this.head * 2 > this.segments.length) {
      this.segments.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Arrival time of the oldest ID still in the index (Infinity when empty). Amortized O(1). */
  private oldestAt(): number {
    const seg = this.segments[this.head];
    if (!seg || seg.live === 0) return Infinity;
    const oldest = seg.ids.length - seg.live;
    while (seg.before + seg.runs[seg.run]![1] <= oldest) seg.before += seg.runs[seg.run++]![1];
    return seg.runs[seg.run]![0];
  }

  private evictOldest(): void {
    const seg = this.segments[this.head]!;
    const id = seg.ids[seg.ids.length - seg.live]!;
    assert(this.seen.delete(id), "dedupe: eviction follows insertion order");
    if (--seg.live > 0) return;
    this.head++;
    this.dirty.delete(seg);
    if (this.open === seg) this.open = undefined;
    this.dropped.push(seg.seq);
  }

  /** Rows to write since the last call: changed segments, and segments that fully expired. */
  drain(): { puts: Array<[number, string]>; deletes: number[] } {
    const puts: Array<[number, string]> = [];
    for (const seg of this.dirty) puts.push([seg.seq, JSON.stringify({ runs: seg.runs, ids: seg.ids } satisfies SegmentRow)]);
    this.dirty.clear();
    const deletes = this.dropped.splice(0);
    // A segment written in an earlier commit stays open for appends only until it is drained again.
    this.open = undefined;
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
        seg.runs.push([at, count]);
        for (const end = i + count; i < end; i++) {
          const id = row.ids[i]!;
          // Re-added after it expired: the earlier copy, and everything older, was evicted first.
          while (index.seen.has(id)) index.evictOldest();
          seg.ids.push(id);
          index.seen.add(id);
          seg.live++;
          if (index.seen.size > limits.maxIds) index.expire(at);
        }
      }
    }
    index.expire(now);
    index.dirty.clear();
    return index;
  }
}

import { assert } from "../ports/assert.ts";

/** IDs recorded together; persisted as one storage row, so a batch costs one write, not one per event. */
interface Segment {
  seq: number;
  /** Arrival time of the newest ID in the segment; the whole segment expires together. */
  at: number;
  ids: string[];
  /** IDs of this segment still in the index (eviction takes them from the front). */
  live: number;
}

export interface DedupeLimits {
  horizon: number;
  maxIds: number;
}

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
      seg = { seq: this.nextSeq++, at, ids: [], live: 0 };
      this.segments.push(seg);
      this.open = seg;
      this.openChars = 0;
      this.dirty.add(seg);
    }
    seg.ids.push(id);
    seg.live++;
    if (at > seg.at) seg.at = at;
    this.openChars += id.length + 3;
    if (size + 1 > this.limits.maxIds || this.segments[this.head]!.at < at - this.limits.horizon) this.expire(at);
    return true;
  }

  add(id: string, at: number): void {
    assert(this.addIfNew(id, at), "dedupe: an ID present in the index is never added again");
  }

  /** Evicts IDs older than the horizon and beyond the count bound, oldest first. */
  expire(now: number): void {
    const cutoff = now - this.limits.horizon;
    while (this.head < this.segments.length) {
      const seg = this.segments[this.head]!;
      if (seg.at >= cutoff && this.seen.size <= this.limits.maxIds) break;
      this.evictOldest();
    }
    if (this.head > 1024 && this.head * 2 > this.segments.length) {
      this.segments.splice(0, this.head);
      this.head = 0;
    }
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
    for (const seg of this.dirty) puts.push([seg.seq, JSON.stringify({ at: seg.at, ids: seg.ids })]);
    this.dirty.clear();
    const deletes = this.dropped.splice(0);
    // A segment written in an earlier commit stays open for appends only until it is drained again.
    this.open = undefined;
    return { puts, deletes };
  }

  /** Rebuilds the index from persisted segments (in seq order), replaying the same expiry rules. */
  static restore(limits: DedupeLimits, rows: Array<[number, string]>, now: number): DedupeIndex {
    const index = new DedupeIndex(limits);
    for (const [seq, text] of rows) {
      const { at, ids } = JSON.parse(text) as { at: number; ids: string[] };
      const seg: Segment = { seq, at, ids: [], live: 0 };
      index.segments.push(seg);
      index.nextSeq = seq + 1;
      for (const id of ids) {
        // Re-added after it expired: the earlier copy, and everything older, was evicted first.
        while (index.seen.has(id)) index.evictOldest();
        seg.ids.push(id);
        index.seen.add(id);
        seg.live++;
      }
      index.expire(at);
    }
    index.expire(now);
    index.dirty.clear();
    return index;
  }
}

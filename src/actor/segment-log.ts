import { assert } from "../ports/assert.ts";

/** Entries per segment row: a row stays well under storage's value limits whatever the IDs' length. */
const SEGMENT_MAX_ENTRIES = 256;
/**
 * The newest segment takes a drain's entries (and is rewritten) while it holds fewer than this: a
 * Durable Object drains after every request, and a segment per late event would cost a delete per
 * late event once the log is full, and a thousand rows to read at wake-up.
 */
const SEGMENT_OPEN_ENTRIES = 64;

/**
 * The last `size` entries of an actor's log (its late events, its recent alerts), persisted as
 * append-only segment rows: a checkpoint writes only the entries added since the last one and
 * deletes the segments that rolled out entirely. Each log used to be one row rewritten whole by
 * every checkpoint that changed it: under late-heavy traffic (a device sending hours-old events, a
 * backfill) that serialised up to `size` entries per key per checkpoint and stalled the event loop
 * for 100+ ms (issue 14).
 */
export class SegmentLog<T> {
  /** The newest entries, oldest first; up to `slack` more than `size` between trims. */
  private entries: T[] = [];
  private readonly slack: number;
  /** Entries at the end of `entries` added since the last drain. */
  private unsaved = 0;
  /** Segment rows in storage, oldest first, and how many entries they hold together. */
  private segments: Array<{ seq: number; count: number }> = [];
  private persisted = 0;
  private nextSeq = 0;
  /** Segment rows to delete at the next drain without counting them (replaced by a rewrite). */
  private replaced: number[] | undefined;
  /** The store still has the entries as versions before segments kept them: the next drain replaces them. */
  private legacy = false;

  constructor(private readonly size: number) {
    this.slack = Math.max(16, size >> 3);
  }

  get length(): number {
    return Math.min(this.entries.length, this.size);
  }

  add(entry: T): void {
    this.entries.push(entry);
    this.unsaved++;
    // Trimmed now and then, not at every entry: one splice shifts the whole log.
    if (this.entries.length > this.size + this.slack) this.entries.splice(0, this.entries.length - this.size);
  }

  /** The last `size` entries, oldest first. */
  list(): T[] {
    return this.entries.length > this.size ? this.entries.slice(-this.size) : this.entries;
  }

  /** Something to write or delete: new entries, a legacy row, or segments that rolled out (the size shrank since they were written). */
  get dirty(): boolean {
    const oldest = this.segments[0];
    return this.unsaved > 0 || this.legacy || this.replaced !== undefined || (oldest !== undefined && this.persisted - oldest.count >= this.length);
  }

  /** Rows to write since the last drain: new segments, segments that rolled out, and whether the legacy row goes. */
  drain(): { puts: Array<[number, string]>; deletes: number[]; replacesLegacy: boolean } {
    const visible = this.list();
    const puts: Array<[number, string]> = [];
    let fresh = visible.slice(visible.length - Math.min(this.unsaved, visible.length));
    const last = this.segments.at(-1);
    // The newest segment's entries come right before the fresh ones, if none fell out in between.
    if (fresh.length && last && last.count < SEGMENT_OPEN_ENTRIES && fresh.length + last.count <= visible.length) {
      const take = Math.min(SEGMENT_OPEN_ENTRIES - last.count, fresh.length);
      const from = visible.length - fresh.length - last.count;
      puts.push([last.seq, JSON.stringify(visible.slice(from, from + last.count + take))]);
      last.count += take;
      this.persisted += take;
      fresh = fresh.slice(take);
    }
    for (let i = 0; i < fresh.length; i += SEGMENT_MAX_ENTRIES) {
      const chunk = fresh.slice(i, i + SEGMENT_MAX_ENTRIES);
      const seq = this.nextSeq++;
      puts.push([seq, JSON.stringify(chunk)]);
      this.segments.push({ seq, count: chunk.length });
      this.persisted += chunk.length;
    }
    const deletes = this.replaced ?? [];
    // Storage keeps every visible entry: a segment goes once the ones after it hold them all.
    while (this.segments.length && this.persisted - this.segments[0]!.count >= visible.length) {
      const gone = this.segments.shift()!;
      this.persisted -= gone.count;
      deletes.push(gone.seq);
    }
    assert(this.persisted >= visible.length, "segment log: storage holds every visible entry");
    const replacesLegacy = this.legacy;
    this.unsaved = 0;
    this.replaced = undefined;
    this.legacy = false;
    return { puts, deletes, replacesLegacy };
  }

  /**
   * The log as drain() left it: the entries versions before segments kept (`legacy`, if any) and
   * then the segments' in seq order, the last `size` of them. Legacy entries go to segments at the
   * next drain.
   */
  static restore<T>(size: number, legacy: T[] | undefined, segments: Array<[number, string]>): SegmentLog<T> {
    const log = new SegmentLog<T>(size);
    const entries: T[] = legacy ? [...legacy] : [];
    for (const [seq, text] of segments) {
      const chunk = JSON.parse(text) as T[];
      for (const entry of chunk) entries.push(entry);
      log.segments.push({ seq, count: chunk.length });
      log.persisted += chunk.length;
      log.nextSeq = seq + 1;
    }
    log.entries = size === 0 ? [] : entries.length > size ? entries.slice(-size) : entries;
    if (legacy) {
      // Rewritten as segments of their own: the legacy entries have no segment to be counted in.
      log.legacy = true;
      if (log.segments.length) log.replaced = log.segments.map((s) => s.seq);
      log.segments = [];
      log.persisted = 0;
      log.unsaved = log.entries.length;
    }
    return log;
  }
}

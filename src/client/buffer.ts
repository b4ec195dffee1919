import { KeyflowError } from "./errors.ts";

/**
 * What happens to an event tracked while `maxBufferedEvents` are held (waiting or being sent):
 * - `drop-oldest` (the default): the oldest waiting event is dropped. The newest events are the ones
 *   still inside their windows' allowed lateness; the oldest would mostly arrive late anyway.
 * - `drop-newest`: the new event is dropped (what was tracked first is kept).
 * - `throw`: `track()` throws a KeyflowError with code `buffer_full`; the caller decides.
 * Dropped events are counted in `stats().dropped` and reported to `onError`.
 */
export type OverflowPolicy = "drop-oldest" | "drop-newest" | "throw";

export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ["drop-oldest", "drop-newest", "throw"];

/** A tracked event: its order, ID and JSON encoding (fixed at track(), so later changes to the caller's object do not matter). */
export interface Entry {
  seq: number;
  id: string;
  json: string;
  /** UTF-8 length of `json`. */
  bytes: number;
}

/** The events waiting to be sent, oldest first (in `seq` order), bounded with an overflow policy. */
export class EventBuffer {
  private items: Entry[] = [];
  private head = 0;
  private waitingBytes = 0;
  readonly capacity: number;
  readonly policy: OverflowPolicy;

  constructor(capacity: number, policy: OverflowPolicy) {
    this.capacity = capacity;
    this.policy = policy;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** UTF-8 bytes of the waiting events' JSON. */
  get bytes(): number {
    return this.waitingBytes;
  }

  /** The oldest waiting event's seq, or undefined when none waits. */
  get minSeq(): number | undefined {
    return this.items[this.head]?.seq;
  }

  /**
   * Adds `entry` unless `inFlight` + the waiting events already fill the capacity; then applies the
   * policy. Returns the event that was dropped (the oldest, or `entry` itself), if any.
   */
  offer(entry: Entry, inFlight: number): Entry | undefined {
    if (this.length + inFlight < this.capacity) {
      this.push(entry);
      return undefined;
    }
    if (this.policy === "throw") {
      throw new KeyflowError(0, "buffer_full", `${this.capacity} events are buffered (maxBufferedEvents): the event was not tracked`, {
        details: { capacity: this.capacity },
      });
    }
    if (this.policy === "drop-newest" || this.length === 0) return entry;
    const oldest = this.take(1, Infinity)[0];
    this.push(entry);
    return oldest;
  }

  /** Removes and returns the oldest events: at least one (when any wait), at most `maxEvents` and, past the first, `maxBytes` of JSON. */
  take(maxEvents: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 2;
    while (this.head < this.items.length && out.length < maxEvents) {
      const next = this.items[this.head]!;
      if (out.length > 0 && bytes + next.bytes + 1 > maxBytes) break;
      bytes += next.bytes + 1;
      out.push(next);
      this.head++;
      this.waitingBytes -= next.bytes;
    }
    this.compact();
    return out;
  }

  /** Puts events back (a batch that will go again later), keeping the buffer in seq order. */
  requeue(entries: Entry[]): void {
    if (!entries.length) return;
    const back = [...entries].sort((a, b) => a.seq - b.seq);
    const waiting = this.items.slice(this.head);
    const merged: Entry[] = [];
    let i = 0;
    let j = 0;
    while (i < back.length || j < waiting.length) {
      if (j >= waiting.length || (i < back.length && back[i]!.seq < waiting[j]!.seq)) merged.push(back[i++]!);
      else merged.push(waiting[j++]!);
    }
    for (const e of back) this.waitingBytes += e.bytes;
    this.items = merged;
    this.head = 0;
  }

  private push(entry: Entry): void {
    this.items.push(entry);
    this.waitingBytes += entry.bytes;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** UTF-8 length of a string, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** The JSON array body of a batch. */
export function batchBody(entries: readonly Entry[]): string {
  return `[${entries.map((e) => e.json).join(",")}]`;
}

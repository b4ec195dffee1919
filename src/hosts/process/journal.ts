import type { Event } from "../../actor/event.ts";

/**
 * The self-hosted runtime's write-ahead journal. A group commit writes one row holding the ingests
 * of that turn, instead of rewriting each touched actor's rows; actors are checkpointed into their
 * own rows later, in the background, and journal rows older than every pending actor are dropped.
 * Replaying an entry is calling Actor.ingest again with the same events and arrival time: the actor
 * is deterministic, so this rebuilds exactly the state that was acknowledged.
 */
export interface JournalEntry {
  key: string;
  now: number;
  events: Event[];
}

export const JOURNAL_PREFIX = "j/";
export const journalRow = (seq: number) => `${JOURNAL_PREFIX}${String(seq).padStart(12, "0")}`;

type WireEvent = [id: string, type: string, ts: number, value: number | null, properties: Record<string, unknown> | null, assigned: 0 | 1];
type WireEntry = [key: string, now: number, events: WireEvent[]];

export function encodeJournal(entries: readonly JournalEntry[]): string {
  const wire: WireEntry[] = entries.map(({ key, now, events }) => [
    key,
    now,
    events.map((e): WireEvent => [e.id, e.type, e.ts, e.value ?? null, e.properties ?? null, e.assigned ? 1 : 0]),
  ]);
  return JSON.stringify(wire);
}

export function decodeJournal(text: string): JournalEntry[] {
  return (JSON.parse(text) as WireEntry[]).map(([key, now, events]) => ({
    key,
    now,
    events: events.map(([id, type, ts, value, properties, assigned]) => {
      const event: Event = { id, assigned: assigned === 1, type, key, ts };
      if (value !== null) event.value = value;
      if (properties !== null) event.properties = properties;
      return event;
    }),
  }));
}

/** The durable journal rows not yet dropped, kept in memory so an actor can be rebuilt without reading them back. */
export class RetainedJournal {
  private readonly rows: Array<{ seq: number; entries: JournalEntry[] }> = [];
  /** Entries per key across the retained rows. */
  private readonly perKey = new Map<string, number>();

  append(seq: number, entries: JournalEntry[]): void {
    this.rows.push({ seq, entries });
    for (const { key } of entries) this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
  }

  /** Seqs of the rows dropBefore(seq) would drop. */
  seqsBefore(seq: number): number[] {
    return this.rows.slice(0, this.countBefore(seq)).map((row) => row.seq);
  }

  /** Drops rows with seq < `seq`. */
  dropBefore(seq: number): void {
    for (const row of this.rows.splice(0, this.countBefore(seq))) {
      for (const { key } of row.entries) {
        const left = this.perKey.get(key)! - 1;
        if (left) this.perKey.set(key, left);
        else this.perKey.delete(key);
      }
    }
  }

  private countBefore(seq: number): number {
    let n = 0;
    while (n < this.rows.length && this.rows[n]!.seq < seq) n++;
    return n;
  }

  has(key: string): boolean {
    return this.perKey.has(key);
  }

  /** `key`'s entries in rows after `seq`, oldest first. */
  entriesAfter(key: string, seq: number): Array<{ seq: number; entry: JournalEntry }> {
    const found: Array<{ seq: number; entry: JournalEntry }> = [];
    if (!this.perKey.has(key)) return found;
    for (const row of this.rows) {
      if (row.seq <= seq) continue;
      for (const entry of row.entries) if (entry.key === key) found.push({ seq: row.seq, entry });
    }
    return found;
  }

  keys(): IterableIterator<string> {
    return this.perKey.keys();
  }

  get size(): number {
    return this.rows.length;
  }
}

import type { IngestOutcome } from "../../actor/actor.ts";
import type { Event } from "../../actor/event.ts";
import type { RecordBody, RecordRef } from "../../actor/outbox.ts";
import type { Settlement } from "../../delivery/settle.ts";

/**
 * The process host's write-ahead journal of actor commands. A group commit writes one row holding
 * the commands of that turn, instead of rewriting each touched actor's rows; actors are checkpointed
 * into their own rows later, in the background. Replaying a command is calling the actor again with
 * the same input and time: the actor is deterministic, so this rebuilds exactly what was acknowledged.
 * The journal is also the outbox's store: a record not yet taken by every sink is stored in a
 * checkpoint as a reference to its event here, not as a second copy.
 */
export type Command =
  | { kind: "ingest"; key: string; now: number; events: Event[] }
  | { kind: "tick"; key: string; now: number }
  /** What one delivery batch to `sink` settled, per key: taken up to a position, some dead-lettered. */
  | { kind: "settle"; sink: string; now: number; settlements: Settlement[] }
  /** Dead letters put back in the outbox (an operator's replay). */
  | { kind: "replay"; key: string; now: number; sink?: string; ids?: number[] };

/** A key's part of a journaled command, with its place in the journal (row seq, index in the row). */
export interface JournaledCommand {
  seq: number;
  index: number;
  command: Command;
}

/** A command as it committed: an ingest with what it answered (for the simulator's checker). */
export type CommittedCommand = Command & { outcomes?: IngestOutcome[] };

/** The keys a command changes. */
export function commandKeys(command: Command): string[] {
  return command.kind === "settle" ? command.settlements.map((s) => s.key) : [command.key];
}

/** The part of a command that concerns `keys` (a settle command spans keys), or undefined if none. */
export function commandFor(command: Command, keep: (key: string) => boolean): Command | undefined {
  if (command.kind !== "settle") return keep(command.key) ? command : undefined;
  const settlements = command.settlements.filter((s) => keep(s.key));
  if (settlements.length === command.settlements.length) return command;
  return settlements.length ? { ...command, settlements } : undefined;
}

/** The `from` of a settlement read back from the journal: replayed in order, it starts where the cursor is. */
export const REPLAYED = -1;

/** `requestId` is last and optional: rows written before it was kept have six elements. */
type WireEvent = [id: string, type: string, ts: number, value: number | null, properties: Record<string, unknown> | null, assigned: 0 | 1, requestId?: string];
/** A settlement as journaled: without `from` (replayed in order, a settlement starts at the cursor it was made against). */
type WireSettlement = [key: string, upTo: number, dead?: Array<[n: number, error: string, attempts: number]>];
/** An ingest's events share their request's correlation ID: it is written once, after them (older rows have none). */
type WireCommand =
  | ["i", string, number, WireEvent[], sharedRequestId?: string]
  | ["t", string, number]
  | ["s", string, number, WireSettlement[]]
  | ["r", string, number, string | null, number[] | null];
/** Rows written before commands were journaled held only ingests: [key, now, events]. */
type LegacyEntry = [key: string, now: number, events: WireEvent[]];

/** `withRequestId`: the event's own ID goes with it (the command's events do not all share one). */
function toWireEvent(e: Event, withRequestId: boolean): WireEvent {
  const wire: WireEvent = [e.id, e.type, e.ts, e.value ?? null, e.properties ?? null, e.assigned ? 1 : 0];
  if (withRequestId && e.requestId !== undefined) wire.push(e.requestId);
  return wire;
}

function fromWireEvent(key: string, [id, type, ts, value, properties, assigned, requestId]: WireEvent, sharedRequestId?: string): Event {
  const event: Event = { id, assigned: assigned === 1, type, key, ts };
  if (value !== null) event.value = value;
  if (properties !== null) event.properties = properties;
  const correlation = requestId ?? sharedRequestId;
  if (correlation !== undefined) event.requestId = correlation;
  return event;
}

/** The correlation ID every event shares (one request's events do), if they all do. */
function sharedRequestId(events: readonly Event[]): string | undefined {
  const id = events[0]?.requestId;
  if (id === undefined) return undefined;
  for (let i = 1; i < events.length; i++) if (events[i]!.requestId !== id) return undefined;
  return id;
}

export function encodeJournal(commands: readonly Command[]): string {
  const wire = commands.map((c): WireCommand => {
    switch (c.kind) {
      case "ingest": {
        const shared = sharedRequestId(c.events);
        const events = c.events.map((e) => toWireEvent(e, shared === undefined));
        return shared === undefined ? ["i", c.key, c.now, events] : ["i", c.key, c.now, events, shared];
      }
      case "tick":
        return ["t", c.key, c.now];
      case "settle":
        return [
          "s",
          c.sink,
          c.now,
          c.settlements.map((s): WireSettlement => (s.dead.length ? [s.key, s.upTo, s.dead.map((d) => [d.n, d.error, d.attempts])] : [s.key, s.upTo])),
        ];
      case "replay":
        return ["r", c.key, c.now, c.sink ?? null, c.ids ?? null];
    }
  });
  return JSON.stringify(wire);
}

export function decodeJournal(text: string): Command[] {
  return (JSON.parse(text) as Array<WireCommand | LegacyEntry>).map((w): Command => {
    if (typeof w[1] === "number") {
      const [key, now, events] = w as LegacyEntry;
      return { kind: "ingest", key, now, events: events.map((e) => fromWireEvent(key, e)) };
    }
    const c = w as WireCommand;
    switch (c[0]) {
      case "i":
        return { kind: "ingest", key: c[1], now: c[2], events: c[3].map((e) => fromWireEvent(c[1], e, c[4])) };
      case "t":
        return { kind: "tick", key: c[1], now: c[2] };
      case "s":
        return {
          kind: "settle",
          sink: c[1],
          now: c[2],
          settlements: c[3].map(([key, upTo, dead = []]) => ({ key, from: REPLAYED, upTo, dead: dead.map(([n, error, attempts]) => ({ n, error, attempts })) })),
        };
      case "r": {
        const replay: Command = { kind: "replay", key: c[1], now: c[2] };
        if (c[3] !== null) replay.sink = c[3];
        if (c[4] !== null) replay.ids = c[4];
        return replay;
      }
    }
  });
}

/**
 * The durable journal rows not yet dropped, kept in memory so an actor can be rebuilt without
 * reading them back, and so a record stored as a reference can be resolved.
 */
export class RetainedJournal {
  private readonly rows: Array<{ seq: number; commands: Command[] }> = [];
  private readonly bySeq = new Map<number, Command[]>();
  /** Commands per key across the retained rows. */
  private readonly perKey = new Map<string, number>();

  append(seq: number, commands: Command[]): void {
    this.rows.push({ seq, commands });
    this.bySeq.set(seq, commands);
    for (const command of commands) for (const key of commandKeys(command)) this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
  }

  /** The seqs of the rows dropBefore(seq) would drop. */
  /** Journal rows retained (in memory as in storage). */
  get rowCount(): number {
    return this.rows.length;
  }

  seqsBefore(seq: number): number[] {
    return this.rows.slice(0, this.countBefore(seq)).map((row) => row.seq);
  }

  /** Drops rows with seq < `seq`. */
  dropBefore(seq: number): void {
    const dropped = this.rows.splice(0, this.countBefore(seq));
    for (const row of dropped) {
      this.bySeq.delete(row.seq);
      for (const command of row.commands) {
        for (const key of commandKeys(command)) {
          const left = this.perKey.get(key)! - 1;
          if (left) this.perKey.set(key, left);
          else this.perKey.delete(key);
        }
      }
    }
  }

  private countBefore(seq: number): number {
    let n = 0;
    while (n < this.rows.length && this.rows[n]!.seq < seq) n++;
    return n;
  }

  /** The seq of the oldest retained row. */
  get oldest(): number | undefined {
    return this.rows[0]?.seq;
  }

  /** `key`'s part of each command in rows after `seq`, oldest first, with its place in the journal. */
  commandsAfter(key: string, seq: number): JournaledCommand[] {
    const found: JournaledCommand[] = [];
    if (!this.perKey.has(key)) return found;
    for (const row of this.rows) {
      if (row.seq <= seq) continue;
      row.commands.forEach((command, index) => {
        const mine = commandFor(command, (k) => k === key);
        if (mine) found.push({ seq: row.seq, index, command: mine });
      });
    }
    return found;
  }

  /** Every key's part of each retained command, oldest first: commandsAfter for all keys in one pass (recovery). */
  commandsByKey(): Map<string, JournaledCommand[]> {
    const byKey = new Map<string, JournaledCommand[]>();
    const add = (key: string, entry: JournaledCommand) => {
      const list = byKey.get(key);
      if (list) list.push(entry);
      else byKey.set(key, [entry]);
    };
    for (const { seq, commands } of this.rows) {
      commands.forEach((command, index) => {
        if (command.kind !== "settle") return add(command.key, { seq, index, command });
        const perKey = new Map<string, Settlement[]>();
        for (const s of command.settlements) {
          const list = perKey.get(s.key);
          if (list) list.push(s);
          else perKey.set(s.key, [s]);
        }
        for (const [key, settlements] of perKey) {
          add(key, { seq, index, command: perKey.size === 1 ? command : { ...command, settlements } });
        }
      });
    }
    return byKey;
  }

  /** The event a record reference points at. */
  resolve([seq, index, event]: RecordRef): RecordBody | undefined {
    const command = this.bySeq.get(seq)?.[index];
    if (command?.kind !== "ingest") return undefined;
    const e = command.events[event];
    if (!e) return undefined;
    const body: RecordBody = { key: command.key, id: e.id, type: e.type, ts: e.ts, receivedAt: command.now };
    if (e.value !== undefined) body.value = e.value;
    if (e.properties !== undefined) body.properties = e.properties;
    if (e.requestId !== undefined) body.requestId = e.requestId;
    return body;
  }

  get size(): number {
    return this.rows.length;
  }
}

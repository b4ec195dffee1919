import { assert } from "../ports/assert.ts";

/**
 * Every storage row keyflow writes, named in one place. An actor's own rows are relative to its
 * prefix: the process host keeps many actors in one store (`a/<key>/…`), a Durable Object one (`a/…`).
 * Numbered rows are zero-padded so that key order is number order.
 */
const padded = (n: number) => String(n).padStart(12, "0");

/** The rows of one actor, relative to its prefix. */
export const ACTOR_ROW = {
  /** Scalars, open windows, outbox cursors and counters: rewritten by each checkpoint that changes them. */
  state: "state",
  /** The bounded log of late events, as one row rewritten whole (versions before late segments: read, then deleted). */
  late: "late",
  latePrefix: "lt/",
  /** A segment of the late log: the late events one checkpoint added (see SegmentLog). */
  lateSegment: (seq: number) => `lt/${padded(seq)}`,
  /** Detection rules' state (keyflow.config.json); before alert segments, the recent alerts too. */
  alerts: "alerts",
  alertPrefix: "al/",
  /** A segment of the recent alerts: the alerts one checkpoint added (see SegmentLog). */
  alertSegment: (seq: number) => `al/${padded(seq)}`,
  /** Each type's own windows (keyflow.config.json: sliding, session, other sizes), rewritten when they change. */
  typed: "typed",
  dedupePrefix: "dd/",
  /** A segment of dedupe IDs: one row per commit that added IDs, not one per ID. */
  dedupe: (seq: number) => `dd/${padded(seq)}`,
  closedPrefix: "cw/",
  closed: (seq: number) => `cw/${padded(seq)}`,
  outboxPrefix: "ob/",
  /** Outbox records no sink had taken when the segment was written (one row per checkpoint). */
  outboxSegment: (seq: number) => `ob/${padded(seq)}`,
  /** A sink's cursor, as rows written before cursors moved into the state row (read, then deleted). */
  legacyCursorPrefix: "oc/",
  deadLetterPrefix: "dl/",
  deadLetter: (id: number) => `dl/${padded(id)}`,
  /** Process host, before progress rows: the journal seq this actor's rows include everything up to. */
  journalMark: "journal",
} as const;

/** The rows of the process host: one store for every actor of the process. */
export const PROCESS_ROW = {
  actorsPrefix: "a/",
  actor: (key: string) => `a/${encodeKey(key)}/`,
  /**
   * Per actor, small and kept apart from its other rows so that many of them share a page: the
   * journal seq its rows include everything up to, and its outbox cursors and counters. A
   * checkpoint after deliveries alone rewrites only this row.
   */
  progressPrefix: "p/",
  progress: (key: string) => `p/${encodeKey(key)}`,
  /** One row per group commit: the commands of that turn. */
  journalPrefix: "j/",
  journal: (seq: number) => `j/${padded(seq)}`,
  /** The highest journal seq handed out, so seqs keep growing across restarts. */
  journalSeq: "m/journal-seq",
  /** When a checkpointed actor next needs a tick (a restarted host finds its quiet keys here). */
  schedulePrefix: "s/",
  schedule: (key: string) => `s/${encodeKey(key)}`,
  /** Checkpointed actors with records some sink has not taken (a restarted host resumes their delivery). */
  backlogPrefix: "b/",
  backlog: (key: string) => `b/${encodeKey(key)}`,
  /** Per tenant: its keys and the bytes of its actors' rows, for quotas (tenant names need no encoding). */
  usagePrefix: "u/",
  usage: (tenant: string) => `u/${tenant}`,
  /** Present once the usage rows are kept (a store from before them is counted once, at start). */
  usageVersion: "m/usage-version",
} as const;

/** The rows of a Durable Object: its one actor's rows, and the key itself (an alarm carries no name). */
export const DURABLE_ROW = {
  actorPrefix: "a/",
  key: "key",
} as const;

/**
 * A key as a row name segment: percent-encoded, so "/" never splits it and one key's prefix never
 * holds another's. Keys are well-formed Unicode (validation refuses lone surrogates).
 */
export function encodeKey(key: string): string {
  try {
    return encodeURIComponent(key);
  } catch {
    assert(false, "actor keys are well-formed Unicode");
  }
}

export function decodeKey(segment: string): string {
  return decodeURIComponent(segment);
}

/** The number of a numbered row, from its name relative to the actor (`dd/000000000012` -> 12). */
export function rowNumber(name: string, prefix: string): number {
  return Number(name.slice(prefix.length));
}

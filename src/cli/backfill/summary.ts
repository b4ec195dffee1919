import type { Rejection } from "./batch.ts";
import type { Position } from "./checkpoint.ts";
import type { SendResult } from "./sender.ts";

/** Rejections kept for the summary: the lowest lines, so that "the first 20" is exact. */
const KEEP_REJECTIONS = 1_000;

/** Running totals of a backfill. */
export class Tally {
  accepted = 0;
  duplicates = 0;
  late = 0;
  assigned = 0;
  retries = 0;
  rejectedCount = 0;
  private rejections: Rejection[] = [];

  add(r: SendResult): void {
    this.accepted += r.accepted;
    this.duplicates += r.duplicates;
    this.late += r.late;
    this.assigned += r.assigned;
    this.retries += r.retries;
    this.rejectedCount += r.rejected.length;
    this.rejections.push(...r.rejected);
    if (this.rejections.length > 2 * KEEP_REJECTIONS) this.trim();
  }

  get events(): number {
    return this.accepted + this.duplicates + this.rejectedCount;
  }

  private trim(): void {
    this.rejections.sort((a, b) => a.line - b.line);
    this.rejections.length = Math.min(this.rejections.length, KEEP_REJECTIONS);
  }

  /** The lowest-numbered rejections, by line. */
  firstRejections(n: number): Rejection[] {
    this.trim();
    return this.rejections.slice(0, n);
  }
}

export interface Summary {
  file: string;
  format: string;
  complete: boolean;
  /** Why the run stopped early, when it did. */
  error?: string;
  events: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  late: number;
  /** Events the server had to give an id (not idempotent on a re-run). */
  server_assigned_ids: number;
  retried_requests: number;
  elapsed_ms: number;
  events_per_s: number;
  resumed_from?: Position;
  /** Where a resumed run would start (absent once complete: the checkpoint is removed). */
  checkpoint?: Position & { path: string };
  rejections: Rejection[];
}

export function buildSummary(base: Pick<Summary, "file" | "format" | "complete" | "error" | "resumed_from" | "checkpoint">, tally: Tally, elapsedMs: number, listed: number): Summary {
  return {
    ...base,
    events: tally.events,
    accepted: tally.accepted,
    duplicates: tally.duplicates,
    rejected: tally.rejectedCount,
    late: tally.late,
    server_assigned_ids: tally.assigned,
    retried_requests: tally.retries,
    elapsed_ms: Math.round(elapsedMs),
    events_per_s: elapsedMs > 0 ? Math.round((tally.events * 1000) / elapsedMs) : 0,
    rejections: tally.firstRejections(listed),
  };
}

const n = (v: number) => v.toLocaleString("en-US");

/** The summary for people. */
export function formatSummary(s: Summary): string {
  const lines = [
    `${s.complete ? "backfill complete" : "backfill stopped"}: ${s.file} (${s.format})${s.error ? `\n  error: ${s.error}` : ""}`,
    `  events      ${n(s.events)} in ${(s.elapsed_ms / 1000).toFixed(1)} s (${n(s.events_per_s)} events/s)`,
    `  accepted    ${n(s.accepted)}${s.late ? ` (${n(s.late)} late)` : ""}`,
    `  duplicates  ${n(s.duplicates)}`,
    `  rejected    ${n(s.rejected)}`,
    `  retried requests ${n(s.retried_requests)}`,
  ];
  if (s.server_assigned_ids) lines.push(`  ${n(s.server_assigned_ids)} events had no top-level event_id and got one from the server: a re-run would count them again`);
  if (s.resumed_from) lines.push(`  resumed from line ${n(s.resumed_from.line)} (byte ${n(s.resumed_from.offset)})`);
  if (s.checkpoint) lines.push(`  checkpoint ${s.checkpoint.path}: line ${n(s.checkpoint.line)} (byte ${n(s.checkpoint.offset)}); run the same command again to resume`);
  if (s.rejections.length) {
    lines.push(`  rejected lines (first ${s.rejections.length} of ${n(s.rejected)}):`);
    for (const r of s.rejections) lines.push(`    line ${r.line}: ${r.code}: ${r.message}`);
  }
  return `${lines.join("\n")}\n`;
}

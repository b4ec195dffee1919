import type { KeyflowMetrics } from "../../metrics/keyflow.ts";

/**
 * What a Durable Object did that Cloudflare bills: requests it received (RPC calls, fetches, alarm
 * invocations), alarms it set (1 row written each) and SQLite rows written and read (as its cursors
 * report them: index rows included). Counted in memory; a reporter drains the counts as deltas.
 */
export interface DoUsage {
  calls: number;
  alarms: number;
  alarmsSet: number;
  rowsWritten: number;
  rowsRead: number;
}

export function noUsage(): DoUsage {
  return { calls: 0, alarms: 0, alarmsSet: 0, rowsWritten: 0, rowsRead: 0 };
}

export class UsageMeter {
  private counts = noUsage();

  /** An RPC method call or fetch received. */
  call(): void {
    this.counts.calls++;
  }

  /** An alarm invocation. */
  alarm(): void {
    this.counts.alarms++;
  }

  /** An alarm set or deleted (a row written each). */
  alarmSet(): void {
    this.counts.alarmsSet++;
  }

  /** One statement's rows, as its cursor reports them (every statement: no allocation here). */
  rows(written: number, read: number): void {
    this.counts.rowsWritten += written;
    this.counts.rowsRead += read;
  }

  /** The counts since the last drain, or none if nothing was counted. */
  drain(): DoUsage | undefined {
    const counts = this.counts;
    if (Object.values(counts).every((n) => n === 0)) return undefined;
    this.counts = noUsage();
    return counts;
  }
}

/** Adds a Durable Object's usage to the keyflow_do_* counters of `object`'s class ("key", "metrics"). */
export function countUsage(counters: ReturnType<KeyflowMetrics["durableObjectMetrics"]>, object: string, usage: DoUsage): void {
  for (const field of ["calls", "alarms", "alarmsSet", "rowsWritten", "rowsRead"] as const) {
    if (usage[field] > 0) counters[field].inc([object], usage[field]);
  }
}

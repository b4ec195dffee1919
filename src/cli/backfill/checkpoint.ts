import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { Clock } from "./clock.ts";

/** Where a run stands: every line before `line` (byte `offset` of the uncompressed source) was acknowledged. */
export interface Position {
  offset: number;
  line: number;
}

export interface CheckpointData extends Position {
  version: 1;
  format: string;
  /** The source file's size and hash of its first 64 KiB (absent for stdin). */
  size?: number;
  head?: string;
  /** A CSV file's header, which a resumed run no longer reads. */
  header?: string[];
  updatedAt: string;
}

/**
 * The acknowledged prefix of a run whose batches finish out of order: the position moves past a
 * batch only once it and every batch issued before it were acknowledged.
 */
export class AckTracker {
  private readonly ends = new Map<number, Position>();
  private readonly done = new Set<number>();
  private next: number;
  position: Position;

  /** `firstSeq`: the sequence number of the first batch (they are numbered without gaps). */
  constructor(start: Position, firstSeq = 0) {
    this.position = { ...start };
    this.next = firstSeq;
  }

  /** Batch `seq` covers the source up to `end`. */
  issue(seq: number, end: Position): void {
    this.ends.set(seq, { ...end });
  }

  /** Returns whether the position moved. */
  ack(seq: number): boolean {
    this.done.add(seq);
    let moved = false;
    while (this.done.has(this.next) && this.ends.has(this.next)) {
      this.position = this.ends.get(this.next)!;
      this.ends.delete(this.next);
      this.done.delete(this.next);
      this.next++;
      moved = true;
    }
    return moved;
  }

  /** Batches issued but not yet part of the acknowledged prefix. */
  get outstanding(): number {
    return this.ends.size;
  }
}

export class CheckpointError extends Error {}

/** A checkpoint file, written whole (temp file + rename) at most every `intervalMs`, and at the end. */
export class CheckpointFile {
  private lastWriteMs = -Infinity;

  constructor(
    readonly path: string,
    private readonly clock: Clock,
    private readonly intervalMs: number,
  ) {}

  load(): CheckpointData | undefined {
    if (!existsSync(this.path)) return undefined;
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(this.path, "utf8"));
    } catch (error) {
      throw new CheckpointError(`checkpoint ${this.path} is not valid JSON (${(error as Error).message}): delete it or pass --restart`);
    }
    const d = data as Partial<CheckpointData> | null;
    const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
    if (!d || d.version !== 1 || !count(d.offset) || !count(d.line) || typeof d.format !== "string") {
      throw new CheckpointError(`checkpoint ${this.path} is not a keyflow backfill checkpoint: delete it or pass --restart`);
    }
    return d as CheckpointData;
  }

  /** Writes when `force` or when the interval has passed; returns whether it wrote. */
  save(data: Omit<CheckpointData, "version" | "updatedAt">, force = false): boolean {
    const now = this.clock.now();
    if (!force && now - this.lastWriteMs < this.intervalMs) return false;
    this.lastWriteMs = now;
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ version: 1, ...data, updatedAt: new Date().toISOString() })}\n`);
    renameSync(tmp, this.path);
    return true;
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}

/** One line (record) the backfill could not send, or that the server refused. */
export interface Rejection {
  /** The line of the source it starts on (for a JSON array: the element's position, from 1). */
  line: number;
  code: string;
  message: string;
}

/** Events bound for one request, with what the checkpoint needs once it is acknowledged. */
export interface Batch {
  seq: number;
  /** NDJSON body pieces, each a whole line ending in "\n". */
  parts: Uint8Array[];
  bytes: number;
  /** The source line of each event, in body order: the server's `rejected[].index` indexes this. */
  lines: number[];
  /** Rejected before sending (malformed CSV, over-long line, not an object). */
  rejected: Rejection[];
  /** Position after the batch's last record: uncompressed byte offset and line (JSON arrays: elements). */
  endOffset: number;
  endLine: number;
}

const NEWLINE = new Uint8Array([10]);

/** Collects lines into batches of at most `maxEvents` events and `maxBytes` body bytes. */
export class BatchBuilder {
  private seq = 0;
  private current: Batch;

  constructor(
    readonly maxEvents: number,
    readonly maxBytes: number,
  ) {
    this.current = this.fresh();
  }

  private fresh(): Batch {
    return { seq: this.seq++, parts: [], bytes: 0, lines: [], rejected: [], endOffset: 0, endLine: 0 };
  }

  /** Whether adding `bytes` more would overflow the batch (so it must be taken first). */
  wouldOverflow(bytes: number): boolean {
    const b = this.current;
    return b.lines.length > 0 && (b.lines.length >= this.maxEvents || b.bytes + bytes > this.maxBytes);
  }

  /** Adds one event line; `withNewline` when `data` does not end in "\n" yet. */
  add(data: Uint8Array, line: number, withNewline: boolean): void {
    const b = this.current;
    b.parts.push(data);
    b.bytes += data.byteLength;
    if (withNewline) {
      b.parts.push(NEWLINE);
      b.bytes += 1;
    }
    b.lines.push(line);
  }

  reject(rejection: Rejection): void {
    this.current.rejected.push(rejection);
  }

  /** Marks how far the source has been consumed into the current batch. */
  advance(endOffset: number, endLine: number): void {
    this.current.endOffset = endOffset;
    this.current.endLine = endLine;
  }

  get full(): boolean {
    return this.current.lines.length >= this.maxEvents || this.current.bytes >= this.maxBytes;
  }

  get empty(): boolean {
    return this.current.lines.length === 0 && this.current.rejected.length === 0;
  }

  /** Hands out the current batch and starts the next one at the same position. */
  take(): Batch {
    const done = this.current;
    this.current = this.fresh();
    this.current.endOffset = done.endOffset;
    this.current.endLine = done.endLine;
    return done;
  }
}

/** The whole body of a batch. */
export function batchBody(batch: Batch): Uint8Array {
  return Buffer.concat(batch.parts, batch.bytes);
}

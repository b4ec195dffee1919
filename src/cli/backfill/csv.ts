// RFC 4180 CSV, written here rather than taken from a library: the project adds no packages, and the
// backfill needs each record's byte offset (for the checkpoint) and starting line (for the summary),
// which a byte-level splitter gives directly.
import type { Batch } from "./batch.ts";
import { derivedId } from "./ids.ts";
import type { ReadOptions } from "./ndjson.ts";

export class CsvHeaderError extends Error {}

const enum State {
  FieldStart,
  Unquoted,
  Quoted,
  QuoteInQuoted,
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;

/** Record boundaries over bytes; quotes open a quoted field only at a field's start, as RFC 4180 has it. */
class Splitter {
  state = State.FieldStart;
  /** Line breaks inside quoted fields of the record being scanned. */
  innerLines = 0;

  /** The index of the "\n" ending the record, or -1 when `buf` ends first. */
  scan(buf: Uint8Array, from: number): number {
    let state = this.state;
    for (let i = from; i < buf.length; i++) {
      const b = buf[i]!;
      switch (state) {
        case State.FieldStart:
          if (b === QUOTE) state = State.Quoted;
          else if (b === LF) return this.end(i);
          else if (b !== COMMA) state = State.Unquoted;
          break;
        case State.Unquoted:
          if (b === COMMA) state = State.FieldStart;
          else if (b === LF) return this.end(i);
          break;
        case State.Quoted:
          if (b === QUOTE) state = State.QuoteInQuoted;
          else if (b === LF) this.innerLines++;
          break;
        case State.QuoteInQuoted:
          if (b === QUOTE) state = State.Quoted;
          else if (b === COMMA) state = State.FieldStart;
          else if (b === LF) return this.end(i);
          else state = State.Unquoted; // text after a closing quote: the field parser reports it
          break;
      }
    }
    this.state = state;
    return -1;
  }

  private end(i: number): number {
    this.state = State.FieldStart;
    return i;
  }
}

/** The fields of one record (without its line break), or what makes it malformed. */
export function parseCsvRecord(text: string): { fields: string[] } | { error: string } {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text.charCodeAt(i) === QUOTE) {
      let value = "";
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) return { error: "a quoted field is not closed" };
        value += text.slice(j, q);
        if (text.charCodeAt(q + 1) === QUOTE) {
          value += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      fields.push(value);
      if (i === text.length) return { fields };
      if (text.charCodeAt(i) !== COMMA) return { error: `text after a closing quote in field ${fields.length}` };
      i++;
    } else {
      const comma = text.indexOf(",", i);
      const value = comma < 0 ? text.slice(i) : text.slice(i, comma);
      if (value.includes('"')) return { error: `a quote inside unquoted field ${fields.length + 1} (quote the field and double the quote)` };
      fields.push(value);
      if (comma < 0) return { fields };
      i = comma + 1;
    }
  }
}

const FIELDS = new Set(["event_id", "event_type", "key", "user_id", "timestamp", "value"]);
const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

/** Checks a header row: each column an event field or properties.<name>, none twice. */
export function checkHeader(columns: string[]): void {
  const seen = new Set<string>();
  for (const column of columns) {
    if (!FIELDS.has(column) && !(column.startsWith("properties.") && column.length > "properties.".length)) {
      throw new CsvHeaderError(
        `CSV column ${JSON.stringify(column)} is not an event field: use event_id, event_type, key, user_id, timestamp, value or properties.<name>`,
      );
    }
    if (seen.has(column)) throw new CsvHeaderError(`CSV column ${JSON.stringify(column)} appears twice`);
    seen.add(column);
  }
  if (!seen.has("event_type")) throw new CsvHeaderError("the CSV header has no event_type column");
}

/** One record as an event: empty cells are left out; timestamp and value are numbers when they read as one. */
export function csvEvent(columns: string[], fields: string[], line: number, recordText: string): string {
  const event: Record<string, unknown> = Object.create(null);
  let properties: Record<string, unknown> | undefined;
  columns.forEach((column, n) => {
    const cell = fields[n]!;
    if (cell === "") return;
    if (column.startsWith("properties.")) {
      properties ??= Object.create(null) as Record<string, unknown>;
      properties[column.slice("properties.".length)] = cell;
    } else if ((column === "timestamp" || column === "value") && NUMBER.test(cell)) event[column] = Number(cell);
    else event[column] = cell;
  });
  if (properties) event.properties = properties;
  if (event.event_id === undefined) event.event_id = derivedId(line, recordText);
  return JSON.stringify(event);
}

/**
 * CSV records into batches. The first record is the header unless `header` comes from a checkpoint.
 * A malformed record (bad quoting, wrong field count) is a rejection with the line it starts on.
 */
export async function* csvBatches(
  chunks: AsyncIterable<Uint8Array>,
  opts: ReadOptions & { header?: string[]; onHeader: (columns: string[]) => void },
): AsyncGenerator<Batch> {
  const { builder, maxLineBytes } = opts;
  const splitter = new Splitter();
  let columns = opts.header;
  let line = opts.startLine;
  let carry: Buffer | undefined;
  let carryOffset = opts.startOffset;
  let skipping = false;
  /** The line an over-long record (being skipped) starts on. */
  let skipLine = 0;
  let first = opts.startOffset === 0;

  function* record(buf: Buffer, start: number, end: number, endOffset: number, lines: number): Generator<Batch> {
    const startLine = line + 1;
    line += lines;
    let contentEnd = end;
    if (contentEnd > start && buf[contentEnd - 1] === 13) contentEnd--;
    const text = buf.toString("utf8", start, contentEnd);
    if (text !== "") {
      const parsed = parseCsvRecord(text);
      if (!columns) {
        if ("error" in parsed) throw new CsvHeaderError(`the CSV header is malformed: ${parsed.error}`);
        checkHeader(parsed.fields);
        columns = parsed.fields;
        opts.onHeader(columns);
      } else if ("error" in parsed) builder.reject({ line: startLine, code: "malformed_csv", message: parsed.error });
      else if (parsed.fields.length !== columns.length) {
        builder.reject({ line: startLine, code: "malformed_csv", message: `expected ${columns.length} fields, got ${parsed.fields.length}` });
      } else {
        const data = Buffer.from(csvEvent(columns, parsed.fields, startLine, text));
        if (builder.wouldOverflow(data.byteLength + 1)) yield builder.take();
        builder.add(data, startLine, true);
      }
    }
    builder.advance(endOffset, line);
    if (builder.full) yield builder.take();
  }

  for await (const chunk of chunks) {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let base = carryOffset;
    let pos = 0;
    let scanFrom = 0;
    if (carry) {
      scanFrom = carry.length;
      buf = Buffer.concat([carry, buf]);
      base -= carry.length;
      carry = undefined;
    }
    if (first && buf.length >= 3) {
      first = false;
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) pos = scanFrom = 3;
    }
    for (;;) {
      const nl = splitter.scan(buf, scanFrom);
      if (nl < 0) break;
      const lines = splitter.innerLines + 1;
      splitter.innerLines = 0;
      if (skipping) {
        skipping = false;
        line += lines;
        builder.reject({ line: skipLine, code: "line_too_long", message: `the record is longer than ${maxLineBytes} bytes` });
        builder.advance(base + nl + 1, line);
      } else yield* record(buf, pos, nl, base + nl + 1, lines);
      pos = scanFrom = nl + 1;
    }
    if (pos > 0) first = false; // the BOM check waits for 3 bytes only while nothing was consumed
    if (!skipping && buf.length - pos > maxLineBytes) {
      skipping = true;
      skipLine = line + 1;
    } else if (!skipping) carry = pos < buf.length ? buf.subarray(pos) : undefined;
    carryOffset = base + buf.length;
  }
  if (skipping) {
    line += splitter.innerLines + 1;
    builder.reject({ line: skipLine, code: "line_too_long", message: `the record is longer than ${maxLineBytes} bytes` });
    builder.advance(carryOffset, line);
  } else if (carry) {
    if (splitter.state === State.Quoted) {
      const startLine = line + 1;
      line += splitter.innerLines + 1;
      builder.reject({ line: startLine, code: "malformed_csv", message: "a quoted field is not closed at the end of the file" });
      builder.advance(carryOffset, line);
    } else yield* record(carry, 0, carry.length, carryOffset, splitter.innerLines + 1);
  }
  if (!builder.empty) yield builder.take();
}

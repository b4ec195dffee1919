import type { Batch, BatchBuilder } from "./batch.ts";
import { derivedId } from "./ids.ts";

const EVENT_ID = Buffer.from('"event_id"');
const LF = 10;
const OPEN_BRACE = 0x7b;

export interface ReadOptions {
  /** Uncompressed byte offset of the first chunk, and lines before it (resume). */
  startOffset: number;
  startLine: number;
  builder: BatchBuilder;
  /** A line longer than this is rejected, and skipped without being held in memory. */
  maxLineBytes: number;
}

type Prepared = { data: Uint8Array; newline: boolean } | { code: string; message: string } | null;

/**
 * NDJSON lines into batches, sending each line's original bytes: no parse and re-stringify unless a
 * line has no "event_id" at all (then it gets a derived one, see ids.ts). Blank lines are skipped as
 * the server skips them, so the server's batch index maps onto `Batch.lines`; a line that does not
 * start with "{" is rejected here, since the server would skip a Unicode-blank one and shift indexes.
 */
export async function* ndjsonBatches(chunks: AsyncIterable<Uint8Array>, opts: ReadOptions): AsyncGenerator<Batch> {
  const { builder, maxLineBytes } = opts;
  let line = opts.startLine;
  let carry: Buffer | undefined;
  let carryOffset = opts.startOffset;
  let skipping = false;
  let first = opts.startOffset === 0;

  const prepare = (buf: Buffer, start: number, contentEnd: number, end: number, cache: { idAt: number }): Prepared => {
    let i = start;
    while (i < contentEnd) {
      const b = buf[i]!;
      if (b !== 32 && b !== 9 && b !== 13) break;
      i++;
    }
    if (i === contentEnd) return null;
    if (contentEnd - start > maxLineBytes) return { code: "line_too_long", message: `the line is longer than ${maxLineBytes} bytes` };
    if (buf[i] !== OPEN_BRACE) {
      if (!buf.toString("utf8", start, contentEnd).trim()) return null;
      return { code: "malformed_json", message: "the line does not hold a JSON object" };
    }
    if (cache.idAt < i) {
      const found = buf.indexOf(EVENT_ID, i);
      cache.idAt = found < 0 ? Infinity : found;
    }
    if (cache.idAt < contentEnd) return { data: buf.subarray(start, end), newline: end === contentEnd };
    const patched = withDerivedId(buf.subarray(start, contentEnd), line);
    if (patched === undefined) return { data: buf.subarray(start, end), newline: end === contentEnd };
    return { data: Buffer.from(patched), newline: true };
  };

  function* take(p: Prepared): Generator<Batch> {
    if (p === null) return;
    if ("code" in p) return void builder.reject({ line, code: p.code, message: p.message });
    if (builder.wouldOverflow(p.data.byteLength + 1)) yield builder.take();
    builder.add(p.data, line, p.newline);
  }

  for await (const chunk of chunks) {
    // carryOffset: the source offset where this chunk starts; carry: the unfinished line before it.
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let base = carryOffset;
    let pos = 0;
    if (skipping) {
      const nl = buf.indexOf(LF);
      if (nl < 0) {
        carryOffset += buf.length;
        continue;
      }
      skipping = false;
      builder.reject({ line, code: "line_too_long", message: `the line is longer than ${maxLineBytes} bytes` });
      pos = nl + 1;
      builder.advance(base + pos, line);
    } else if (carry) {
      buf = Buffer.concat([carry, buf]);
      base -= carry.length;
      carry = undefined;
    }
    if (first && buf.length >= 3) {
      first = false;
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) pos = 3; // a UTF-8 byte order mark
    }
    const cache = { idAt: -1 };
    for (;;) {
      const nl = buf.indexOf(LF, pos);
      if (nl < 0) break;
      line++;
      const contentEnd = nl > pos && buf[nl - 1] === 13 ? nl - 1 : nl;
      yield* take(prepare(buf, pos, contentEnd, nl + 1, cache));
      pos = nl + 1;
      builder.advance(base + pos, line);
      if (builder.full) yield builder.take();
    }
    if (pos > 0) first = false; // the BOM check waits for 3 bytes only while nothing was consumed
    const rest = buf.length - pos;
    if (rest > maxLineBytes) {
      skipping = true;
      line++;
      carryOffset = base + buf.length;
    } else {
      carry = rest ? buf.subarray(pos) : undefined;
      carryOffset = base + buf.length;
    }
  }
  if (skipping) {
    builder.reject({ line, code: "line_too_long", message: `the line is longer than ${maxLineBytes} bytes` });
    builder.advance(carryOffset, line);
  } else if (carry) {
    line++;
    const end = carry.length;
    yield* take(prepare(carry, 0, end, end, { idAt: -1 }));
    builder.advance(carryOffset, line);
  }
  if (!builder.empty) yield builder.take();
}

/** The line with a derived event_id when it is a JSON object without one; undefined to send it as it is. */
function withDerivedId(content: Uint8Array, line: number): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString("utf8"));
  } catch {
    return undefined; // the server rejects it as malformed_json, with its own message
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const event = value as Record<string, unknown>;
  if (event.event_id !== undefined && event.event_id !== null) return undefined;
  return JSON.stringify({ event_id: derivedId(line, content), ...event });
}

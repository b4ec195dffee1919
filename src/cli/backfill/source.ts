import { createReadStream, openSync, readSync, closeSync, statSync } from "node:fs";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { createHash } from "node:crypto";

const CHUNK_BYTES = 1 << 20;
/** How much of the start of a file identifies it in a checkpoint. */
const HEAD_BYTES = 64 * 1024;

export interface Source {
  /** Uncompressed bytes from `startOffset` on. */
  chunks: AsyncIterable<Uint8Array>;
  gzip: boolean;
  /** Size of the file as stored (compressed size for gzip); undefined for stdin. */
  totalBytes?: number;
  /** Bytes of the file (as stored) read so far, including any skipped to resume. */
  readBytes(): number;
}

export const isGzip = (head: Uint8Array) => head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;

/** Size and a hash of the first 64 KiB: what a checkpoint checks before it is trusted. */
export function fileIdentity(path: string): { size: number; head: string } {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    const n = readSync(fd, buf, 0, HEAD_BYTES, 0);
    return { size: statSync(path).size, head: createHash("sha256").update(buf.subarray(0, n)).digest("hex") };
  } finally {
    closeSync(fd);
  }
}

function firstBytes(path: string): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(2);
    const n = readSync(fd, buf, 0, 2, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Drops the first `n` bytes of a stream (resuming a stream that cannot seek: gzip, stdin). */
export async function* skipBytes(chunks: AsyncIterable<Uint8Array>, n: number): AsyncGenerator<Uint8Array> {
  let left = n;
  for await (const chunk of chunks) {
    if (left >= chunk.byteLength) {
      left -= chunk.byteLength;
      continue;
    }
    yield left ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

async function* counted(stream: AsyncIterable<Uint8Array>, count: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) {
    count(chunk.byteLength);
    yield chunk;
  }
}

function gunzip(chunks: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return Readable.from(chunks).pipe(createGunzip({ chunkSize: CHUNK_BYTES }));
}

/** A file (or stdin for "-"), gunzipped when it starts with gzip's magic bytes, positioned at `startOffset`. */
export async function openSource(path: string, stdin: NodeJS.ReadableStream, startOffset: number): Promise<Source> {
  let read = 0;
  const count = (n: number) => void (read += n);
  if (path !== "-") {
    const gzip = isGzip(firstBytes(path));
    const totalBytes = statSync(path).size;
    if (!gzip) {
      read = startOffset;
      const stream = createReadStream(path, { start: startOffset, highWaterMark: CHUNK_BYTES });
      return { chunks: counted(stream, count), gzip, totalBytes, readBytes: () => read };
    }
    const raw = counted(createReadStream(path, { highWaterMark: CHUNK_BYTES }), count);
    return { chunks: skipBytes(gunzip(raw), startOffset), gzip, totalBytes, readBytes: () => read };
  }
  const iterator = (stdin as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]();
  const first = await iterator.next();
  const head = first.done ? new Uint8Array(0) : toBytes(first.value);
  async function* all(): AsyncGenerator<Uint8Array> {
    if (head.byteLength) yield head;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield toBytes(next.value);
    }
  }
  const gzip = isGzip(head);
  const raw = counted(all(), count);
  return { chunks: skipBytes(gzip ? gunzip(raw) : raw, startOffset), gzip, readBytes: () => read };
}

const toBytes = (chunk: Uint8Array | string): Uint8Array => (typeof chunk === "string" ? Buffer.from(chunk) : chunk);

import type { Batch } from "./batch.ts";
import { derivedId } from "./ids.ts";
import type { ReadOptions } from "./ndjson.ts";

/** A JSON array is read whole (a streaming parser is more code than this format is worth): NDJSON is for big files. */
export const MAX_JSON_ARRAY_BYTES = 256 * 1024 * 1024;

export class JsonArrayError extends Error {}

/**
 * The elements of a JSON array into batches; an element's "line" is its position (from 1), and the
 * checkpoint counts elements (`startLine` of them are skipped on resume). Objects without event_id
 * get a derived one; anything else is sent as it is and the server says what is wrong with it.
 */
export async function* jsonArrayBatches(chunks: AsyncIterable<Uint8Array>, opts: ReadOptions & { maxBytes?: number }): AsyncGenerator<Batch> {
  const maxBytes = opts.maxBytes ?? MAX_JSON_ARRAY_BYTES;
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of chunks) {
    bytes += chunk.byteLength;
    if (bytes > maxBytes) throw new JsonArrayError(`the JSON array is larger than ${maxBytes} bytes: convert it to NDJSON (one event per line), which is streamed`);
    parts.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(parts, bytes).toString("utf8"));
  } catch (error) {
    throw new JsonArrayError(`the file is not valid JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(value)) throw new JsonArrayError("the file holds JSON but not an array: use --format ndjson for one event per line");
  const { builder } = opts;
  for (let n = opts.startLine; n < value.length; n++) {
    const element: unknown = value[n];
    const line = n + 1;
    let text = JSON.stringify(element) ?? "null";
    if (typeof element === "object" && element !== null && !Array.isArray(element)) {
      const event = element as Record<string, unknown>;
      if (event.event_id === undefined || event.event_id === null) text = JSON.stringify({ event_id: derivedId(line, text), ...event });
    }
    const data = Buffer.from(text);
    if (builder.wouldOverflow(data.byteLength + 1)) yield builder.take();
    builder.add(data, line, true);
    builder.advance(0, line);
    if (builder.full) yield builder.take();
  }
  if (!builder.empty) yield builder.take();
}

import { describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { BatchBuilder, batchBody, type Batch } from "../../src/cli/backfill/batch.ts";
import { ndjsonBatches } from "../../src/cli/backfill/ndjson.ts";
import { checkHeader, csvBatches, CsvHeaderError, parseCsvRecord } from "../../src/cli/backfill/csv.ts";
import { jsonArrayBatches, JsonArrayError } from "../../src/cli/backfill/json-array.ts";
import { openSource } from "../../src/cli/backfill/source.ts";
import { derivedId } from "../../src/cli/backfill/ids.ts";

/** `text` as chunks of `size` bytes: every reader must give the same answer however the input is cut. */
async function* chunked(text: string | Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const bytes = typeof text === "string" ? Buffer.from(text) : text;
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(batches: AsyncGenerator<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of batches) out.push(b);
  return out;
}

/** Every event line sent (decoded), with its source line, and every local rejection. */
function flatten(batches: Batch[]) {
  const events: Array<{ line: number; text: string }> = [];
  for (const b of batches) {
    const texts = Buffer.from(batchBody(b)).toString("utf8").split("\n");
    expect(texts.pop()).toBe(""); // every event line ends in \n
    expect(texts.length).toBe(b.lines.length);
    texts.forEach((text, i) => events.push({ line: b.lines[i]!, text }));
  }
  return { events, rejected: batches.flatMap((b) => b.rejected), last: batches.at(-1) };
}

const ndjson = (text: string, chunk: number, batch = 1000, start = { startOffset: 0, startLine: 0 }, maxLineBytes = 1 << 20) =>
  collect(ndjsonBatches(chunked(text, chunk), { ...start, builder: new BatchBuilder(batch, 1 << 20), maxLineBytes }));

describe("NDJSON reader", () => {
  const text = '{"event_id":"a","event_type":"t","key":"k"}\r\n\n   \r\n{"event_id":"b","event_type":"t","key":"k"}\n{"event_id":"c","event_type":"t","key":"k"}';

  for (const chunk of [1, 3, 7, 1000]) {
    test(`CRLF, blank lines and a last line without a newline (chunks of ${chunk} bytes)`, async () => {
      const { events, rejected, last } = flatten(await ndjson(text, chunk));
      expect(events.map((e) => e.line)).toEqual([1, 4, 5]);
      // The original bytes are sent: CRLF stays (JSON allows \r as whitespace), the last line gets its \n.
      expect(events[0]!.text).toBe('{"event_id":"a","event_type":"t","key":"k"}\r');
      expect(events[2]!.text).toBe('{"event_id":"c","event_type":"t","key":"k"}');
      expect(rejected).toEqual([]);
      expect(last!.endOffset).toBe(Buffer.byteLength(text));
      expect(last!.endLine).toBe(5);
    });
  }

  test("batches hold at most batch-size events and end on line boundaries that resume exactly", async () => {
    const lines = Array.from({ length: 10 }, (_, i) => `{"event_id":"e${i}","event_type":"t","key":"k"}`);
    const all = `${lines.join("\n")}\n`;
    const batches = await ndjson(all, 5, 3);
    expect(batches.map((b) => b.lines)).toEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]);
    // Resuming at the second batch's end reads exactly lines 7..10.
    const cut = batches[1]!;
    const resumed = flatten(await ndjson(all.slice(cut.endOffset), 4, 3, { startOffset: cut.endOffset, startLine: cut.endLine }));
    expect(resumed.events.map((e) => e.line)).toEqual([7, 8, 9, 10]);
    expect(resumed.events.map((e) => e.text)).toEqual(lines.slice(6));
    expect(resumed.last!.endOffset).toBe(Buffer.byteLength(all));
  });

  test("a line without event_id gets a deterministic derived one; other lines are sent untouched", async () => {
    const text = '{"event_type":"t","key":"k","value":1}\n{"event_type":"t","key":"k","event_id":"mine"}\n';
    const { events } = flatten(await ndjson(text, 8));
    const first = JSON.parse(events[0]!.text);
    expect(first).toEqual({ event_id: derivedId(1, '{"event_type":"t","key":"k","value":1}'), event_type: "t", key: "k", value: 1 });
    expect(first.event_id).toMatch(/^bf-1-[0-9a-f]{24}$/);
    expect(events[1]!.text).toBe('{"event_type":"t","key":"k","event_id":"mine"}');
    // Same line, same number: same id on a re-run; same content on another line: another id.
    expect(derivedId(1, "x")).toBe(derivedId(1, "x"));
    expect(derivedId(2, "x")).not.toBe(derivedId(1, "x"));
  });

  test("hostile lines: malformed JSON goes to the server as it is, a non-object line and an over-long line are rejected here", async () => {
    const long = `{"event_id":"${"x".repeat(300)}"}`;
    const text = `{"event_id":"a"\n[1,2]\n\u00a0\n${long}\n{"event_type":"t","key":"k","event_id":"z"}\n`;
    for (const chunk of [2, 64, 4096]) {
      const { events, rejected } = flatten(await ndjson(text, chunk, 1000, { startOffset: 0, startLine: 0 }, 100));
      expect(events.map((e) => e.line)).toEqual([1, 5]);
      expect(events[0]!.text).toBe('{"event_id":"a"');
      // Line 3 is a no-break space alone: blank to the server too, so skipped, not rejected.
      expect(rejected).toEqual([
        { line: 2, code: "malformed_json", message: "the line does not hold a JSON object" },
        { line: 4, code: "line_too_long", message: "the line is longer than 100 bytes" },
      ]);
    }
  });

  test("a byte order mark at the start is dropped", async () => {
    const { events } = flatten(await ndjson('\ufeff{"event_id":"a"}\n', 1));
    expect(events).toEqual([{ line: 1, text: '{"event_id":"a"}' }]);
  });
});

const csv = (text: string, chunk: number, batch = 1000, header?: string[], maxLineBytes = 1 << 20) => {
  let seen: string[] | undefined;
  return collect(
    csvBatches(chunked(text, chunk), {
      startOffset: 0, startLine: 0, builder: new BatchBuilder(batch, 1 << 20), maxLineBytes, header, onHeader: (c) => void (seen = c),
    }),
  ).then((batches) => ({ ...flatten(batches), header: seen }));
};

describe("CSV reader (RFC 4180)", () => {
  test("fields: quotes, escaped quotes, commas and line breaks inside quotes, empty fields", () => {
    expect(parseCsvRecord('a,"b,c","say ""hi""",,"line\r\nbreak"')).toEqual({ fields: ["a", "b,c", 'say "hi"', "", "line\r\nbreak"] });
    expect(parseCsvRecord('""')).toEqual({ fields: [""] });
    expect(parseCsvRecord("a,")).toEqual({ fields: ["a", ""] });
    expect(parseCsvRecord('"open')).toEqual({ error: "a quoted field is not closed" });
    expect(parseCsvRecord('"a"b')).toEqual({ error: "text after a closing quote in field 1" });
    expect(parseCsvRecord('a"b')).toEqual({ error: 'a quote inside unquoted field 1 (quote the field and double the quote)' });
  });

  const file =
    'event_id,event_type,key,timestamp,value,properties.note\r\n' +
    'e1,purchase,u1,1700000000000,12.5,"plain"\r\n' +
    'e2,purchase,u2,2026-01-01T00:00:00Z,3,"two\r\nlines, ""quoted"""\r\n' +
    'e3,purchase,u3,,,\r\n' +
    'e4,purchase\r\n' +
    'e5,purchase,u5,1,x"y,1,\r\n' +
    ',purchase,u6,5,abc,z';

  for (const chunk of [1, 5, 4096]) {
    test(`header mapping, types, multi-line records and malformed rows (chunks of ${chunk} bytes)`, async () => {
      const { events, rejected, header, last } = await csv(file, chunk);
      expect(header).toEqual(["event_id", "event_type", "key", "timestamp", "value", "properties.note"]);
      expect(events.map((e) => e.line)).toEqual([2, 3, 5, 8]);
      const parsed = events.map((e) => JSON.parse(e.text));
      expect(parsed[0]).toEqual({ event_id: "e1", event_type: "purchase", key: "u1", timestamp: 1700000000000, value: 12.5, properties: { note: "plain" } });
      expect(parsed[1]).toEqual({ event_id: "e2", event_type: "purchase", key: "u2", timestamp: "2026-01-01T00:00:00Z", value: 3, properties: { note: 'two\r\nlines, "quoted"' } });
      expect(parsed[2]).toEqual({ event_id: "e3", event_type: "purchase", key: "u3" });
      // No event_id: a derived one. A value that is not a number stays text: the server rejects it by name.
      expect(parsed[3]).toEqual({ event_id: derivedId(8, ",purchase,u6,5,abc,z"), event_type: "purchase", key: "u6", timestamp: 5, value: "abc", properties: { note: "z" } });
      expect(rejected).toEqual([
        { line: 6, code: "malformed_csv", message: "expected 6 fields, got 2" },
        { line: 7, code: "malformed_csv", message: "a quote inside unquoted field 5 (quote the field and double the quote)" },
      ]);
      expect(last!.endLine).toBe(8);
      expect(last!.endOffset).toBe(Buffer.byteLength(file));
    });
  }

  test("an unclosed quote at the end of the file is a rejected record, not a crash", async () => {
    const { events, rejected } = await csv('event_type,key\nt,k\nt,"never\nclosed', 3);
    expect(events.map((e) => e.line)).toEqual([2]);
    expect(rejected).toEqual([{ line: 3, code: "malformed_csv", message: "a quoted field is not closed at the end of the file" }]);
  });

  test("an over-long record is rejected and skipped; the next record still parses", async () => {
    const text = `event_type,key\nt,"${"y".repeat(500)}\n${"z".repeat(200)}"\nt,k2\n`;
    const { events, rejected } = await csv(text, 16, 1000, undefined, 100);
    expect(rejected).toEqual([{ line: 2, code: "line_too_long", message: "the record is longer than 100 bytes" }]);
    expect(events.map((e) => [e.line, JSON.parse(e.text).key])).toEqual([[4, "k2"]]);
  });

  test("a header naming something that is not an event field is refused before anything is sent", async () => {
    expect(() => checkHeader(["event_type", "user"])).toThrow(CsvHeaderError);
    expect(() => checkHeader(["event_type", "key", "key"])).toThrow("appears twice");
    expect(() => checkHeader(["key"])).toThrow("no event_type column");
    await expect(csv("event_type,__proto__\nt,x\n", 4)).rejects.toThrow(CsvHeaderError);
    // properties.__proto__ is data: a null-prototype object carries it to the server, which refuses it by name.
    const { events } = await csv("event_type,key,properties.__proto__\nt,k,x\n", 4);
    expect(events[0]!.text).toBe('{"event_type":"t","key":"k","properties":{"__proto__":"x"},"event_id":"bf-2-' + derivedId(2, "t,k,x").slice(-24) + '"}');
  });

  test("a resumed run takes the header from the checkpoint", async () => {
    const { events } = await csv("t,k9\n", 2, 1000, ["event_type", "key"]);
    expect(JSON.parse(events[0]!.text)).toMatchObject({ event_type: "t", key: "k9" });
  });
});

describe("JSON array reader (whole file, size-capped)", () => {
  const read = (text: string, startLine = 0, maxBytes?: number) =>
    collect(jsonArrayBatches(chunked(text, 3), { startOffset: 0, startLine, builder: new BatchBuilder(2, 1 << 20), maxLineBytes: 1 << 20, maxBytes })).then(flatten);

  test("elements in batches, numbered from 1; objects without event_id get one; resume skips counted elements", async () => {
    const text = '[{"event_id":"a","event_type":"t","key":"k"}, {"event_type":"t","key":"k"}, 7]';
    const { events } = await read(text);
    expect(events.map((e) => e.line)).toEqual([1, 2, 3]);
    expect(JSON.parse(events[1]!.text).event_id).toBe(derivedId(2, '{"event_type":"t","key":"k"}'));
    expect(events[2]!.text).toBe("7");
    expect((await read(text, 2)).events.map((e) => e.line)).toEqual([3]);
  });

  test("not JSON, not an array, or over the cap: an error naming the problem", async () => {
    await expect(read("[{")).rejects.toThrow(JsonArrayError);
    await expect(read('{"event_type":"t"}')).rejects.toThrow("not an array");
    await expect(read("[1,2,3]", 0, 4)).rejects.toThrow("larger than 4 bytes");
  });
});

describe("sources", () => {
  test("gzip is detected by its magic bytes (file and stdin) and a resume offset counts uncompressed bytes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyflow-bf-src-"));
    try {
      const text = Array.from({ length: 2000 }, (_, i) => `{"event_id":"g${i}"}`).join("\n");
      const path = join(dir, "events.data"); // no .gz extension: detected from the bytes
      writeFileSync(path, gzipSync(text));
      const all = async (chunks: AsyncIterable<Uint8Array>) => {
        const parts: Uint8Array[] = [];
        for await (const c of chunks) parts.push(c);
        return Buffer.concat(parts).toString("utf8");
      };
      const whole = await openSource(path, process.stdin, 0);
      expect(whole.gzip).toBe(true);
      expect(await all(whole.chunks)).toBe(text);
      expect(whole.readBytes()).toBe(whole.totalBytes!);
      expect(await all((await openSource(path, process.stdin, 1000)).chunks)).toBe(text.slice(1000));
      const stdin = Readable.from([gzipSync(text)]);
      const piped = await openSource("-", stdin, 10);
      expect(piped.gzip).toBe(true);
      expect(await all(piped.chunks)).toBe(text.slice(10));
      const plain = join(dir, "events.ndjson");
      writeFileSync(plain, text);
      expect(await all((await openSource(plain, process.stdin, 25)).chunks)).toBe(text.slice(25));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

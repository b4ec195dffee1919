import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { PassThrough, Readable } from "node:stream";
import { backfill, parseBackfillArgs, runBackfill, type BackfillOptions, type Summary } from "../../src/cli/backfill/index.ts";
import { TEST_KEY_LINES, TEST_KEYS } from "../support/api-keys.ts";
import { BIN } from "../support/process.ts";
import { BUN_SERVER, processTarget, ROOT, tempDir } from "../support/targets.ts";

// A real Bun host with API keys; the backfill talks to it through its production code path.
const server = processTarget(BUN_SERVER, { KEYFLOW_API_KEYS: TEST_KEY_LINES, KEYFLOW_LOG_LEVEL: "warn" });
const dir = tempDir("backfill-it");
beforeAll(() => server.start());
afterAll(async () => {
  await server.stop();
  dir.remove();
});

const sink = () => {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (c) => (text += c));
  return { stream, text: () => text };
};

async function run(argv: string[]): Promise<{ code: number; summary: Summary; stdout: string; stderr: string }> {
  const out = sink();
  const err = sink();
  const options = parseBackfillArgs([...argv, "--url", server.url, "--api-key", TEST_KEYS.all, "--no-progress"], {}) as BackfillOptions;
  let summary: Summary | undefined;
  const code = await backfill(options, { stdout: out.stream, stderr: err.stream, stdin: Readable.from([]), onSummary: (s) => (summary = s) });
  return { code, summary: summary!, stdout: out.text(), stderr: err.text() };
}

async function totals(key: string): Promise<{ events: number; duplicates: number }> {
  const res = await server.fetch(`/v1/actors/${encodeURIComponent(key)}`, { headers: { authorization: `Bearer ${TEST_KEYS.all}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { totals: { events: number; duplicates: number } }).totals;
}

const event = (id: string | undefined, key: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ ...(id === undefined ? {} : { event_id: id }), event_type: "purchase", key, value: 1, ...extra });

describe("keyflow backfill against a Bun host", () => {
  test("a file with malformed lines and duplicate ids: exact summary, and the server holds each distinct event once", async () => {
    const lines: string[] = [];
    for (let i = 0; i < 250; i++) lines.push(event(`m${i}`, `bf-a-${i % 5}`));
    lines.splice(10, 0, '{"event_id":"broken",'); // line 11: malformed JSON
    lines.splice(20, 0, event("m3", "bf-a-3")); // line 21: a duplicate id
    lines.splice(30, 0, JSON.stringify({ event_id: "no-type", key: "bf-a-0" })); // line 31: no event_type
    lines.splice(40, 0, "", "   "); // lines 41-42: blank
    lines.push(event(undefined, "bf-a-9")); // line 256: no id, gets a derived one
    lines.push(event("m7", "bf-a-2")); // line 257: a duplicate id
    const path = join(dir.path, "events.jsonl");
    writeFileSync(path, lines.join("\r\n"));

    const first = await run([path, "--batch-size", "40", "--concurrency", "3"]);
    expect(first.summary).toMatchObject({ complete: true, accepted: 251, duplicates: 2, rejected: 2, events: 255, retried_requests: 0, server_assigned_ids: 0 });
    expect(first.summary.rejections.map((r) => [r.line, r.code])).toEqual([[11, "malformed_json"], [31, "invalid_event"]]);
    expect(first.summary.rejections[0]!.message).toStartWith("malformed JSON: "); // not the server's line within the request
    expect(first.summary.rejections[1]!.message).toContain("event_type");
    expect(first.code).toBe(1);
    expect(first.stdout).toContain("line 11: malformed_json");
    for (let k = 0; k < 5; k++) expect((await totals(`bf-a-${k}`)).events).toBe(50);
    expect((await totals("bf-a-9")).events).toBe(1);
    expect(existsSync(`${path}.keyflow-checkpoint`)).toBe(false); // a complete run removes its checkpoint

    // The same file again: every event a duplicate (the derived id too), nothing counted twice.
    const again = await run([path, "--json"]);
    expect(again.summary).toMatchObject({ accepted: 0, duplicates: 253, rejected: 2 });
    expect(JSON.parse(again.stdout)).toMatchObject({ accepted: 0, duplicates: 253, rejected: 2 });
    expect((await totals("bf-a-9")).events).toBe(1);
  });

  test("gzip CSV and a JSON array land like NDJSON", async () => {
    const csv = ["event_id,event_type,key,value,properties.sku", ...Array.from({ length: 30 }, (_, i) => `c${i},purchase,bf-csv,${i},"s,${i}"`)].join("\r\n");
    const csvPath = join(dir.path, "events.csv.gz");
    writeFileSync(csvPath, gzipSync(csv));
    expect((await run([csvPath])).summary).toMatchObject({ complete: true, accepted: 30, rejected: 0 });
    expect((await totals("bf-csv")).events).toBe(30);
    const jsonPath = join(dir.path, "events.json");
    writeFileSync(jsonPath, JSON.stringify(Array.from({ length: 12 }, (_, i) => ({ event_id: `j${i}`, event_type: "view", key: "bf-json" }))));
    const r = await run([jsonPath, "--batch-size", "5"]);
    expect(r.summary).toMatchObject({ complete: true, accepted: 12, rejected: 0 });
    expect(r.code).toBe(0);
  });

  test("stopped by a signal after some batches (gzip CSV), resumed: nothing re-sent, nothing missing", async () => {
    const rows = Array.from({ length: 500 }, (_, i) => `s${i},view,bf-stop-${i % 4},${i},"note ""${i}""
second line"`);
    const path = join(dir.path, "stop.csv.gz");
    writeFileSync(path, gzipSync(["event_id,event_type,key,value,properties.note", ...rows].join("\r\n")));
    const controller = new AbortController();
    const options = parseBackfillArgs([path, "--url", server.url, "--api-key", TEST_KEYS.all, "--no-progress", "--batch-size", "25", "--concurrency", "3"], {}) as BackfillOptions;
    let stopped: Summary | undefined;
    const out = sink();
    const code = await backfill(options, {
      stdout: out.stream, stderr: out.stream, stdin: Readable.from([]), signal: controller.signal,
      onBatch: (settled) => settled === 4 && controller.abort(), onSummary: (s) => (stopped = s),
    });
    expect(code).toBe(1);
    expect(stopped).toMatchObject({ complete: false, error: "interrupted", rejected: 0, duplicates: 0 });
    const saved = JSON.parse(readFileSync(`${path}.keyflow-checkpoint`, "utf8"));
    expect(saved.header).toEqual(["event_id", "event_type", "key", "value", "properties.note"]);
    // Every batch in flight settled before the checkpoint was written: it covers exactly what was sent.
    expect(saved.line).toBe(1 + 2 * stopped!.accepted);
    const resumed = await run([path, "--batch-size", "25"]);
    expect(resumed.summary).toMatchObject({ complete: true, duplicates: 0, rejected: 0, accepted: 500 - stopped!.accepted });
    let total = 0;
    for (let k = 0; k < 4; k++) total += (await totals(`bf-stop-${k}`)).events;
    expect(total).toBe(500);
  });

  test("a wrong key stops the run with exit 1 and keeps the checkpoint where it was", async () => {
    const path = join(dir.path, "auth.ndjson");
    writeFileSync(path, `${event("x1", "bf-auth")}\n`);
    const out = sink();
    const err = sink();
    const code = await runBackfill([path, "--url", server.url, "--api-key", "kf_wrong", "--no-progress"], { stdout: out.stream, stderr: err.stream, stdin: Readable.from([]) });
    expect(code).toBe(1);
    expect(err.text()).toContain("401");
    expect(JSON.parse(readFileSync(`${path}.keyflow-checkpoint`, "utf8"))).toMatchObject({ offset: 0, line: 0 });
  });

  test("usage errors exit 2", async () => {
    const out = sink();
    const err = sink();
    const io = { stdout: out.stream, stderr: err.stream, stdin: Readable.from([]) };
    expect(await runBackfill([], io)).toBe(2);
    expect(await runBackfill(["x.ndjson", "--batch-size", "20000"], io)).toBe(2);
    expect(await runBackfill([join(dir.path, "missing.ndjson")], io)).toBe(2);
    expect(await runBackfill([dir.path], io)).toBe(2);
    expect(err.text()).toContain("--batch-size must be between 1 and 10000");
  });

  test("killed mid-run and resumed: every event accepted exactly once, and only in-flight batches re-sent", async () => {
    const count = 6_000;
    const keys = 20;
    const path = join(dir.path, "big.ndjson");
    writeFileSync(path, Array.from({ length: count }, (_, i) => event(`k${i}`, `bf-kill-${i % keys}`)).join("\n") + "\n");
    const checkpoint = `${path}.keyflow-checkpoint`;
    const batchSize = 100;
    const concurrency = 4;
    // A rate limit keeps the first run going long enough to be killed in the middle.
    const child = Bun.spawn(
      [join(BIN, "bun"), "src/cli/backfill/main.ts", path, "--url", server.url, "--batch-size", String(batchSize), "--concurrency", String(concurrency), "--rate", "1500", "--no-progress"],
      { cwd: ROOT, env: { ...process.env, KEYFLOW_API_KEY: TEST_KEYS.all }, stdout: "pipe", stderr: "pipe" },
    );
    const deadline = Date.now() + 30_000;
    let saved: { line: number; offset: number } | undefined;
    while (Date.now() < deadline && child.exitCode === null) {
      if (existsSync(checkpoint)) {
        saved = JSON.parse(readFileSync(checkpoint, "utf8"));
        if (saved!.line >= 1_000) break;
      }
      await Bun.sleep(20);
    }
    child.kill("SIGKILL");
    await child.exited;
    expect(child.signalCode).toBe("SIGKILL");
    saved = JSON.parse(readFileSync(checkpoint, "utf8"));
    expect(saved!.line).toBeGreaterThanOrEqual(1_000);
    expect(saved!.line).toBeLessThan(count);

    const resumed = await run([path, "--batch-size", String(batchSize), "--concurrency", String(concurrency)]);
    expect(resumed.summary.resumed_from).toEqual({ offset: saved!.offset, line: saved!.line });
    expect(resumed.summary).toMatchObject({ complete: true, rejected: 0, events: count - saved!.line });
    // Re-sent at most what was in flight (or acknowledged after the last checkpoint write) when it died.
    expect(resumed.summary.duplicates).toBeLessThanOrEqual(1_500 + concurrency * batchSize);
    expect(resumed.code).toBe(0);
    let total = 0;
    for (let k = 0; k < keys; k++) total += (await totals(`bf-kill-${k}`)).events;
    expect(total).toBe(count);
    expect(existsSync(checkpoint)).toBe(false);
  });
});

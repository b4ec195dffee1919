/**
 * A smoke run of the client outside Bun (tests/unit/client-portability.test.ts runs it under Deno,
 * and bundled for browsers under Node): a UUIDv7, an SSE chunk, and a flush against an in-memory
 * fetch that loses the first answer. Prints one JSON line.
 */
import { createClient, SseParser, uuidv7, uuidv7Time } from "../../src/client/index.ts";

const stored = new Set<string>();
let requests = 0;
const fetch = async (_url: string, init: RequestInit): Promise<Response> => {
  const batch = JSON.parse(String(init.body)) as Array<{ event_id: string }>;
  let accepted = 0;
  for (const e of batch) if (!stored.has(e.event_id)) stored.add(e.event_id), accepted++;
  // The first answer is lost after the events were stored: the retry must come back as duplicates.
  if (requests++ === 0) return new Response("bad gateway", { status: 502 });
  return new Response(JSON.stringify({ accepted, duplicates: batch.length - accepted, late: 0, rejected: [] }), { status: 200 });
};

const id = uuidv7();
const messages = new SseParser().push('retry: 1000\n: hi\n\nid: a.1\nevent: event\ndata: {"kind":\ndata: "event"}\n\n');
const client = createClient({ url: "http://keyflow.invalid", fetch, retryBaseMs: 1, maxBatchEvents: 10 });
for (let i = 0; i < 25; i++) client.track({ event_type: "smoke", key: "k", properties: { i } });
const report = await client.flush();
console.log(JSON.stringify({ id, time: uuidv7Time(id), messages, report, stats: client.stats(), stored: stored.size, now: Date.now() }));

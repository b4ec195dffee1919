// A Worker that uses keyflow/client the way docs/client.md tells Worker authors to: a client and
// `withContext(ctx)` per request, and the response goes back before the events are sent.
// GET /track?key=K&n=N&run=R tracks N events for K (ids `${R}-${i}`) and answers at once.
import { createClient } from "../../../src/client/index.ts";

interface Env {
  KEYFLOW_URL: string;
  KEYFLOW_API_KEY: string;
}

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response {
    // A long flush interval: only the waitUntil the client registers keeps the invocation alive
    // until the batch goes out (and is retried, if it must be).
    const client = createClient({ url: env.KEYFLOW_URL, key: env.KEYFLOW_API_KEY, flushIntervalMs: 2_000, maxBatchEvents: 50 });
    const url = new URL(request.url);
    const key = url.searchParams.get("key") ?? "";
    const n = Number(url.searchParams.get("n") ?? "0");
    const run = url.searchParams.get("run") ?? "";
    const events = client.withContext(ctx);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(events.track({ key, event_type: "page_view", event_id: `${run}-${i}`, value: 1 }));
    return Response.json({ tracked: ids.length, buffered: client.stats().buffered });
  },
};

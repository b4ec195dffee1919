/**
 * A proxy in front of a real keyflow server that fails on purpose, for the client's integration
 * test: each POST /v1/events gets a fault from `plan` — refused before the server sees it (503 with
 * Retry-After), or forwarded and applied but its answer lost (a 502, or a 200 whose body is cut
 * off) — and everything else passes through. When the server cannot be reached (it is restarting),
 * the proxy answers 502, as a load balancer would.
 */

export type Fault = "pass" | "refuse" | "lose-answer" | "cut-body";

export interface ProxyLog {
  n: number;
  fault: Fault;
  /** When the proxy received the request (ms since epoch). */
  at: number;
  status: number;
  /** The request's event IDs. */
  ids: string[];
  /** Whether the request reached the server and it answered. */
  forwarded: boolean;
}

export interface FlakyProxy {
  url: string;
  log: ProxyLog[];
  /** How many times each event ID was forwarded to the server and answered 200 (applied, or a duplicate). */
  forwardedTimes: Map<string, number>;
  stop(): void;
}

export function startFlakyProxy(upstream: () => string, plan: (n: number) => Fault): FlakyProxy {
  const log: ProxyLog[] = [];
  const forwardedTimes = new Map<string, number>();
  let count = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const body = request.method === "GET" || request.method === "HEAD" ? undefined : await request.text();
      const headers = new Headers(request.headers);
      headers.delete("host");
      const forward = () => fetch(upstream() + url.pathname + url.search, { method: request.method, headers, body, signal: request.signal });
      if (!(request.method === "POST" && url.pathname === "/v1/events")) {
        try {
          return await forward();
        } catch {
          return new Response("upstream unavailable", { status: 502 });
        }
      }
      const n = count++;
      const fault = plan(n);
      const ids = (JSON.parse(body!) as Array<{ event_id: string }>).map((e) => e.event_id);
      const entry: ProxyLog = { n, fault, at: Date.now(), status: 0, ids, forwarded: false };
      log.push(entry);
      const answer = (response: Response) => ((entry.status = response.status), response);
      if (fault === "refuse") return answer(Response.json({ error: { code: "storage_unavailable", message: "refused by the test proxy" } }, { status: 503, headers: { "Retry-After": "1" } }));
      let upstreamResponse: Response;
      let text: string;
      try {
        upstreamResponse = await forward();
        text = await upstreamResponse.text();
      } catch {
        return answer(new Response("upstream unavailable", { status: 502 }));
      }
      entry.forwarded = true;
      if (upstreamResponse.status === 200) for (const id of ids) forwardedTimes.set(id, (forwardedTimes.get(id) ?? 0) + 1);
      if (fault === "lose-answer") return answer(new Response("bad gateway (the answer was lost)", { status: 502 }));
      if (fault === "cut-body") {
        // Headers and half the body, then the connection breaks.
        const half = new TextEncoder().encode(text.slice(0, Math.max(1, text.length >> 1)));
        const cut = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(half);
            controller.error(new Error("the test proxy cuts this connection on purpose (a lost answer)"));
          },
        });
        return answer(new Response(cut, { status: upstreamResponse.status, headers: { "content-type": "application/json" } }));
      }
      const passed = new Headers();
      for (const name of ["content-type", "retry-after", "x-request-id"]) {
        const value = upstreamResponse.headers.get(name);
        if (value !== null) passed.set(name, value);
      }
      return answer(new Response(text, { status: upstreamResponse.status, headers: passed }));
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, log, forwardedTimes, stop: () => void server.stop(true) };
}

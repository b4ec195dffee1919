/**
 * A webhook endpoint in the test process: the contract suite's sink on every host. It records the
 * records it takes and can be told to refuse some (HTTP 400: the sink dead-letters them).
 */
export interface WebhookReceiver {
  url: string;
  secret: string;
  /** Records taken, by event id (windows are ignored). */
  readonly received: Map<string, Record<string, unknown>>;
  /** Refuse any batch holding an event whose properties have `refuse: true`. */
  refusing: boolean;
  stop(): void;
}

export function startWebhookReceiver(): WebhookReceiver {
  const received = new Map<string, Record<string, unknown>>();
  const receiver: WebhookReceiver = {
    url: "",
    secret: "contract-secret",
    received,
    refusing: true,
    stop: () => server.stop(true),
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const { records } = (await req.json()) as { records: Array<Record<string, unknown>> };
      const refused = records.some((r) => r.kind === "event" && (r.properties as { refuse?: boolean } | undefined)?.refuse === true);
      if (refused && receiver.refusing) return Response.json({ error: "refused by the test receiver" }, { status: 400 });
      for (const r of records) if (r.kind === "event") received.set(r.event_id as string, r);
      return new Response(null, { status: 204 });
    },
  });
  receiver.url = `http://127.0.0.1:${server.port}/hook`;
  return receiver;
}

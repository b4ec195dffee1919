import { Webhook } from "standardwebhooks";

/**
 * A webhook endpoint in the test process: the contract suite's sink on every host. It verifies the
 * Standard Webhooks signature of every request with the `standardwebhooks` library (HTTP 401 when it
 * does not verify: the sink dead-letters the records), records the records it takes and can be told
 * to refuse some (HTTP 400: the sink dead-letters them).
 */
export interface WebhookReceiver {
  url: string;
  /** A valid Standard Webhooks secret (whsec_ + base64 of 32 fixed bytes), the same in every run. */
  secret: string;
  /**
   * Event records taken (windows are ignored), one per idempotency key, so the same event id in two
   * tenants or under two keys is two records; has() and get() also take an event id.
   */
  readonly received: Map<string, Record<string, unknown>>;
  /** Refuse any batch holding an event whose properties have `refuse: true`. */
  refusing: boolean;
  /** Requests refused because their signature did not verify, with the library's reason. */
  readonly unverified: string[];
  /** Told of every delivery taken (verified, not refused), with its headers: a test can await one. */
  onDelivery?: (headers: Headers, records: Array<Record<string, unknown>>) => void;
  stop(): void;
}

/** whsec_ + base64 of 32 fixed bytes: deterministic, so a host started from the same env signs alike. */
export const RECEIVER_SECRET = `whsec_${Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 73 + 41) & 0xff)).toString("base64")}`;

/** A map by idempotency key that also answers has()/get() by event id (the latest record with that id). */
class ReceivedEvents extends Map<string, Record<string, unknown>> {
  private readonly byEventId = new Map<string, string>();

  take(record: Record<string, unknown>): void {
    const key = record.idempotency_key as string;
    this.set(key, record);
    this.byEventId.set(record.event_id as string, key);
  }

  override has(key: string): boolean {
    return super.has(key) || this.byEventId.has(key);
  }

  override get(key: string): Record<string, unknown> | undefined {
    const alias = this.byEventId.get(key);
    return super.get(key) ?? (alias === undefined ? undefined : super.get(alias));
  }
}

export function startWebhookReceiver(): WebhookReceiver {
  const received = new ReceivedEvents();
  const unverified: string[] = [];
  const webhook = new Webhook(RECEIVER_SECRET);
  const receiver: WebhookReceiver = {
    url: "",
    secret: RECEIVER_SECRET,
    received,
    refusing: true,
    unverified,
    stop: () => server.stop(true),
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const body = await req.text();
      let payload: { records: Array<Record<string, unknown>> };
      try {
        // The library reads headers from a plain object (Object.keys), not from a Headers instance.
        payload = webhook.verify(body, Object.fromEntries(req.headers)) as typeof payload;
      } catch (error) {
        unverified.push((error as Error).message);
        return Response.json({ error: `signature: ${(error as Error).message}` }, { status: 401 });
      }
      const { records } = payload;
      const refused = records.some((r) => r.kind === "event" && (r.properties as { refuse?: boolean } | undefined)?.refuse === true);
      if (refused && receiver.refusing) return Response.json({ error: "refused by the test receiver" }, { status: 400 });
      for (const r of records) if (r.kind === "event") received.take(r);
      receiver.onDelivery?.(req.headers, records);
      return new Response(null, { status: 204 });
    },
  });
  receiver.url = `http://127.0.0.1:${server.port}/hook`;
  return receiver;
}

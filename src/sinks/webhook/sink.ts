import type { Sink } from "../../delivery/sink.ts";
import type { OutboxRecord } from "../../actor/outbox.ts";
import { idempotencyKey, recordView } from "../../delivery/records.ts";
import { post, statusError } from "../http.ts";

export interface WebhookSinkOptions {
  url: string;
  secret: string;
  timeoutMs: number;
}

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** HMAC-SHA256 of `${timestamp}.${body}` with the shared secret, hex: what X-Keyflow-Signature carries. */
export async function signature(secret: string, timestamp: string, body: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hex(await crypto.subtle.sign("HMAC", key, enc.encode(`${timestamp}.${body}`)));
}

/**
 * POSTs batches to any HTTP endpoint: {"records":[…]} with each record's idempotency key
 * (event_id, or key/size/start/revision for windows), signed with HMAC-SHA256. The receiver
 * verifies X-Keyflow-Signature and skips ids it has seen (redelivery happens after timeouts).
 */
export class WebhookSink implements Sink {
  readonly name = "webhook";

  constructor(private readonly opts: WebhookSinkOptions) {}

  async deliver(records: OutboxRecord[]): Promise<void> {
    const body = JSON.stringify({
      records: records.flatMap((r) =>
        r.kind === "dead_letter" ? [] : [{ idempotency_key: idempotencyKey(r), ...recordView(r) }],
      ),
    });
    const timestamp = String(Math.floor(Date.now() / 1000));
    const res = await post(
      this.opts.url,
      {
        headers: {
          "content-type": "application/json",
          "x-keyflow-timestamp": timestamp,
          "x-keyflow-signature": `sha256=${await signature(this.opts.secret, timestamp, body)}`,
        },
        body,
      },
      this.opts.timeoutMs,
      "webhook",
    );
    if (!res.ok) throw await statusError(res, "webhook");
  }
}

import { SinkError, type Sink } from "../../delivery/sink.ts";
import type { OutboxRecord, SinkRecord } from "../../actor/outbox.ts";
import { idempotencyKey, recordJson } from "../../delivery/records.ts";
import { post, statusError } from "../http.ts";
import { base64Of, hexOf, hmac, hmacKey, messageId, secretKey, signedContent, splitSecrets } from "./signing.ts";

export { MIN_SECRET_BYTES, SECRET_PREFIX, messageId, secretProblems, splitSecrets, standardSignature } from "./signing.ts";

export interface WebhookSinkOptions {
  url: string;
  /** KEYFLOW_WEBHOOK_SECRET: `whsec_<base64>`, or several separated by spaces during a rotation (the current one first). */
  secret: string;
  timeoutMs: number;
  /** The clock that stamps webhook-timestamp (epoch ms); Date.now unless a test sets it. */
  now?: () => number;
}

const utf8 = new TextEncoder();

/**
 * HMAC-SHA256 of `${timestamp}.${body}` keyed by the UTF-8 bytes of `secret` as written, hex: what the
 * deprecated X-Keyflow-Signature carries (after `sha256=`). Standard Webhooks: standardSignature.
 */
export async function signature(secret: string, timestamp: string, body: string): Promise<string> {
  return hexOf(await hmac(await hmacKey(utf8.encode(secret)), `${timestamp}.${body}`));
}


/** What requestIdOf lets through (printable ASCII, at most 128): always a valid header value. */
const HEADER_SAFE = /^[\x21-\x7e]{1,128}$/;

/** The correlation ID every record of a delivery shares, if they all share one (windows and alerts carry none). */
function sharedRequestId(items: readonly SinkRecord[]): string | undefined {
  const first = items[0];
  const id = first?.kind === "event" ? first.requestId : undefined;
  if (id === undefined || !HEADER_SAFE.test(id)) return undefined;
  return items.every((r) => r.kind === "event" && r.requestId === id) ? id : undefined;
}

/**
 * Retry-After (delay-seconds or an HTTP-date) in ms from `now`, if the header holds one.
 * The delivery layer does not honour it yet: the error carries it (retryAfterMs) and says it.
 */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  const text = header?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A refused delivery: the HTTP status, and how long the receiver asked the sender to wait (Retry-After), if it did. */
export class WebhookStatusError extends SinkError {
  constructor(
    message: string,
    permanent: boolean,
    readonly status: number,
    readonly retryAfterMs: number | undefined,
    tooLarge: boolean,
  ) {
    super(message, permanent, undefined, tooLarge);
  }
}

/**
 * POSTs batches to any HTTP endpoint as Standard Webhooks (spec v1.0.0) messages: {"records":[…]},
 * each record with its idempotency_key (idempotencyKey: unique across tenants and actor keys), and
 * the headers `webhook-id` (the same on every attempt at the same batch), `webhook-timestamp` (Unix
 * seconds of the attempt) and `webhook-signature` (`v1,<base64>` for each secret), and `x-request-id`
 * when every record shares one correlation ID (each record's `request_id` is in the body). Receivers verify
 * with any Standard Webhooks library (docs/webhooks.md). X-Keyflow-Timestamp and X-Keyflow-Signature
 * (hex HMAC of `${timestamp}.${body}` keyed by the current secret as written) are still sent for one
 * release, deprecated.
 *
 * 2xx delivers; 410 Gone is permanent (the records are dead-lettered); 408, 429 and 5xx are transient;
 * other 4xx are permanent (413: the batch is split).
 */
export class WebhookSink implements Sink {
  readonly name = "webhook";
  private readonly secrets: string[];
  private keys?: Promise<{ standard: CryptoKey[]; legacy: CryptoKey }>;

  constructor(private readonly opts: WebhookSinkOptions) {
    this.secrets = splitSecrets(opts.secret);
    for (const secret of this.secrets) secretKey(secret); // a bad whsec_ secret fails here, not at the first delivery
  }

  /** The HMAC keys, imported once per sink: one per secret, and the deprecated header's. */
  private hmacKeys() {
    this.keys ??= (async () => ({
      standard: await Promise.all(this.secrets.map((s) => hmacKey(secretKey(s)))),
      legacy: await hmacKey(utf8.encode(this.secrets[0]!)),
    }))();
    return this.keys;
  }

  async deliver(records: OutboxRecord[]): Promise<void> {
    const items = records.filter((r): r is SinkRecord => r.kind !== "dead_letter");
    const idempotencyKeys = items.map(idempotencyKey);
    // {"idempotency_key":…, …recordView}: the record's JSON is built once however many sinks send it.
    const body = `{"records":[${items.map((r, i) => `{"idempotency_key":${JSON.stringify(idempotencyKeys[i])},${recordJson(r).slice(1)}`).join(",")}]}`;
    const now = this.opts.now ?? Date.now;
    const [id, keys] = await Promise.all([messageId(idempotencyKeys), this.hmacKeys()]);
    const timestamp = String(Math.floor(now() / 1000));
    const content = signedContent(id, timestamp, body);
    const [standard, legacy] = await Promise.all([
      Promise.all(keys.standard.map(async (key) => `v1,${base64Of(await hmac(key, content))}`)),
      hmac(keys.legacy, `${timestamp}.${body}`),
    ]);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": timestamp,
      "webhook-signature": standard.join(" "),
      "x-keyflow-timestamp": timestamp,
      "x-keyflow-signature": `sha256=${hexOf(legacy)}`,
    };
    const requestId = sharedRequestId(items);
    if (requestId !== undefined) headers["x-request-id"] = requestId;
    const res = await post(
      this.opts.url,
      { headers, body },
      this.opts.timeoutMs,
      "webhook",
    );
    if (res.ok) {
      await res.body?.cancel();
      return;
    }
    const error = await statusError(res, "webhook");
    if (res.status === 410) {
      throw new WebhookStatusError(`${error.message} (410 Gone: the endpoint is gone; fix KEYFLOW_WEBHOOK_URL, then replay the dead letters)`, true, 410, undefined, false);
    }
    const wait = error.permanent ? undefined : retryAfterMs(res.headers.get("retry-after"), now());
    const message = wait === undefined ? error.message : `${error.message} (Retry-After: ${Math.ceil(wait / 1000)} s)`;
    throw new WebhookStatusError(message, error.permanent, res.status, wait, error.tooLarge);
  }
}

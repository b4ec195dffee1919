import { afterAll, describe, expect, spyOn, test } from "bun:test";
import { Webhook } from "standardwebhooks";
import type { OutboxRecord } from "../../src/actor/outbox.ts";
import { actorName } from "../../src/actor/tenant.ts";
import { SinkError } from "../../src/delivery/sink.ts";
import { idempotencyKey } from "../../src/delivery/records.ts";
import { ConfigError } from "../../src/settings/config.ts";
import { sinkSettings } from "../../src/settings/env.ts";
import { retryAfterMs, signature, WebhookSink, WebhookStatusError } from "../../src/sinks/webhook/sink.ts";

const T0 = Date.UTC(2026, 10, 21, 10);
const event = (n: number, extra: Partial<OutboxRecord> = {}): OutboxRecord =>
  ({ kind: "event", n, key: "user-1", id: `e${n}`, type: "purchase", ts: T0 + n, value: n, receivedAt: T0, late: false, ...extra }) as OutboxRecord;
const windowRecord: OutboxRecord = {
  kind: "window", n: 9, key: "user-1", spec: "5m/1m", start: T0, end: T0 + 300_000, revision: 2, final: false,
  all: { count: 2, valued: 2, sum: 3, min: 1, max: 2 }, types: { purchase: { count: 2, valued: 2, sum: 3, min: 1, max: 2 } },
};

const whsec = (bytes: Uint8Array) => `whsec_${Buffer.from(bytes).toString("base64")}`;
const randomSecret = (n = 32) => whsec(crypto.getRandomValues(new Uint8Array(n)));
const SECRET = randomSecret();

interface Received {
  body: string;
  headers: Record<string, string>;
  /** What `new Webhook(SECRET).verify` made of it: the payload, or the library's error message. */
  verified: { payload: unknown } | { error: string };
}

/** A receiver on 127.0.0.1 that verifies every request with the standardwebhooks library (401 when it fails). */
function receiver(secret: string) {
  const requests: Received[] = [];
  const webhook = new Webhook(secret);
  let reply: () => Response = () => new Response(null, { status: 204 });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const body = await req.text();
      // The library looks headers up in a plain object (Object.keys), not in a Headers instance.
      const headers = Object.fromEntries(req.headers);
      let verified: Received["verified"];
      try {
        verified = { payload: webhook.verify(body, headers) };
      } catch (error) {
        verified = { error: (error as Error).message };
      }
      requests.push({ body, headers, verified });
      return "error" in verified ? Response.json({ error: verified.error }, { status: 401 }) : reply();
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/hook`,
    requests,
    answer(fn: () => Response) {
      reply = fn;
    },
    stop: () => server.stop(true),
  };
}

const hook = receiver(SECRET);
afterAll(() => hook.stop());
const sinkFor = (secret = SECRET, now?: () => number) => new WebhookSink({ url: hook.url, secret, timeoutMs: 5_000, now });

/** Delivers and returns the request the receiver got for it. */
async function deliver(sink: WebhookSink, records: OutboxRecord[]): Promise<{ error?: unknown; request: Received }> {
  const before = hook.requests.length;
  const error = await sink.deliver(records).then(() => undefined, (e: unknown) => e);
  expect(hook.requests.length).toBe(before + 1);
  return { error, request: hook.requests.at(-1)! };
}

describe("webhook sink: Standard Webhooks, checked by the standardwebhooks library", () => {
  test("a delivery verifies: the library returns the payload", async () => {
    const { error, request } = await deliver(sinkFor(), [event(0), windowRecord]);
    expect(error).toBeUndefined();
    expect(request.verified).toEqual({ payload: JSON.parse(request.body) });
    expect(new Webhook(SECRET).verify(request.body, request.headers)).toEqual(JSON.parse(request.body));
    expect(request.headers["webhook-id"]).toMatch(/^msg_[A-Za-z0-9_-]+$/);
    expect(request.headers["webhook-timestamp"]).toMatch(/^\d+$/);
    expect(Math.abs(Number(request.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(300);
    expect(request.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const payload = JSON.parse(request.body);
    expect(payload.records).toHaveLength(2);
    expect(payload.records[0]).toMatchObject({ idempotency_key: idempotencyKey(event(0) as any), kind: "event", tenant: "default", event_id: "e0", key: "user-1" });
    expect(payload.records[1]).toMatchObject({ idempotency_key: idempotencyKey(windowRecord as any), kind: "window", tenant: "default", size: "5m/1m", revision: 2 });
  });

  test("a tampered body, a wrong secret and a missing header are refused by the library", async () => {
    const { request } = await deliver(sinkFor(), [event(1)]);
    const wh = new Webhook(SECRET);
    const tampered = request.body.replace('"value":1', '"value":1000');
    expect(tampered).not.toBe(request.body);
    expect(() => wh.verify(tampered, request.headers)).toThrow("No matching signature found");
    expect(() => wh.verify(`${request.body} `, request.headers)).toThrow("No matching signature found");
    expect(() => new Webhook(randomSecret()).verify(request.body, request.headers)).toThrow("No matching signature found");
    const { "webhook-signature": _, ...unsigned } = request.headers;
    expect(() => wh.verify(request.body, unsigned)).toThrow("Missing required headers");
    // Another webhook-id with the same body and signature: refused, so an id cannot be swapped.
    expect(() => wh.verify(request.body, { ...request.headers, "webhook-id": "msg_other" })).toThrow("No matching signature found");

    // A sink signing with another secret: the receiver answers 401, which is permanent.
    const wrong = await deliver(sinkFor(randomSecret()), [event(1)]);
    expect(wrong.request.verified).toEqual({ error: "No matching signature found" });
    expect(wrong.error).toBeInstanceOf(SinkError);
    expect((wrong.error as SinkError).permanent).toBe(true);
  });

  test("a timestamp outside the 5-minute tolerance is refused, though its signature is right", async () => {
    for (const [offsetMs, reason] of [[-6 * 60_000, "Message timestamp too old"], [6 * 60_000, "Message timestamp too new"]] as const) {
      const { error, request } = await deliver(sinkFor(SECRET, () => Date.now() + offsetMs), [event(2)]);
      expect(request.verified).toEqual({ error: reason });
      expect(error).toBeInstanceOf(WebhookStatusError);
      expect((error as WebhookStatusError).status).toBe(401);
      const ts = Number(request.headers["webhook-timestamp"]);
      expect(new Webhook(SECRET).sign(request.headers["webhook-id"]!, new Date(ts * 1000), request.body)).toBe(request.headers["webhook-signature"]!);
    }
    // Inside the tolerance (a sender clock one minute off): accepted.
    const { error } = await deliver(sinkFor(SECRET, () => Date.now() - 60_000), [event(2)]);
    expect(error).toBeUndefined();
  });

  test("the same batch carries the same webhook-id on every delivery; different batches differ", async () => {
    const sink = sinkFor();
    const first = (await deliver(sink, [event(3), event(4)])).request;
    const again = (await deliver(sink, [event(3), event(4)])).request;
    const otherSink = (await deliver(sinkFor(), [event(3), event(4)])).request;
    expect(again.headers["webhook-id"]).toBe(first.headers["webhook-id"]!);
    expect(otherSink.headers["webhook-id"]).toBe(first.headers["webhook-id"]!);
    expect(again.body).toBe(first.body);

    const ids = new Set([first.headers["webhook-id"]]);
    for (const batch of [
      [event(3)],
      [event(4)],
      [event(4), event(3)],
      [event(3), event(4), event(5)],
      [event(3, { key: "user-2" }), event(4)],
      [event(3, { key: actorName("acme", "user-1") }), event(4)],
      [windowRecord],
      [{ ...windowRecord, revision: 3 } as OutboxRecord],
    ]) {
      ids.add((await deliver(sink, batch)).request.headers["webhook-id"]);
    }
    expect(ids.size).toBe(9);
  });

  test("idempotency keys differ across tenants and actor keys, and hold whatever an id or key holds", () => {
    const records = [
      event(0),
      event(0, { key: "user-2" }),
      event(0, { key: actorName("acme", "user-1") }),
      event(0, { key: actorName("globex", "user-1") }),
      event(0, { key: "a|b", id: "c" }),
      event(0, { key: "a", id: "b|c" }),
      event(0, { key: 'a","b', id: "c" }),
      event(0, { key: "a", id: 'b","c' }),
    ] as any[];
    const keys = records.map((r) => idempotencyKey(r));
    expect(new Set(keys).size).toBe(records.length);
    expect(idempotencyKey(event(0) as any)).toBe(idempotencyKey(event(0) as any));
    for (const key of keys) expect(key).not.toContain("\n"); // the webhook-id hashes the keys joined by newlines
  });

  test("rotation: several secrets sign together, each verifies, the first is current", async () => {
    const current = randomSecret();
    const previous = randomSecret(24);
    const { request } = await deliver(sinkFor(`${current} ${previous}`), [event(6)]);
    const signatures = request.headers["webhook-signature"]!.split(" ");
    expect(signatures).toHaveLength(2);
    for (const s of signatures) expect(s).toMatch(/^v1,/);
    expect(new Webhook(current).verify(request.body, request.headers)).toEqual(JSON.parse(request.body));
    expect(new Webhook(previous).verify(request.body, request.headers)).toEqual(JSON.parse(request.body));
    expect(() => new Webhook(randomSecret()).verify(request.body, request.headers)).toThrow("No matching signature found");
    // The deprecated header: the current secret as written.
    expect(request.headers["x-keyflow-signature"]).toBe(`sha256=${await signature(current, request.headers["x-keyflow-timestamp"]!, request.body)}`);
  });

  test("a secret without whsec_ (deprecated) is used as its UTF-8 bytes: raw format verifies", async () => {
    const { request } = await deliver(sinkFor("an old secret"), [event(7)]);
    expect(new Webhook("an old secret", { format: "raw" }).verify(request.body, request.headers)).toEqual(JSON.parse(request.body));
    expect(request.headers["x-keyflow-signature"]).toBe(`sha256=${await signature("an old secret", request.headers["x-keyflow-timestamp"]!, request.body)}`);
    // Beyond ASCII the key is the UTF-8 bytes (the library's raw string form would take char codes).
    const unicode = (await deliver(sinkFor("sécret-ключ"), [event(7)])).request;
    expect(new Webhook(new TextEncoder().encode("sécret-ключ"), { format: "raw" }).verify(unicode.body, unicode.headers)).toEqual(JSON.parse(unicode.body));
  });

  test("the HMAC keys are imported once per sink, not per delivery", async () => {
    const importKey = spyOn(crypto.subtle, "importKey");
    try {
      const sink = sinkFor(`${SECRET} ${randomSecret()}`);
      for (let i = 0; i < 3; i++) expect((await deliver(sink, [event(10 + i)])).error).toBeUndefined();
      expect(importKey).toHaveBeenCalledTimes(3); // two Standard Webhooks secrets, and the deprecated header's key
    } finally {
      importKey.mockRestore();
    }
  });

  test("410 Gone is permanent; 429/502/503/504 are transient and carry Retry-After", async () => {
    const sink = sinkFor();
    try {
      hook.answer(() => new Response("gone", { status: 410 }));
      const gone = (await deliver(sink, [event(20)])).error as WebhookStatusError;
      expect(gone).toBeInstanceOf(WebhookStatusError);
      expect(gone.permanent).toBe(true);
      expect(gone.message).toContain("410");

      for (const status of [429, 502, 503, 504]) {
        hook.answer(() => new Response("later", { status, headers: { "retry-after": "7" } }));
        const error = (await deliver(sink, [event(21)])).error as WebhookStatusError;
        expect(error.permanent).toBe(false);
        expect(error.status).toBe(status);
        expect(error.retryAfterMs).toBe(7_000);
        expect(error.message).toContain("Retry-After: 7 s");
      }
      hook.answer(() => new Response("later", { status: 503 }));
      expect(((await deliver(sink, [event(22)])).error as WebhookStatusError).retryAfterMs).toBeUndefined();
    } finally {
      hook.answer(() => new Response(null, { status: 204 }));
    }
  });

  test("Retry-After: delay-seconds or an HTTP-date", () => {
    const now = Date.UTC(2026, 10, 21, 10, 0, 0);
    expect(retryAfterMs("120", now)).toBe(120_000);
    expect(retryAfterMs(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(retryAfterMs(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(retryAfterMs("soon", now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });
});

describe("webhook secret settings", () => {
  const URL = "https://hooks.example.com/keyflow";
  const settingsError = (secret: string): string => {
    try {
      sinkSettings({ KEYFLOW_WEBHOOK_URL: URL, KEYFLOW_WEBHOOK_SECRET: secret });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("expected a ConfigError");
  };
  /** The message names the variable and shows no part of the secret. */
  const expectSecretProblem = (secret: string, ...says: string[]) => {
    const message = settingsError(secret);
    expect(message).toContain("KEYFLOW_WEBHOOK_SECRET");
    for (const part of secret.split(" ")) expect(message).not.toContain(part.replace(/^whsec_/, ""));
    expect(message).not.toContain(secret);
    for (const s of says) expect(message).toContain(s);
    return message;
  };

  test("whsec_ secrets that are not base64, or hold fewer than 24 bytes, are refused naming the variable only", () => {
    expectSecretProblem("whsec_this*is*not*base64", "base64");
    expectSecretProblem("whsec_c2VjcmV0LWJ1dC11bnBhZGRlZC1iYXNlNjQtdGV4dA", "base64"); // unpadded
    expectSecretProblem(whsec(new Uint8Array(16).fill(7)), "at least 24", "holds 16");
    expectSecretProblem(whsec(new Uint8Array(23).fill(7)), "at least 24", "holds 23");
    expectSecretProblem(`${SECRET} whsec_short+/`, "2nd secret");
    // With the other problems, all in one message.
    const message = settingsError("whsec_???");
    expect(message).toContain("KEYFLOW_WEBHOOK_SECRET");
    expect(message).not.toContain("???");
  });

  test("valid secrets: whsec_ of 24 to 64 bytes, several for a rotation, and (deprecated) raw text as before", () => {
    for (const secret of [
      whsec(new Uint8Array(24).fill(1)),
      SECRET,
      randomSecret(64),
      `${SECRET} ${randomSecret(24)}`,
      `${SECRET}  old-raw-secret`,
      "s3cret",
      "an old secret with spaces",
    ]) {
      expect(sinkSettings({ KEYFLOW_WEBHOOK_URL: URL, KEYFLOW_WEBHOOK_SECRET: secret }).webhook).toEqual({ url: URL, secret, timeoutMs: 10_000 });
    }
  });

  test("a sink made directly with a bad whsec_ secret fails at once, without the secret in the message", () => {
    const secret = whsec(new Uint8Array(8).fill(9));
    let message = "";
    try {
      new WebhookSink({ url: URL, secret, timeoutMs: 1_000 });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("KEYFLOW_WEBHOOK_SECRET");
    expect(message).not.toContain(secret.slice("whsec_".length));
  });
});

/**
 * Sentry through toucan-js against a local HTTP endpoint standing in for Sentry's ingest: an
 * unexpected error is reported as an envelope with the exception, the request's method and path,
 * its tenant and correlation ID, and nothing of the payload or credentials.
 */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { accessFor } from "../../src/http/access.ts";
import { createApp } from "../../src/http/app.ts";
import type { Gateway } from "../../src/http/gateway.ts";
import { sentryReporter } from "../../src/reporting/sentry.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { readSettings } from "../../src/settings/env.ts";
import { systemEnv } from "../../src/ports/system.ts";

const KEY = "kf_sentry_test_key_0123456789";

test("an unexpected error reaches Sentry as an envelope with request context, tenant and correlation ID, and no payload", async () => {
  const envelopes: Array<{ path: string; body: string }> = [];
  const ingest = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      envelopes.push({ path: new URL(req.url).pathname, body: await req.text() });
      return Response.json({ id: "ok" });
    },
  });
  try {
    const config: Config = { ...DEFAULT_CONFIG, windows: [parseWindowSpec("1m") as WindowSpec] };
    const failing = { ingest: async () => { throw new TypeError("boom: the host broke"); } } as unknown as Gateway;
    const { auth } = readSettings({ KEYFLOW_API_KEYS: `acme:ingest:${createHash("sha256").update(KEY).digest("hex")}` });
    const app = createApp({
      backend: failing,
      config,
      env: systemEnv,
      host: "memory",
      access: accessFor(auth, true),
      reportError: sentryReporter(`http://publickey@127.0.0.1:${ingest.port}/42`, "test", "0.0.0"),
    });
    const res = await app.request("/v1/events?secret=1", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEY}`, "x-request-id": "trace-me-1" },
      body: JSON.stringify({ event_id: "e1", event_type: "purchase", key: "alice", properties: { card: "4111111111111111" } }),
    });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: "internal", message: "internal error" } });
    const deadline = Date.now() + 15_000;
    while (!envelopes.length && Date.now() < deadline) await Bun.sleep(20);
    expect(envelopes).toHaveLength(1);
    const { path, body } = envelopes[0]!;
    expect(path).toBe("/api/42/envelope/");
    const [header, itemHeader, item] = body.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    expect(header.event_id).toMatch(/^[0-9a-f]{32}$/);
    expect(itemHeader.type).toBe("event");
    expect(item.exception.values[0]).toMatchObject({ type: "TypeError", value: "boom: the host broke" });
    expect(item.tags).toMatchObject({ tenant: "acme", request_id: "trace-me-1" });
    expect(item.request).toMatchObject({ method: "POST" });
    expect(item.request.url).toContain("/v1/events");
    expect(item.environment).toBe("test");
    for (const secret of ["4111111111111111", "alice", KEY, "secret=1"]) expect(body, secret).not.toContain(secret);
  } finally {
    ingest.stop(true);
  }
});

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { keyLine, newKeyText, originAllowed, parseApiKeys } from "../../src/auth/api-keys.ts";
import { KeyRing, webCryptoSha256 } from "../../src/auth/key-ring.ts";
import { parseRate, RateLimits } from "../../src/auth/rate-limits.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { accessFor } from "../../src/http/access.ts";
import { createApp } from "../../src/http/app.ts";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { readSettings, serverSettings } from "../../src/settings/env.ts";
import { fakeEnv, pumpedRequest } from "../support/fake-env.ts";

const hex = (text: string) => createHash("sha256").update(text).digest("hex");
const KEY = "kf_unit_test_key_0123456789";

describe("API key lines", () => {
  test("a line names tenant, scopes, hash and (public keys) origins", () => {
    const { keys, problems } = parseApiKeys(`acme:ingest,read:${hex(KEY)}\n  shop:ingest:${hex("p")}:https://shop.example,https://*.shop.example `);
    expect(problems).toEqual([]);
    expect(keys.map((k) => [k.tenant, [...k.scopes], k.origins, k.id])).toEqual([
      ["acme", ["ingest", "read"], null, hex(KEY).slice(0, 12)],
      ["shop", ["ingest"], ["https://shop.example", "https://*.shop.example"], hex("p").slice(0, 12)],
    ]);
    expect(keyLine({ tenant: "shop", scopes: ["ingest"], sha256Hex: hex("p"), origins: ["https://shop.example"] })).toBe(`shop:ingest:${hex("p")}:https://shop.example`);
  });

  test("each bad line is named by its number and what is wrong, without echoing the hash", () => {
    const h = hex("x");
    const { keys, problems } = parseApiKeys(
      [`ACME:ingest:${h}`, `a:write:${h}`, `a:ingest:${h.slice(1)}`, `a:ingest,read:${h}:https://x.example`, `a:ingest:${h}:ftp://x`, `b:read:${h}`, `a:admin:${h}`].join(" "),
    );
    expect(keys.map((k) => k.tenant)).toEqual(["b"]);
    expect(problems).toHaveLength(6);
    expect(problems[0]).toStartWith("key 1: tenant");
    expect(problems[1]).toContain('scope "write"');
    expect(problems[2]).toContain("SHA-256");
    expect(problems[3]).toContain("only scope must be ingest");
    expect(problems[4]).toContain("origin");
    expect(problems[5]).toBe("key 7: the same key is configured twice");
    for (const p of problems) expect(p).not.toContain(h);
  });

  test("origins match exactly, or as a subdomain of a wildcard; never by prefix or suffix of a name", () => {
    const allowed = ["https://shop.example", "https://*.cdn.example"];
    expect(originAllowed(allowed, "https://shop.example")).toBe(true);
    expect(originAllowed(allowed, "HTTPS://SHOP.EXAMPLE")).toBe(true);
    expect(originAllowed(allowed, "https://a.cdn.example")).toBe(true);
    for (const o of ["http://shop.example", "https://shop.example.evil", "https://evilshop.example", "https://shop.example:8443", "https://cdn.example", "https://evilcdn.example", "null", ""]) {
      expect(originAllowed(allowed, o), o).toBe(false);
    }
  });

  test("new keys are 32 random bytes in base64url behind a prefix that says public or not", () => {
    const bytes = new Uint8Array(32).fill(255);
    expect(newKeyText(bytes, false)).toBe(`kf_${"_".repeat(42)}8`);
    expect(newKeyText(bytes, true)).toStartWith("kf_pub_");
  });
});

describe("KeyRing", () => {
  const { keys } = parseApiKeys(`a:ingest:${hex(KEY)} b:read:${hex(`${KEY}b`)}`);
  for (const [name, sha256] of [
    ["WebCrypto", webCryptoSha256],
    ["node:crypto", { into: (t: string, out: Uint8Array) => out.set(createHash("sha256").update(t).digest()) }],
    ["Bun.CryptoHasher", { into: (t: string, out: Uint8Array) => void Bun.CryptoHasher.hash("sha256", t, out) }],
  ] as const) {
    test(`finds a key by its hash (${name}); an unknown, altered or malformed key finds nothing`, async () => {
      const ring = new KeyRing(keys, sha256);
      expect((await ring.find(KEY))?.tenant).toBe("a");
      expect((await ring.find(`${KEY}b`))?.tenant).toBe("b");
      for (const bad of [KEY.slice(0, -1), `${KEY}c`, KEY.toUpperCase(), "", " ", "kf_ü", "a".repeat(10_000), `${KEY}\n`, hex(KEY)]) {
        expect(await ring.find(bad), JSON.stringify(bad.slice(0, 40))).toBeUndefined();
      }
    });
  }
});

describe("rate limits", () => {
  test("rates parse with units and bursts; bad ones are explained", () => {
    expect(parseRate("100/s")).toEqual({ rate: 100, perMs: 1000, burst: 100 });
    expect(parseRate("6000/1m:50")).toEqual({ rate: 6000, perMs: 60_000, burst: 50 });
    for (const bad of ["100", "0/s", "1/x", "10/s:0", "-1/s", "1.5/s"]) expect(parseRate(bad), bad).toBeString();
  });

  test("a bucket admits its burst, then refuses with the wait until enough has refilled; a refusal takes nothing", () => {
    const limits = new RateLimits({ keyEvents: { rate: 10, perMs: 1000, burst: 20 } });
    expect(limits.events("k1", "t", 20, 0)).toEqual({ ok: true });
    expect(limits.events("k1", "t", 5, 0)).toEqual({ ok: false, retryAfterMs: 500, limit: "events per API key" });
    expect(limits.events("k2", "t", 20, 0)).toEqual({ ok: true }); // per key
    expect(limits.events("k1", "t", 5, 499)).toMatchObject({ ok: false });
    expect(limits.events("k1", "t", 5, 500)).toEqual({ ok: true });
    expect(limits.events("k1", "t", 21, 10_000)).toEqual({ ok: false, tooLarge: true, burst: 20, limit: "events per API key" });
  });

  test("a tenant's bucket is shared by its keys; a request must fit both, and takes from both only then", () => {
    const limits = new RateLimits({ keyRequests: { rate: 2, perMs: 1000, burst: 2 }, tenantRequests: { rate: 3, perMs: 1000, burst: 3 } });
    expect(limits.requests("k1", "t", 0).ok).toBe(true);
    expect(limits.requests("k1", "t", 0).ok).toBe(true);
    expect(limits.requests("k1", "t", 0)).toMatchObject({ ok: false, limit: "requests per API key" });
    expect(limits.requests("k2", "t", 0).ok).toBe(true);
    expect(limits.requests("k2", "t", 0)).toMatchObject({ ok: false, limit: "requests per tenant" });
    expect(limits.requests("k3", "other", 0).ok).toBe(true);
  });
});

describe("safe by default", () => {
  test("a server without keys starts on loopback only, unless KEYFLOW_AUTH=off says open on purpose", () => {
    for (const HOST of ["127.0.0.1", "localhost", "::1", "127.0.0.2"]) expect(serverSettings({ HOST }).host).toBe(HOST);
    for (const HOST of ["0.0.0.0", "::", "192.168.1.5", "keyflow.internal"]) {
      expect(() => serverSettings({ HOST }), HOST).toThrow(/no API keys are configured.*KEYFLOW_API_KEYS.*KEYFLOW_AUTH=off/);
      expect(serverSettings({ HOST, KEYFLOW_AUTH: "off" }).auth.off).toBe(true);
      expect(serverSettings({ HOST, KEYFLOW_API_KEYS: `a:ingest:${hex(KEY)}` }).auth.keys).toHaveLength(1);
    }
  });

  test("bad auth variables are named, and KEYFLOW_API_KEYS is never echoed", () => {
    const secretish = `a:nope:${hex(KEY)}`;
    let message = "";
    try {
      readSettings({ KEYFLOW_AUTH: "maybe", KEYFLOW_API_KEYS: secretish, KEYFLOW_CORS_ORIGINS: "https://a.example/path", KEYFLOW_RATE_LIMIT_KEY_EVENTS: "fast" });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const name of ["KEYFLOW_AUTH", "KEYFLOW_API_KEYS", "KEYFLOW_CORS_ORIGINS", "KEYFLOW_RATE_LIMIT_KEY_EVENTS"]) expect(message).toContain(name);
    expect(message).not.toContain(hex(KEY));
  });
});

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const config: Config = { ...DEFAULT_CONFIG, windows: [parseWindowSpec("1m") as WindowSpec] };

function app(env: Record<string, string>, openWithoutKeys: boolean) {
  const fake = fakeEnv(T0);
  const { auth } = readSettings(env);
  const host = new ProcessHost({ store: new MemoryKvStore(), config, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [] });
  const http = createApp({ backend: host, config, env: fake.env, host: "memory", access: accessFor(auth, openWithoutKeys) });
  const request = pumpedRequest(http, fake.timers);
  return { request, fake };
}

describe("over HTTP", () => {
  test("a Worker without keys refuses every route but /health, naming the variable to set; on this machine it is open", async () => {
    const { request } = app({}, false);
    for (const path of ["/v1/actors/a", "/v1/actors/a/dlq", "/v1/actors/a/outbox"]) {
      const res = await request(`https://keyflow.example.workers.dev${path}`);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toStartWith("Bearer");
      const body = (await res.json()) as any;
      expect(body.error.code).toBe("auth_not_configured");
      expect(body.error.message).toContain("KEYFLOW_API_KEYS");
    }
    expect((await request("https://keyflow.example.workers.dev/health")).status).toBe(200);
    expect((await request("http://127.0.0.1:8787/v1/actors/a")).status).toBe(404);
    expect((await request("http://localhost:8787/v1/actors/a")).status).toBe(404);
  });

  test("over the event rate: 429 with Retry-After, nothing applied; after the wait it is accepted", async () => {
    const env = { KEYFLOW_API_KEYS: `a:ingest,read:${hex(KEY)}`, KEYFLOW_RATE_LIMIT_KEY_EVENTS: "2/s" };
    const { request, fake } = app(env, true);
    const headers = { "content-type": "application/json", authorization: `Bearer ${KEY}` };
    const batch = (ids: string[]) => JSON.stringify(ids.map((id) => ({ event_id: id, event_type: "click", key: "k", timestamp: T0 })));
    expect((await request("/v1/events", { method: "POST", headers, body: batch(["1", "2"]) })).status).toBe(200);
    const refused = await request("/v1/events", { method: "POST", headers, body: batch(["3"]) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(((await refused.json()) as any).error).toMatchObject({ code: "rate_limited", details: { limit: "events per API key" } });
    const state = async () => ((await (await request("/v1/actors/k", { headers })).json()) as any).totals.events;
    expect(await state()).toBe(2);
    const tooBig = await request("/v1/events", { method: "POST", headers, body: batch(["4", "5", "6"]) });
    expect(tooBig.status).toBe(413);
    expect(((await tooBig.json()) as any).error.code).toBe("over_rate_limit_burst");
    fake.timers.advance(500);
    expect((await request("/v1/events", { method: "POST", headers, body: batch(["3"]) })).status).toBe(200);
    expect(await state()).toBe(3);
  });

  test("over the request rate: 429 before the body is read", async () => {
    const env = { KEYFLOW_API_KEYS: `a:ingest,read:${hex(KEY)}`, KEYFLOW_RATE_LIMIT_TENANT_REQUESTS: "1/m" };
    const { request } = app(env, true);
    const headers = { authorization: `Bearer ${KEY}` };
    expect((await request("/v1/actors/k", { headers })).status).toBe(404);
    const refused = await request("/v1/events", { method: "POST", headers: { ...headers, "content-type": "text/plain" }, body: "not even json" });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("60");
  });
});

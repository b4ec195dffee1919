import { beforeAll, expect, test } from "bun:test";
import type { Target } from "../support/targets.ts";
import { bearer, SHOP_ORIGIN, TEST_KEYS, type KeyName } from "../support/api-keys.ts";
import type { WebhookReceiver } from "../support/webhook-receiver.ts";

/**
 * The authorization matrix, run by the contract suite on every host (keys from tests/support/api-keys.ts):
 * every route with no key, bad keys, each scope, the other tenant and the public key.
 */
export function authorizationTests(target: () => Target, newKey: (label: string) => string, receiver: () => WebhookReceiver) {
  let key: string;
  let seq = 0;
  const eventFor = (k: string) => ({ event_id: `auth-${++seq}`, event_type: "signup", key: k, timestamp: new Date(Date.now() - 3_600_000).toISOString() });
  const routes = (k: string) =>
    [
      { scope: "ingest", method: "POST", path: "/v1/events", body: () => JSON.stringify(eventFor(k)) },
      { scope: "read", method: "GET", path: `/v1/actors/${k}` },
      { scope: "read", method: "GET", path: `/v1/actors/${k}/windows` },
      { scope: "read", method: "GET", path: `/v1/actors/${k}/late` },
      { scope: "admin", method: "GET", path: `/v1/actors/${k}/dlq` },
      { scope: "admin", method: "POST", path: `/v1/actors/${k}/dlq/replay` },
      { scope: "admin", method: "GET", path: `/v1/actors/${k}/outbox` },
    ] as const;
  type Route = { scope: string; method: string; path: string; body?: () => string };
  const call = (route: Route, headers: Record<string, string>) =>
    target().fetch(route.path, {
      method: route.method,
      headers: { "content-type": "application/json", ...headers },
      body: route.body?.(),
    });
  const state = async (k: string, as: KeyName = "all") => {
    const res = await target().fetch(`/v1/actors/${k}`, { headers: bearer(as) });
    return { status: res.status, body: (await res.json()) as any };
  };

  beforeAll(async () => {
    key = newKey("auth");
    const res = await target().fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json", ...bearer("all") }, body: JSON.stringify(eventFor(key)) });
    expect(res.status).toBe(202);
  });

  test("authorization: every route but /health needs a key: 401 with WWW-Authenticate, nothing applied", async () => {
    const stranger = newKey("stranger");
    const bad: Array<[string, Record<string, string>]> = [
      ["no header", {}],
      ["empty bearer", { authorization: "Bearer " }],
      ["unknown key", { authorization: "Bearer kf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }],
      ["basic scheme", { authorization: `Basic ${btoa(`user:${TEST_KEYS.all}`)}` }],
      ["key without scheme", { authorization: TEST_KEYS.all }],
      ["truncated key", { authorization: `Bearer ${TEST_KEYS.all.slice(0, -1)}` }],
      ["upper-cased key", { authorization: `Bearer ${TEST_KEYS.all.toUpperCase()}` }],
      ["overlong key", { authorization: `Bearer ${TEST_KEYS.all.repeat(200)}` }],
    ];
    for (const k of [key, stranger]) {
      for (const route of routes(k)) {
        for (const [what, headers] of bad) {
          const res = await call(route, headers);
          expect(res.status, `${route.method} ${route.path} with ${what}`).toBe(401);
          expect(res.headers.get("www-authenticate"), what).toStartWith("Bearer");
          const body = (await res.json()) as any;
          expect(body.error.code).toBe("unauthorized");
          expect(JSON.stringify(body)).not.toContain(TEST_KEYS.all);
        }
      }
    }
    expect((await state(stranger)).status).toBe(404);
    expect((await state(key)).body.totals.events).toBe(1);
    const health = await target().fetch("/health");
    expect(health.status).toBe(200);
    expect(await health.text()).not.toMatch(/KEYFLOW|tenant|kf_|sha256|secret/i);
  });

  test("authorization: each scope opens its routes only (403 names the scope); admin is not read", async () => {
    for (const as of ["ingest", "read", "admin", "all"] as const) {
      for (const route of routes(key)) {
        const res = await call(route, bearer(as));
        const allowed = as === "all" || as === route.scope;
        const what = `${route.method} ${route.path} with the ${as} key`;
        if (!allowed) {
          expect(res.status, what).toBe(403);
          const body = (await res.json()) as any;
          expect(body.error.code, what).toBe("forbidden");
          expect(body.error.message, what).toContain(route.scope);
        } else expect([200, 202], what).toContain(res.status);
      }
    }
  });

  test("tenants: another tenant's key sees none of this tenant's keys, and the same key name is its own actor there", async () => {
    const never = newKey("never");
    for (const route of routes(key).filter((r) => r.method === "GET" || r.path.endsWith("/replay"))) {
      const theirs = await call(route, bearer("otherTenant"));
      const nobodys = await call({ ...route, path: route.path.replace(key, never) }, bearer("otherTenant"));
      expect(theirs.status, route.path).toBe(404);
      // Indistinguishable from a key nobody ever used: same status, same body but for the key itself.
      expect((await theirs.text()).replaceAll(key, "K")).toBe((await nobodys.text()).replaceAll(never, "K"));
    }
    const shared = { event_id: `shared-${key}`, event_type: "purchase", key, timestamp: new Date(Date.now() - 3_600_000).toISOString(), value: 7 };
    const post = (as: KeyName) =>
      target().fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json", ...bearer(as) }, body: JSON.stringify(shared) });
    const before = (await state(key, "all")).body.totals.events;
    expect((await post("all")).status).toBe(202);
    expect((await post("otherTenant")).status).toBe(202); // not a duplicate: another tenant's actor
    expect((await post("otherTenant")).status).toBe(200);
    const a = await state(key, "all");
    const b = await state(key, "otherTenant");
    expect(a.body.totals.events).toBe(before + 1);
    expect(b.body).toMatchObject({ key, totals: { events: 1, duplicates: 1 } });
    // The webhook sink receives both, each with its tenant and the client's key.
    const deadline = Date.now() + 30_000;
    const tenants = () =>
      [...receiver().received.values()].filter((r) => r.event_id === shared.event_id).map((r) => `${r.tenant}/${r.key}`).sort();
    while (tenants().length < 2 && Date.now() < deadline) await Bun.sleep(20);
    expect(tenants()).toEqual([`tenant-a/${key}`, `tenant-b/${key}`]);
  });

  test("public key: ingest from its origin only, never reads; CORS preflight and headers for that origin", async () => {
    const pub = newKey("pub");
    const body = JSON.stringify(eventFor(pub));
    const ingest = (headers: Record<string, string>) =>
      target().fetch("/v1/events", { method: "POST", headers: { "content-type": "application/json", ...bearer("public"), ...headers }, body });
    const noOrigin = await ingest({});
    expect(noOrigin.status).toBe(403);
    expect(((await noOrigin.json()) as any).error.code).toBe("origin_not_allowed");
    expect((await ingest({ origin: "https://evil.example" })).status).toBe(403);
    expect((await ingest({ origin: "https://shop.example.evil.example" })).status).toBe(403);
    expect((await state(pub)).status).toBe(404);
    const ok = await ingest({ origin: SHOP_ORIGIN });
    expect(ok.status).toBe(202);
    expect(ok.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);
    const read = await target().fetch(`/v1/actors/${pub}`, { headers: { ...bearer("public"), origin: SHOP_ORIGIN } });
    expect(read.status).toBe(403);
    expect(read.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN); // the page can read why
    const preflight = (origin: string) =>
      target().fetch("/v1/events", {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
      });
    const allowed = await preflight(SHOP_ORIGIN);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);
    expect(allowed.headers.get("access-control-allow-methods")).toContain("POST");
    expect(allowed.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    const refused = await preflight("https://evil.example");
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    const unauthorized = await target().fetch("/v1/events", { method: "POST", headers: { origin: SHOP_ORIGIN }, body });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("access-control-allow-origin")).toBe(SHOP_ORIGIN);
  });

  test("quotas: a tenant at its quota of keys is refused new keys (403, nothing applied), its keys still take events", async () => {
    const post = (k: string, id: string) =>
      target().fetch("/v1/events", {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer("fewKeys") },
        body: JSON.stringify({ event_id: id, event_type: "signup", key: k, timestamp: new Date(Date.now() - 3_600_000).toISOString() }),
      });
    const keys = [1, 2, 3, 4].map((i) => newKey(`quota${i}`));
    for (const k of keys.slice(0, 3)) expect((await post(k, "q1")).status, k).toBe(202);
    const refused = await post(keys[3]!, "q1");
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as any).error).toMatchObject({ code: "quota_exceeded", details: { quota: "keys", limit: 3, used: 3 } });
    expect((await target().fetch(`/v1/actors/${keys[3]}`, { headers: bearer("fewKeys") })).status).toBe(404);
    expect((await post(keys[0]!, "q2")).status).toBe(202);
    // Other tenants have no quota.
    expect((await state(newKey("unlimited"))).status).toBe(404);
  });

  test("quotas: a tenant over its quota of stored bytes is refused new events once its usage is counted (403 quota_exceeded)", async () => {
    const k = newKey("bytes");
    let n = 0;
    const post = (key: string) =>
      target().fetch("/v1/events", {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer("fewBytes") },
        body: JSON.stringify({ event_id: `b${++n}`, event_type: "signup", key, timestamp: new Date(Date.now() - 3_600_000).toISOString() }),
      });
    expect((await post(k)).status).toBe(202);
    // Usage is counted as it is stored: at the next checkpoint (self-hosted) or report (Workers).
    const deadline = Date.now() + 30_000;
    let last: Response;
    for (;;) {
      last = await post(k);
      if (last.status !== 202 || Date.now() > deadline) break;
      await Bun.sleep(50);
    }
    expect(last.status).toBe(403);
    const error = ((await last.json()) as any).error;
    expect(error).toMatchObject({ code: "quota_exceeded", details: { quota: "bytes", limit: 1 } });
    expect(error.details.used).toBeGreaterThan(1);
    expect((await post(newKey("bytes-new"))).status).toBe(403);
    const read = await target().fetch(`/v1/actors/${k}`, { headers: bearer("fewBytes") });
    expect(read.status).toBe(200); // reads go on
  });
}

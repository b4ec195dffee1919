/**
 * GET /openapi.json against the app it documents: the document is valid OpenAPI 3.1, names every
 * route the app serves with its errors, and real answers of the in-process app (successes and
 * errors) have a documented status, content type, required headers and a body its schema accepts.
 */
import { describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { Validator } from "@seriousme/openapi-schema-validator";
import type { z } from "zod";
import { createApp, routeOf } from "../../src/http/app.ts";
import { accessFor } from "../../src/http/access.ts";
import { apiRoutes } from "../../src/http/openapi.ts";
import type { RecordView } from "../../src/delivery/records.ts";
import type { RecordViewSchema } from "../../src/http/schemas.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { KeyflowMetrics } from "../../src/metrics/keyflow.ts";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { readSettings } from "../../src/settings/env.ts";
import type { Config } from "../../src/settings/config.ts";
import { fakeEnv } from "../support/fake-env.ts";
import { inProcessTarget } from "../support/targets.ts";
import { FakeSink } from "../support/fake-sink.ts";
import { bearer, QUOTA_ENV, TEST_KEY_LINES, type KeyName } from "../support/api-keys.ts";

// The sinks' record view lives in src/delivery; the documented schema must stay the same type.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const recordViewIsDocumented: Same<RecordView, z.infer<typeof RecordViewSchema>> = true;
void recordViewIsDocumented;

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const MIN = 60_000;
const PUBLIC = new URL("../../src/http/public/", import.meta.url);

/** The app as the self-hosted server builds it (keys, metrics, pages), on virtual time and a fake sink. */
function world(env: Record<string, string> = {}) {
  const fake = fakeEnv(T0);
  const settings = readSettings({ KEYFLOW_API_KEYS: TEST_KEY_LINES, KEYFLOW_WINDOWS: "1m", KEYFLOW_ALLOWED_LATENESS: "0s", KEYFLOW_MAX_BATCH_EVENTS: "50", ...QUOTA_ENV, ...env });
  const sink = new FakeSink("s");
  const config: Config = { ...settings.config, sinks: ["s"], maxBodyBytes: 64 * 1024 };
  const host = new ProcessHost({ store: new MemoryKvStore(), config, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [sink] });
  const readAsset = (path: string) => readFile(new URL(path, PUBLIC)).then((b) => new Uint8Array(b), () => null);
  const app = createApp({ backend: host, config, env: fake.env, host: "memory", access: accessFor(settings.auth, true), metrics: new KeyflowMetrics(), assets: readAsset });
  /** A request while virtual time runs (commits and deliveries wait on timers). */
  const request = async (path: string, init?: RequestInit) => {
    const pending = Promise.resolve(app.request(path, init));
    for (let i = 0; i < 40; i++) {
      fake.timers.advance(5);
      await Bun.sleep(0);
    }
    return pending;
  };
  return { app, config, sink, request, fake };
}

const json = (body: unknown, key: KeyName = "all") => ({ method: "POST", headers: { "content-type": "application/json", ...bearer(key) }, body: JSON.stringify(body) });
const ev = (id: string | null, key: string, ts: number, extra: Record<string, unknown> = {}) => ({ ...(id === null ? {} : { event_id: id }), event_type: "click", key, timestamp: ts, ...extra });

const { app, config, sink, request } = world();
const document = JSON.parse(await (await app.request("/openapi.json")).text());
const routes = apiRoutes(config);

/** The documented operation of a request: its path template and method. */
function operationOf(method: string, path: string) {
  for (const [template, item] of Object.entries(document.paths as Record<string, Record<string, any>>)) {
    const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    if (pattern.test(path) && item[method.toLowerCase()]) return { template, operation: item[method.toLowerCase()] };
  }
  return undefined;
}

/** Operations and statuses seen answered, to check every operation was exercised. */
const seen = new Map<string, Set<number>>();

/** Checks a real answer against the document: status, content type, required headers, body schema. */
async function conforms(method: string, path: string, res: Response, expectedStatus: number): Promise<any> {
  const what = `${method} ${path} → ${res.status}`;
  expect(res.status, what).toBe(expectedStatus);
  const found = operationOf(method, new URL(path, "http://x").pathname);
  expect(found, `${method} ${path} is not documented`).toBeDefined();
  const { template, operation } = found!;
  const op = `${method} ${template}`;
  seen.set(op, (seen.get(op) ?? new Set()).add(res.status));
  const documented = operation.responses[String(res.status)];
  expect(documented, `${what}: status not documented`).toBeDefined();
  const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
  expect(Object.keys(documented.content ?? {}), `${what}: content type`).toContain(type);
  for (const [name, ref] of Object.entries((documented.headers ?? {}) as Record<string, { $ref: string }>)) {
    const header = document.components.headers[ref.$ref.split("/").pop()!];
    if (header.required) expect(res.headers.get(name), `${what}: header ${name}`).not.toBeNull();
  }
  if (type !== "application/json") {
    await res.body?.cancel();
    return undefined;
  }
  const body = await res.json();
  const route = routes.find((r) => r.method === method.toLowerCase() && r.path === template)!;
  const schema = (route.responses as Record<number, any>)[res.status].content["application/json"].schema as z.ZodType;
  const parsed = schema.safeParse(body);
  expect(parsed.success ? [] : parsed.error.issues, `${what}: ${JSON.stringify(body).slice(0, 300)}`).toEqual([]);
  return body;
}

const call = async (method: string, path: string, status: number, init: RequestInit = {}) =>
  conforms(method, path, await request(path, { method, ...init }), status);
const get = (path: string, status: number, key?: KeyName, headers: Record<string, string> = {}) =>
  call("GET", path, status, { headers: { ...(key ? bearer(key) : {}), ...headers } });

describe("the document", () => {
  test("is valid OpenAPI 3.1", async () => {
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    expect(document.openapi).toBe("3.1.0");
  });

  test("is public, JSON, and the same on every request (built once); counted as its own route", async () => {
    const first = await app.request("/openapi.json");
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toStartWith("application/json");
    expect(await first.text()).toBe(await (await app.request("/openapi.json")).text());
    expect(routeOf("http://localhost/openapi.json?x=1")).toBe("/openapi.json");
  });

  test("the self-hosted server serves it, /docs and the reference's scripts with their content types", async () => {
    const target = inProcessTarget();
    try {
      for (const [path, type] of [["/openapi.json", "application/json"], ["/docs", "text/html"], ["/assets/docs.js", "text/javascript"], ["/assets/scalar.js", "text/javascript"]] as const) {
        const res = await target.fetch(path);
        expect(res.status, path).toBe(200);
        expect(res.headers.get("content-type"), path).toBe(`${type}; charset=utf-8`);
        if (path === "/docs") expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
        await res.arrayBuffer();
      }
    } finally {
      await target.stop();
    }
  });

  test("names every route the app serves, with its method; and serves nothing more", () => {
    const served = new Set(app.routes.filter((r) => r.method !== "ALL" && r.method !== "HEAD").map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`));
    const documented = new Set(Object.entries(document.paths as Record<string, object>).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`)));
    expect([...served].filter((r) => !documented.has(r))).toEqual([]);
    expect([...documented].filter((r) => !served.has(r))).toEqual([]);
  });

  test("every operation names its errors: auth errors where a key is needed, 404 for an actor, 400 where it takes a query", () => {
    for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(item)) {
        const name = `${method.toUpperCase()} ${path}`;
        const statuses = Object.keys(op.responses);
        const needsKey = op.security?.length && !op.security.some((s: object) => Object.keys(s).length === 0);
        if (needsKey) {
          expect(statuses, name).toEqual(expect.arrayContaining(["401", "403", "429", "500"]));
          const scope = Object.values(op.security[0])[0] as string[];
          expect(scope.length === 1 && ["ingest", "read", "admin", "metrics"].includes(scope[0]!), name).toBe(true);
          expect(op.responses["401"].headers, name).toHaveProperty("WWW-Authenticate");
        }
        if (path.startsWith("/v1/actors/") && !path.endsWith("/live")) expect(statuses, name).toContain("404");
        if (op.parameters?.some((p: any) => p.in === "query")) expect(statuses, name).toContain("400");
        // /ready's 503 is its verdict, not an error.
        for (const [status, response] of Object.entries(op.responses as Record<string, any>)) {
          if (path === "/ready") continue;
          if (status === "429" || status === "503") expect(response.headers, `${name} ${status}`).toHaveProperty("Retry-After");
          if (path.startsWith("/v1/") || path === "/metrics") expect(response.headers, `${name} ${status}`).toHaveProperty("x-request-id");
          if (Number(status) >= 400) expect(response.content["application/json"].schema.properties.error.properties.code.enum.length, `${name} ${status}`).toBeGreaterThan(0);
        }
        if (path.startsWith("/v1/") || path === "/metrics" || path === "/ready") {
          expect(op.parameters.map((p: any) => p.$ref), name).toEqual(expect.arrayContaining(["#/components/parameters/RequestId", "#/components/parameters/Traceparent"]));
        }
      }
    }
    const ingest = document.paths["/v1/events"].post;
    expect(Object.keys(ingest.requestBody.content)).toEqual(["application/json", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"]);
    expect(Object.keys(ingest.responses)).toEqual(["200", "202", "400", "401", "403", "413", "415", "429", "500", "503"]);
    const windows = document.paths["/v1/actors/{key}/windows"].get.parameters.filter((p: any) => p.in === "query").map((p: any) => p.name);
    expect(windows).toEqual(["size", "hop", "type", "from", "to", "limit"]);
    const replay = document.paths["/v1/actors/{key}/dlq/replay"].post.parameters.filter((p: any) => p.in === "query");
    expect(replay.map((p: any) => [p.name, p.schema.enum])).toEqual([["sink", ["s"]], ["ids", undefined]]);
    expect(document.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
    expect(document.components.schemas.Event.required).toEqual(["event_type"]);
  });
});

describe("real answers fit the document", () => {
  test("events: single, duplicate, assigned id, late, batch, NDJSON; and their errors", async () => {
    const one = await call("POST", "/v1/events", 202, json(ev("e-1", "k", T0 - 10 * MIN, { value: 2, properties: { amount: 3 } })));
    expect(one).toEqual({ status: "accepted", event_id: "e-1" });
    expect((await call("POST", "/v1/events", 200, json(ev("e-1", "k", T0 - 10 * MIN)))).status).toBe("duplicate");
    expect((await call("POST", "/v1/events", 202, json(ev(null, "k", T0 - 10 * MIN)))).id_assigned).toBe(true);
    await call("POST", "/v1/events", 202, json(ev("e-2", "k", T0 - 5 * MIN)));
    expect((await call("POST", "/v1/events", 202, json(ev("e-3", "k", T0 - 9.5 * MIN)))).late).toBe(true);
    sink.poison = (r) => r.kind === "event" && r.id === "poison";
    const batch = await call("POST", "/v1/events", 200, json([ev("b-1", "k", T0 - 4 * MIN), ev(null, "j", T0 - 4 * MIN), ev("poison", "k", T0 - 4 * MIN), { event_type: "BAD" }]));
    expect(batch).toMatchObject({ accepted: 3, rejected: [{ index: 3, error: { code: "invalid_event" } }], assigned_ids: [{ index: 1 }] });
    const ndjson = { method: "POST", headers: { "content-type": "application/x-ndjson", ...bearer("all") }, body: `${JSON.stringify(ev("n-1", "k", T0 - 4 * MIN))}\n{oops\n` };
    expect((await call("POST", "/v1/events", 200, ndjson)).rejected[0].error.code).toBe("malformed_json");

    const refused = async (status: number, code: string, init: RequestInit) => expect((await call("POST", "/v1/events", status, init)).error.code).toBe(code);
    await refused(400, "invalid_event", json(ev("x", "k", T0, { value: "NaN" })));
    await refused(400, "malformed_json", { ...json(null), body: "{" });
    await refused(400, "empty_batch", json([]));
    await refused(401, "unauthorized", { ...json(ev("x", "k", T0)), headers: { "content-type": "application/json" } });
    await refused(401, "unauthorized", { ...json(ev("x", "k", T0)), headers: { "content-type": "application/json", authorization: "Bearer kf_nope" } });
    await refused(403, "forbidden", json(ev("x", "k", T0), "read"));
    await refused(403, "origin_not_allowed", json(ev("x", "k", T0), "public"));
    for (const key of ["q1", "q2", "q3"]) await call("POST", "/v1/events", 202, json(ev(key, key, T0), "fewKeys"));
    await refused(403, "quota_exceeded", json(ev("q4", "q4", T0), "fewKeys"));
    await refused(413, "too_many_events", json(Array.from({ length: 51 }, (_, i) => ev(`m-${i}`, "k", T0))));
    await refused(413, "payload_too_large", json(ev("big", "k", T0, { properties: { text: "x".repeat(70_000) } })));
    await refused(415, "unsupported_media_type", { method: "POST", headers: { "content-type": "text/plain", ...bearer("all") }, body: "{}" });
  });

  test("over a rate limit: 429 with Retry-After; a request past the burst: 413", async () => {
    const limited = world({ KEYFLOW_RATE_LIMIT_KEY_EVENTS: "2/s", KEYFLOW_RATE_LIMIT_KEY_REQUESTS: "5/s" });
    const check = async (status: number, path: string, init: RequestInit) => conforms(init.method ?? "GET", path, await limited.request(path, init), status);
    await check(200, "/v1/events", json([ev("1", "k", T0), ev("2", "k", T0)]));
    expect((await check(429, "/v1/events", json(ev("3", "k", T0)))).error.code).toBe("rate_limited");
    expect((await check(413, "/v1/events", json([ev("4", "k", T0), ev("5", "k", T0), ev("6", "k", T0)]))).error.code).toBe("over_rate_limit_burst");
    for (let i = 0; i < 5; i++) await limited.app.request("/v1/actors/k", { headers: bearer("all") });
    expect((await check(429, "/v1/actors/k", { headers: bearer("all") })).error.code).toBe("rate_limited");
  });

  test("actor reads, delivery state, top keys, live view; and their errors", async () => {
    const actor = await get("/v1/actors/k", 200, "read");
    expect(actor.recently_closed_windows.length).toBeGreaterThan(0);
    expect((await get("/v1/actors/k/windows", 200, "read")).windows.some((w: any) => w.closed && w.by_type)).toBe(true);
    expect((await get(`/v1/actors/k/windows?size=1m&type=click&from=${T0 - 20 * MIN}&to=2026-11-21T10:00:00Z&limit=5`, 200, "read")).windows[0].type).toBe("click");
    expect((await get("/v1/actors/k/late", 200, "read")).late).toHaveLength(1);
    expect((await get("/v1/actors/k/alerts", 200, "read")).alerts).toEqual([]);
    expect((await get("/v1/actors/k/dlq", 200, "admin")).dead_letters).toMatchObject([{ sink: "s", record: { kind: "event", event_id: "poison" } }]);
    expect((await get("/v1/actors/k/outbox", 200, "admin")).sinks).toHaveLength(1);
    sink.poison = () => false;
    expect(await call("POST", "/v1/actors/k/dlq/replay?sink=s&ids=0", 200, { headers: bearer("admin") })).toEqual({ key: "k", replayed: 1 });
    expect((await get("/v1/top-keys?limit=2", 200, "read")).keys[0].key).toBe("k");
    await get("/v1/actors/k/live", 200, "read");

    for (const path of ["/v1/actors/nobody", "/v1/actors/nobody/windows", "/v1/actors/nobody/late", "/v1/actors/nobody/alerts"]) await get(path, 404, "read");
    for (const path of ["/v1/actors/nobody/dlq", "/v1/actors/nobody/outbox"]) await get(path, 404, "admin");
    await call("POST", "/v1/actors/nobody/dlq/replay", 404, { headers: bearer("admin") });
    for (const query of ["limit=0", "size=7m", "type=BAD", "from=yesterday", `from=${T0}&to=${T0 - 1}`]) await get(`/v1/actors/k/windows?${query}`, 400, "read");
    await call("POST", "/v1/actors/k/dlq/replay?sink=nope", 400, { headers: bearer("admin") });
    await call("POST", "/v1/actors/k/dlq/replay?ids=a", 400, { headers: bearer("admin") });
    await get("/v1/top-keys?limit=101", 400, "read");
    await get("/v1/actors/k/live", 400, "read", { "last-event-id": "not an id" });
    await get("/v1/actors/k", 401);
    await get("/v1/actors/k/dlq", 403, "read");
    await get("/v1/actors/k/outbox", 403, "ingest");
  });

  test("health, readiness, metrics, pages and their scripts", async () => {
    expect((await get("/health", 200)).status).toBe("ok");
    expect(await get("/ready", 200)).toEqual({ status: "ready" });
    expect((await get("/ready", 200, "metrics")).sinks).toHaveLength(1);
    await get("/metrics", 200, "metrics");
    await get("/metrics", 401);
    await get("/metrics", 403, "read");
    await get("/openapi.json", 200);
    for (const [path, type] of [["/docs", "text/html"], ["/dashboard", "text/html"], ["/assets/docs.js", "text/javascript"], ["/assets/scalar.js", "text/javascript"]]) {
      const res = await request(path!);
      expect(res.headers.get("content-type"), path).toStartWith(`${type}; charset=utf-8`);
      await conforms("GET", path!, res, 200);
    }
    await get("/assets/missing.js", 404);
  });

  test("every documented operation was answered here with a success", () => {
    const operations = Object.entries(document.paths as Record<string, object>).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));
    expect(operations.filter((op) => ![...(seen.get(op) ?? [])].some((s) => s < 300))).toEqual([]);
  });
});

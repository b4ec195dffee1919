import { Hono, type Context, type ErrorHandler, type NotFoundHandler } from "hono";
import { TrieRouter } from "hono/router/trie-router";
import type { Gateway } from "./gateway.ts";
import { uuidv7 } from "../ports/uuid.ts";
import type { Env } from "../ports/clock.ts";
import type { Config } from "../settings/config.ts";
import { parseDuration } from "../actor/duration.ts";
import { ApiError, errorBody, internalErrorResponse, type ErrorBody } from "./errors.ts";
import { BackpressureError } from "../actor/errors.ts";
import { QuotaError, UnavailableError, type IngestFailure } from "./gateway.ts";
import { EVENT_TYPE, normalizeEvent, parseIsoTimestamp, type Event } from "../actor/event.ts";
import { parseJson } from "./json.ts";
import { parseWindowShape, windowShapeName } from "../actor/window-shapes.ts";
import { specName } from "../actor/windows.ts";
import { readBodyText } from "./body.ts";
import { VERSION } from "../version.ts";
import { admitEvents, authorize, callerOf, corsFor, type Access, type Caller } from "./access.ts";
import type { Scope } from "../auth/api-keys.ts";
import type { KeyflowMetrics } from "../metrics/keyflow.ts";
import { requestIdOf, SILENT, type Logger } from "../logging/logger.ts";
import type { ErrorReporter } from "../reporting/reporter.ts";
import type { ChannelStatus } from "../delivery/channel.ts";
import { iso } from "../delivery/records.ts";
import { actorName, splitActorName } from "../actor/tenant.ts";
import { assetFile, assetResponse, PAGES, type ReadAsset } from "./assets.ts";
import type { z } from "zod";
import type * as S from "./schemas.ts";
import { DEFAULT_TOP_KEYS, DEFAULT_WINDOW_LIMIT, MAX_TOP_KEYS, MAX_WINDOW_LIMIT, NDJSON } from "./params.ts";
import { TopKeys } from "../metrics/top-keys.ts";

export interface AppOptions {
  backend: Gateway;
  config: Config;
  env: Env;
  /** Name of the host, reported by /health ("bun", "deno", "workers", "memory"). */
  host: string;
  /** Who may call which route (src/http/access.ts). */
  access: Access;
  /** Counted as requests pass and served at GET /metrics (the self-hosted server). */
  metrics?: KeyflowMetrics;
  /** A monotonic clock in ms for request durations (performance.now); the wall clock when absent. */
  elapsedMs?: () => number;
  /** One JSON line per request at info (KEYFLOW_LOG_LEVEL); none when absent. */
  logger?: Logger;
  /** Told of every unexpected error (a 500), with the request's tenant and correlation ID (Sentry). */
  reportError?: ErrorReporter;
  /** What GET /metrics serves when it is not `metrics` itself (Workers: the metrics hub's totals). */
  scrape?: () => Promise<string>;
  /** The packaged pages and scripts (src/http/public/); on Workers the platform serves them instead. */
  assets?: ReadAsset;
}

/** The HTTP API, identical on every host: the host supplies only the ActorBackend. */
export function createApp({ backend, config, env, host, access, metrics, elapsedMs, logger = SILENT, reportError, assets, scrape }: AppOptions): Hono {
  const app = new Hono();
  const startedAt = env.clock.now();
  const clockNow = () => env.clock.now();
  const caller = (c: Context, scope: Scope) => authorize(access, scope, c, clockNow);
  /** The actor a route's :key names, in the tenant of a caller with `scope`. */
  const actorOf = async (c: Context, scope: Scope) => actorName((await caller(c, scope)).tenant, c.req.param("key")!);
  /** Each tenant's busiest keys by accepted events, in this process (this isolate on Workers): approximate. */
  const topKeys = new TopKeys(startedAt);

  app.get("/health", (c) => {
    const runtime = backend.health?.();
    return c.json({ status: "ok", version: VERSION, host, uptime_s: Math.round((env.clock.now() - startedAt) / 1000), ...(runtime ? { runtime } : {}) });
  });

  // Built on the first request only: the generator is loaded then, not when a host starts.
  let openApi: Promise<string> | undefined;
  app.get("/openapi.json", async (c) => {
    openApi ??= import("./openapi.ts").then((m) => m.openApiDocument(config));
    return c.body(await openApi, 200, { "content-type": "application/json; charset=utf-8" });
  });

  const elapsed = elapsedMs ?? clockNow;

  app.get("/ready", async (c) => {
    const statuses = (await backend.sinkStatus?.()) ?? [];
    const now = clockNow();
    const sinks = statuses.map((s) => sinkReadiness(s, now));
    const down = sinks.some((s) => s.status === "down" && s.down_for_s * 1000 >= config.readySinkDownAfterMs);
    const body: Record<string, unknown> = { status: down ? "not_ready" : "ready" };
    // The sinks' errors are for operators: a caller without the metrics scope learns only the verdict.
    if (await mayRead(c)) body.sinks = sinks;
    return c.json(body, down ? 503 : 200);
  });
  const mayRead = async (c: Context) => {
    try {
      await caller(c, "metrics");
      return true;
    } catch {
      return false;
    }
  };

  if (metrics) {
    app.get("/metrics", async (c) => {
      await caller(c, "metrics");
      return c.body(scrape ? await scrape() : metrics.text(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
    });
  }

  if (assets) {
    // The pages themselves hold no data: they ask for a key and read the API with it.
    for (const [route, file] of PAGES) app.get(route, async (c) => (await assetResponse(assets, file)) ?? c.notFound());
    app.get("/assets/:name", async (c) => {
      const file = assetFile(c.req.param("name"));
      return (file && (await assetResponse(assets, file))) || c.notFound();
    });
  }

  app.post("/v1/events", async (c) => {
    const found = caller(c, "ingest");
    const who = found instanceof Promise ? await found : found;
    const startedMs = metrics ? elapsed() : 0;
    const contentType = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    const ndjson = NDJSON.has(contentType);
    if (!ndjson && contentType !== "application/json") {
      throw new ApiError(
        415,
        "unsupported_media_type",
        `Content-Type must be application/json or application/x-ndjson, got ${contentType ? `"${contentType}"` : "none"}`,
      );
    }
    const text = await readBodyText(c.req.raw, config.maxBodyBytes);
    const now = env.clock.now();
    const newId = () => uuidv7(env);
    if (!ndjson) {
      const parsed = parseJson(text);
      if (!parsed.ok) throw new ApiError(400, "malformed_json", `malformed JSON: ${parsed.error.message}`, parsed.error);
      if (!Array.isArray(parsed.value)) return ingestOne(c, who, parsed.value, now, newId, startedMs);
      return ingestBatch(c, who, parsed.value.map((raw) => ({ raw })), now, newId, startedMs);
    }
    const items = ndjsonItems(text);
    return ingestBatch(c, who, items, now, newId, startedMs);
  });

  async function ingestOne(c: Context, caller: Caller, raw: unknown, now: number, newId: () => string, startedMs: number) {
    const result = normalizeEvent(raw, config, now, newId);
    if (!result.ok) {
      if (metrics) {
        metrics.ingest(caller.tenant, (elapsed() - startedMs) / 1000, 1);
        metrics.event(caller.tenant, undefined, "rejected");
      }
      throw invalidEvent(result.problems);
    }
    admitEvents(access, caller, 1, now);
    result.event.key = actorName(caller.tenant, result.event.key);
    result.event.requestId = requestIds.get(c.req.raw);
    const [outcome] = await backend.ingest([result.event]);
    if (metrics) {
      metrics.ingest(caller.tenant, (elapsed() - startedMs) / 1000, 1);
      metrics.event(caller.tenant, result.event.type, outcome!.status === "failed" ? "rejected" : outcome!.status, outcome!.status !== "failed" && outcome!.late);
    }
    if (outcome!.status === "failed") throw outcome!.error;
    if (outcome!.status === "accepted") topKeys.of(caller.tenant)?.add(result.event.key);
    const body: IngestOneBody = { status: outcome!.status, event_id: result.event.id };
    if (result.event.assigned) body.id_assigned = true;
    if (outcome!.late) body.late = true;
    return c.json(body, outcome!.status === "accepted" ? 202 : 200);
  }

  async function ingestBatch(c: Context, caller: Caller, items: BatchItem[], now: number, newId: () => string, startedMs: number) {
    if (items.length === 0) throw new ApiError(400, "empty_batch", "the batch holds no events");
    if (items.length > config.maxBatchEvents) {
      throw new ApiError(413, "too_many_events", `a request may carry at most ${config.maxBatchEvents} events, got ${items.length}`);
    }
    const rejected: Array<{ index: number; error: ErrorBody }> = [];
    const events: Event[] = [];
    /** The batch index of each event in `events`. */
    const positions: number[] = [];
    const requestId = requestIds.get(c.req.raw);
    items.forEach((item, index) => {
      if (item.error) return void rejected.push({ index, error: item.error });
      const result = normalizeEvent(item.raw, config, now, newId);
      if (!result.ok) return void rejected.push({ index, error: invalidEvent(result.problems).body().error });
      result.event.key = actorName(caller.tenant, result.event.key);
      result.event.requestId = requestId;
      events.push(result.event);
      positions.push(index);
    });
    if (events.length) admitEvents(access, caller, events.length, now);
    const outcomes = events.length ? await backend.ingest(events) : [];
    const body: IngestBatchBody = { accepted: 0, duplicates: 0, late: 0, rejected };
    const assigned: Array<{ index: number; event_id: string }> = [];
    let failed: IngestFailure | undefined;
    const top = topKeys.of(caller.tenant);
    outcomes.forEach((outcome, n) => {
      const index = positions[n]!;
      if (outcome.status === "failed") {
        failed = outcome;
        return void rejected.push({ index, error: failureBody(outcome) });
      }
      if (outcome.status === "accepted") {
        body.accepted++;
        top?.add(events[n]!.key);
      } else body.duplicates++;
      if (outcome.late) body.late++;
      if (events[n]!.assigned) assigned.push({ index, event_id: events[n]!.id });
    });
    if (metrics) {
      metrics.ingest(caller.tenant, (elapsed() - startedMs) / 1000, items.length);
      for (let r = 0; r < items.length - events.length; r++) metrics.event(caller.tenant, undefined, "rejected");
      outcomes.forEach((o, n) => metrics.event(caller.tenant, events[n]!.type, o.status === "failed" ? "rejected" : o.status, o.status !== "failed" && o.late));
    }
    // Every event the host was given failed: the whole request answers as its failure did.
    if (failed && outcomes.every((o) => o.status === "failed")) throw failed.error;
    rejected.sort((a, b) => a.index - b.index);
    if (assigned.length) body.assigned_ids = assigned;
    return c.json(body, 200);
  }

  app.get("/v1/top-keys", async (c) => {
    const { tenant } = await caller(c, "read");
    const limit = topKeysLimit(c.req.query("limit"));
    const keys = topKeys.top(tenant, limit).map((k) => ({ key: splitActorName(k.key).key, events: k.count, error_bound: k.error }));
    return c.json({ keys, approximate: true, since: iso(topKeys.since) });
  });

  app.get("/v1/actors/:key", async (c) => {
    return c.json((await backend.state(await actorOf(c, "read"))) ?? notFound(c));
  });

  app.get("/v1/actors/:key/windows", async (c) => {
    const actor = await actorOf(c, "read");
    const windows = await backend.windows(actor, windowQuery(c, config));
    return c.json({ key: c.req.param("key"), windows: windows ?? notFound(c) });
  });

  app.get("/v1/actors/:key/alerts", async (c) => {
    const alerts = await backend.alerts(await actorOf(c, "read"));
    return c.json({ key: c.req.param("key"), alerts: alerts ?? notFound(c) });
  });

  app.get("/v1/actors/:key/late", async (c) => {
    const late = await backend.late(await actorOf(c, "read"));
    return c.json({ key: c.req.param("key"), late: late ?? notFound(c) });
  });

  /** Open live streams per tenant: a tenant past config.liveMaxStreams is refused more. */
  const liveStreams = new Map<string, number>();
  app.get("/v1/actors/:key/live", async (c) => {
    const who = await caller(c, "read");
    if (c.req.header("upgrade")?.toLowerCase() === "websocket") return liveSocket(c, who);
    if (!backend.live) throw new ApiError(501, "not_implemented", `live views are not available on the ${host} host`);
    const open = liveStreams.get(who.tenant) ?? 0;
    if (open >= config.liveMaxStreams) {
      throw new ApiError(429, "too_many_streams", `this tenant has ${open} live streams open, the most allowed (KEYFLOW_LIVE_MAX_STREAMS); close one first`, undefined, { "Retry-After": "5" });
    }
    const stream = await backend.live(actorName(who.tenant, c.req.param("key")), liveEventIdOf(c));
    liveStreams.set(who.tenant, open + 1);
    const release = () => {
      const left = (liveStreams.get(who.tenant) ?? 1) - 1;
      if (left > 0) liveStreams.set(who.tenant, left);
      else liveStreams.delete(who.tenant);
    };
    return new Response(counted(stream, release), {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no", "content-encoding": "identity" },
    });
  });

  /** Bounded per key by its object: the Worker does not see the socket close. */
  async function liveSocket(c: Context, who: Caller) {
    if (!backend.liveSocket) {
      throw new ApiError(400, "websocket_unsupported", `the ${host} host streams live views as server-sent events: request it without Upgrade: websocket`);
    }
    return backend.liveSocket(actorName(who.tenant, c.req.param("key")!), liveEventIdOf(c), c.req.raw);
  }

  app.get("/v1/actors/:key/dlq", async (c) => {
    const entries = await backend.deadLetters(await actorOf(c, "admin"));
    return c.json({ key: c.req.param("key"), dead_letters: entries ?? notFound(c) });
  });

  app.post("/v1/actors/:key/dlq/replay", async (c) => {
    const actor = await actorOf(c, "admin");
    const result = await backend.replay(actor, replayFilter(c, config));
    return c.json({ key: c.req.param("key"), ...(result ?? notFound(c)) });
  });

  app.get("/v1/actors/:key/outbox", async (c) => {
    return c.json((await backend.outbox(await actorOf(c, "admin"))) ?? notFound(c));
  });

  // 405 is worked out only for requests no route took, so matched requests pay nothing for it.
  const allowedMethods = routeMethods(app);
  const notFoundHandler: NotFoundHandler = (c) => {
    const methods = allowedMethods(c.req.path);
    if (methods.length && !methods.includes(c.req.method)) {
      const message = `${c.req.method} is not allowed on ${c.req.path}; use ${methods.join(", ")}`;
      return c.json({ error: errorBody("method_not_allowed", message) }, 405, { Allow: methods.join(", ") });
    }
    return c.json({ error: errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`) }, 404);
  };

  const errorHandler: ErrorHandler = (err, c) => {
    if (err instanceof ApiError) return c.json(err.body(), err.status, err.headers);
    if (err instanceof BackpressureError) {
      return c.json({ error: errorBody("backpressure", err.message, { key: splitActorName(err.key).key }) }, 429, {
        "Retry-After": String(err.retryAfterSeconds),
      });
    }
    if (err instanceof UnavailableError) return c.json({ error: errorBody(err.code, err.advice()) }, 503, { "Retry-After": "1" });
    if (err instanceof QuotaError) return c.json({ error: quotaBody(err) }, 403);
    if (reportError) {
      const request = c.req.raw;
      let waitUntil: ((p: Promise<unknown>) => void) | undefined;
      try {
        const ctx = c.executionCtx;
        waitUntil = (p) => ctx.waitUntil(p);
      } catch {
        // No execution context (self-hosted): the report goes out in the background.
      }
      reportError(err, { request, requestId: requestIds.get(request), tenant: callerOf(request)?.tenant, waitUntil });
    }
    return internalErrorResponse(err);
  };
  app.notFound(notFoundHandler);
  app.onError(errorHandler);
  return observed(withCors(app, access, notFoundHandler, errorHandler), metrics, logger, elapsed, () => uuidv7(env));
}

type SinkReadinessView = z.infer<typeof S.SinkReadinessViewSchema>;

function sinkReadiness(s: ChannelStatus, now: number): SinkReadinessView {
  const status = s.breaker !== "closed" ? "down" : s.failingSince !== null ? "degraded" : "ok";
  return {
    sink: s.sink,
    status,
    last_error: s.failingSince === null ? null : s.lastError,
    latency_ms: s.lastLatencyMs,
    failing_since: s.failingSince === null ? null : iso(s.failingSince),
    down_for_s: status === "down" && s.failingSince !== null ? Math.max(0, (now - s.failingSince) / 1000) : 0,
  };
}

/** Each request's correlation ID: carried by the events it brings, and told to what reports an error on it. */
const requestIds = new WeakMap<Request, string>();

/**
 * Every request gets a correlation ID (the client's x-request-id, its traceparent's trace id, or a
 * new one), returned in x-request-id; it is counted by route pattern, method and status, and logged
 * as one JSON line at info (no payloads, no credentials).
 */
function observed(app: Hono, metrics: KeyflowMetrics | undefined, logger: Logger, elapsed: () => number, newId: () => string): Hono {
  const inner = app.fetch;
  const logging = logger.enabled("info");
  app.fetch = async (request, env, ctx) => {
    const startedMs = elapsed();
    const requestId = requestIdOf(request.headers.get("x-request-id"), request.headers.get("traceparent"), newId);
    requestIds.set(request, requestId);
    const response = await inner(request, env, ctx);
    response.headers.set("x-request-id", requestId);
    if (metrics || logging) {
      const route = routeOf(request.url);
      const latencyMs = elapsed() - startedMs;
      metrics?.request(route, request.method, response.status, latencyMs / 1000);
      if (logging) {
        const tenant = callerOf(request)?.tenant;
        logger.info("request", { method: request.method, route, status: response.status, latency_ms: Math.round(latencyMs * 100) / 100, request_id: requestId, tenant });
      }
    }
    return response;
  };
  return app;
}

const ACTOR_ROUTES = new Map([["", "/v1/actors/:key"], ["/windows", "/v1/actors/:key/windows"], ["/late", "/v1/actors/:key/late"], ["/alerts", "/v1/actors/:key/alerts"], ["/dlq", "/v1/actors/:key/dlq"], ["/dlq/replay", "/v1/actors/:key/dlq/replay"], ["/outbox", "/v1/actors/:key/outbox"], ["/live", "/v1/actors/:key/live"]]);

/** The route pattern of a URL, for a metric label: never the key in it, and one label for anything unknown. */
export function routeOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const query = url.indexOf("?", start);
  const path = start < 0 ? "/" : url.slice(start, query < 0 ? undefined : query);
  if (path === "/v1/events" || path === "/v1/top-keys" || path === "/health" || path === "/metrics" || path === "/ready" || path === "/openapi.json" || PAGES.has(path)) return path;
  if (path.startsWith("/assets/")) return "/assets/:name";
  if (path.startsWith("/v1/actors/")) {
    const rest = path.slice("/v1/actors/".length);
    const slash = rest.indexOf("/");
    const route = ACTOR_ROUTES.get(slash < 0 ? "" : rest.slice(slash));
    if (route && slash !== 0 && rest.length) return route;
  }
  return "unmatched";
}

/**
 * The app as every host serves it: a request with an Origin header (a browser's) goes through the
 * same routes behind Hono's CORS middleware; any other goes straight to them, so that servers'
 * requests, most of the traffic, do not pay for a middleware layer they never use.
 */
function withCors(app: Hono, access: Access, notFound: NotFoundHandler, onError: ErrorHandler): Hono {
  const browser = new Hono();
  browser.use("*", corsFor(access));
  browser.route("/", app);
  browser.notFound(notFound);
  browser.onError(onError);
  const direct = app.fetch;
  app.fetch = (request, env, ctx) => (request.headers.has("origin") ? browser.fetch(request, env, ctx) : direct(request, env, ctx));
  return app;
}

/** The methods routed for a path (GET implies HEAD), from the app's own route table. */
function routeMethods(app: Hono): (path: string) => string[] {
  let router: TrieRouter<string[]> | undefined;
  return (path) => {
    if (!router) {
      const byPath = new Map<string, Set<string>>();
      for (const route of app.routes) {
        if (route.method === "ALL" || route.method === "HEAD") continue;
        const methods = byPath.get(route.path) ?? byPath.set(route.path, new Set()).get(route.path)!;
        methods.add(route.method);
        if (route.method === "GET") methods.add("HEAD");
      }
      router = new TrieRouter();
      for (const [routePath, methods] of byPath) router.add("ALL", routePath, [...methods]);
    }
    const found = new Set<string>();
    for (const [methods] of router.match("ALL", path)[0]) for (const m of methods as string[]) found.add(m);
    return [...found];
  };
}

/** What a live stream's IDs look like (src/live/sse.ts): an incarnation and a number. */
const LIVE_EVENT_ID = /^[a-z0-9-]{1,64}\.\d{1,15}$/;

/** The last live ID the client saw (Last-Event-ID, or ?last_event_id= where headers cannot be set), or null. */
function liveEventIdOf(c: Context): string | null {
  // An empty ID is the client's way to start afresh (as EventSource's spec has it).
  const id = c.req.header("last-event-id") || c.req.query("last_event_id") || null;
  if (id !== null && !LIVE_EVENT_ID.test(id)) {
    throw new ApiError(400, "invalid_query", "Last-Event-ID must be an ID this stream sent", [{ field: "last_event_id", message: "not a live event ID" }]);
  }
  return id;
}

/** `source`, calling `release` once when it ends, fails or is cancelled by the client. */
function counted(source: ReadableStream<Uint8Array>, release: () => void): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let released = false;
  const done = () => {
    if (!released) (released = true), release();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await reader.read();
        if (next.done) {
          done();
          controller.close();
        } else controller.enqueue(next.value);
      } catch (error) {
        done();
        controller.error(error);
      }
    },
    cancel(reason) {
      done();
      return reader.cancel(reason);
    },
  });
}

/** The body of a single event's answer. */
type IngestOneBody = z.infer<typeof S.IngestOneSchema>;

/** The body of a batch's answer: what happened to each event, by its index in the batch. */
type IngestBatchBody = z.infer<typeof S.IngestBatchSchema>;

/** A batch event the host could not take, as its entry in `rejected`. */
function failureBody({ error }: IngestFailure): ErrorBody {
  if (error instanceof BackpressureError) return errorBody("backpressure", error.message, { key: splitActorName(error.key).key, retry_after_s: error.retryAfterSeconds });
  if (error instanceof QuotaError) return quotaBody(error);
  return errorBody(error.code, error.advice(), { retryable: true });
}

function quotaBody(error: QuotaError): ErrorBody {
  return errorBody("quota_exceeded", error.message, { quota: error.quota, limit: error.limit, used: error.used });
}

type BatchItem = { raw: unknown; error?: undefined } | { raw?: undefined; error: ErrorBody };

/** One item per non-blank line; a malformed line is rejected on its own and does not fail its neighbours. */
function ndjsonItems(text: string): BatchItem[] {
  const items: BatchItem[] = [];
  let lineNo = 0;
  for (const line of text.split("\n")) {
    lineNo++;
    if (!line.trim()) continue;
    const parsed = parseJson(line);
    if (parsed.ok) items.push({ raw: parsed.value });
    else {
      const detail = { ...parsed.error, line: lineNo };
      items.push({ error: errorBody("malformed_json", `malformed JSON on line ${lineNo}: ${parsed.error.message}`, detail) });
    }
  }
  return items;
}

function invalidEvent(problems: Array<{ field: string; message: string }>): ApiError {
  const message = problems.map((p) => `${p.field} ${p.message}`).join("; ");
  return new ApiError(400, "invalid_event", message, problems);
}

function notFound(c: Context): never {
  throw new ApiError(404, "actor_not_found", `no events have been accepted for key ${JSON.stringify(c.req.param("key"))}`);
}

function parseTime(field: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ts = /^\d+$/.test(text) ? Number(text) : parseIsoTimestamp(text);
  if (ts === undefined) throw new ApiError(400, "invalid_query", `${field} must be ISO-8601 or epoch milliseconds`, [{ field, message: "not a time" }]);
  return ts;
}

function windowQuery(c: Context, config: Config) {
  const size = c.req.query("size");
  const hop = c.req.query("hop");
  const type = c.req.query("type");
  const limitText = c.req.query("limit");
  let spec: string | undefined;
  if (size !== undefined) {
    const [sizeText, hopText = hop] = size.split("/");
    const sizeMs = parseDuration(sizeText ?? "");
    const hopMs = hopText === undefined ? sizeMs : parseDuration(hopText);
    const shape = parseWindowShape(size);
    spec = sizeMs && hopMs ? specName(sizeMs, hopMs) : typeof shape === "string" ? size : windowShapeName(shape);
    // The key's windows, and the shapes keyflow.config.json gives types (sliding:10m, session:30m, …).
    const names = new Set(config.windows.map((w) => w.name));
    for (const t of config.analytics?.types.values() ?? []) for (const w of t.windows) names.add(windowShapeName(w));
    if (!names.has(spec)) {
      const known = [...names].join(", ");
      throw new ApiError(400, "invalid_query", `size ${JSON.stringify(spec)} is not a configured window; configured: ${known}`, [
        { field: "size", message: `must be one of ${known}` },
      ]);
    }
  }
  if (type !== undefined && !EVENT_TYPE.test(type)) {
    throw new ApiError(400, "invalid_query", "type must match [a-z0-9_.:-]{1,64}", [{ field: "type", message: "invalid event type" }]);
  }
  let limit = DEFAULT_WINDOW_LIMIT;
  if (limitText !== undefined) {
    limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_WINDOW_LIMIT) {
      throw new ApiError(400, "invalid_query", `limit must be an integer in 1..${MAX_WINDOW_LIMIT}`, [{ field: "limit", message: "out of range" }]);
    }
  }
  const from = parseTime("from", c.req.query("from"));
  const to = parseTime("to", c.req.query("to"));
  if (from !== undefined && to !== undefined && from >= to) {
    throw new ApiError(400, "invalid_query", "from must be before to", [{ field: "from", message: "must be before to" }]);
  }
  return { spec, type, from, to, limit };
}

function topKeysLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TOP_KEYS;
  const limit = Number(text);
  if (!/^\d+$/.test(text) || limit < 1 || limit > MAX_TOP_KEYS) {
    throw new ApiError(400, "invalid_query", `limit must be an integer in 1..${MAX_TOP_KEYS}`, [{ field: "limit", message: "out of range" }]);
  }
  return limit;
}

/** `?sink=redis` and/or `?ids=1,2,3` select what to replay; nothing selects every dead letter. */
function replayFilter(c: Context, config: Config): { sink?: string; ids?: number[] } {
  const sink = c.req.query("sink");
  const ids = c.req.query("ids");
  const filter: { sink?: string; ids?: number[] } = {};
  if (sink !== undefined) {
    if (!config.sinks.includes(sink)) {
      const known = config.sinks.join(", ") || "none";
      throw new ApiError(400, "invalid_query", `sink ${JSON.stringify(sink)} is not enabled; enabled: ${known}`, [
        { field: "sink", message: `must be one of ${known}` },
      ]);
    }
    filter.sink = sink;
  }
  if (ids !== undefined) {
    if (!/^\d+(,\d+)*$/.test(ids)) {
      throw new ApiError(400, "invalid_query", "ids must be comma-separated dead-letter ids", [{ field: "ids", message: "not a list of ids" }]);
    }
    filter.ids = ids.split(",").map(Number);
  }
  return filter;
}

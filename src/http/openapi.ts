import { createRoute, OpenAPIHono, type RouteConfig } from "@hono/zod-openapi";
import { z } from "zod";
import { EVENT_TYPE, wire } from "../actor/event.ts";
import type { Scope } from "../auth/api-keys.ts";
import type { Config } from "../settings/config.ts";
import { VERSION } from "../version.ts";
import { DEFAULT_TOP_KEYS, DEFAULT_WINDOW_LIMIT, MAX_TOP_KEYS, MAX_WINDOW_LIMIT, NDJSON } from "./params.ts";
import * as S from "./schemas.ts";

/**
 * The OpenAPI 3.1 document of the HTTP API (GET /openapi.json). The handlers in app.ts validate by
 * hand for speed, so the routes are only described here, with the schemas the code uses: the event
 * schema it validates with and the response schemas its views take their types from.
 * tests/unit/openapi.test.ts checks that every route is here and that real answers fit.
 */

const header = (name: string) => ({ $ref: `#/components/headers/${name}` });

/** A JSON answer; every answer carries the request's correlation ID. */
function json(description: string, schema: z.ZodType, headers: Record<string, { $ref: string }> = {}) {
  return { description, headers: { "x-request-id": header("RequestId"), ...headers }, content: { "application/json": { schema } } };
}

/** An error answer with the codes it may carry (the body is the same for every code). */
function error(description: string, codes: [string, ...string[]], headers: Record<string, { $ref: string }> = {}) {
  const schema = z.strictObject({ error: S.ErrorBodySchema.extend({ code: z.enum(codes) }) });
  return json(`${description} (${codes.join(", ")})`, schema, headers);
}

const INTERNAL = { 500: error("An unexpected error; reported with the request's x-request-id", ["internal"]) };

/** What `authorize` in access.ts may answer, for a route that needs a key. */
const AUTH_ERRORS = {
  401: error("No API key, or not a valid one", ["unauthorized", "auth_not_configured"], { "WWW-Authenticate": header("WWWAuthenticate") }),
  403: error("The key lacks the scope, or is a public key used from an origin it does not allow", ["forbidden", "origin_not_allowed"], {
    "WWW-Authenticate": header("WWWAuthenticate"),
  }),
  429: error("Over the request rate limit of the key or tenant: nothing was applied", ["rate_limited"], { "Retry-After": header("RetryAfter") }),
  ...INTERNAL,
};

const UNAVAILABLE = {
  503: error("Storage or the key's actor failed: retry (events already stored answer as duplicates)", ["storage_unavailable", "actor_unavailable"], {
    "Retry-After": header("RetryAfter"),
  }),
};

const NOT_FOUND = { 404: error("No event has been accepted for this key", ["actor_not_found"]) };
const INVALID_QUERY = { 400: error("A query parameter is not valid; details name it", ["invalid_query"]) };

const guarded = (scope: Scope) => ({
  security: [{ apiKey: [scope] }],
  description: `Needs an API key with the **${scope}** scope.`,
});

/** The correlation headers every operation takes (components.parameters). */
const parameters = [{ $ref: "#/components/parameters/RequestId" }, { $ref: "#/components/parameters/Traceparent" }];

const keyParam = z.object({
  key: z.string().min(1).max(256).meta({ description: "The actor key (URL-encoded).", example: "user-42" }),
});

const time = (what: string) => z.string().optional().meta({ description: `${what}: ISO-8601 or epoch milliseconds.` });

function actorRoute(method: "get" | "post", suffix: string, scope: Scope, extra: Omit<RouteConfig, "method" | "path" | "responses">, responses: RouteConfig["responses"]) {
  const { description = "", ...rest } = extra;
  const access = guarded(scope);
  return createRoute({
    method,
    path: `/v1/actors/{key}${suffix}`,
    tags: [scope === "admin" ? "Delivery" : "Actors"],
    ...rest,
    security: access.security,
    description: `${description} ${access.description}`.trim(),
    parameters,
    request: { params: keyParam, ...rest.request },
    responses: { ...AUTH_ERRORS, ...UNAVAILABLE, ...responses },
  });
}

const page = (path: string, name: string) =>
  createRoute({
    method: "get",
    path,
    tags: ["Pages"],
    summary: name,
    description: "A packaged page: it holds no data and reads the API with the key you give it.",
    security: [],
    responses: { 200: { description: "The page", content: { "text/html": { schema: z.string() } } } },
  });

const Event = wire.meta({ id: "Event", description: "One event. Fields not listed are ignored." });

/** Every route of the API, described; `config` gives the deployment's limits and sinks. */
export function apiRoutes(config: Config) {
  const ndjson = { schema: z.string().meta({ description: "One event (a JSON object) per line; blank lines are skipped, a malformed line is rejected alone." }) };
  const sinks = config.sinks.length ? z.enum(config.sinks as [string, ...string[]]) : z.string();
  return [
    createRoute({
      method: "post",
      path: "/v1/events",
      operationId: "ingestEvents",
      tags: ["Events"],
      summary: "Send events",
      description: `One event (a JSON object), a batch (a JSON array, up to ${config.maxBatchEvents} events), or NDJSON; at most ${config.maxBodyBytes} bytes. A batch is answered 200 with what happened to each event. ${guarded("ingest").description}`,
      security: guarded("ingest").security,
      parameters,
      request: {
        body: {
          required: true,
          content: {
            "application/json": { schema: z.union([Event, z.array(Event).min(1).max(config.maxBatchEvents)]), example: { event_id: "e-1", event_type: "purchase", key: "user-42", value: 12.5 } },
            ...Object.fromEntries([...NDJSON].map((type) => [type, ndjson])),
          },
        },
      },
      responses: {
        200: json("A batch's result; or, for one event, a duplicate of one already accepted", z.union([S.IngestBatchSchema, S.IngestOneSchema])),
        202: json("The event was accepted and is durable", S.IngestOneSchema),
        400: error("The event is not valid (details list each field's problem), the JSON is malformed, or the batch is empty", ["invalid_event", "malformed_json", "empty_batch"]),
        ...AUTH_ERRORS,
        403: error("The key lacks the ingest scope or its origin is not allowed, or the tenant is at its quota of keys or bytes", ["forbidden", "origin_not_allowed", "quota_exceeded"], {
          "WWW-Authenticate": header("WWWAuthenticate"),
        }),
        413: error("The body, the batch, or its events under the rate limit's burst, is too large", ["payload_too_large", "too_many_events", "over_rate_limit_burst"]),
        415: error("Content-Type is not JSON or NDJSON", ["unsupported_media_type"]),
        429: error("Over a rate limit, or the key's actor is behind its sinks: nothing was applied, retry after Retry-After seconds", ["rate_limited", "backpressure"], {
          "Retry-After": header("RetryAfter"),
        }),
        ...UNAVAILABLE,
      },
    }),
    createRoute({
      method: "get",
      path: "/v1/top-keys",
      operationId: "getTopKeys",
      tags: ["Actors"],
      summary: "The busiest keys",
      description: `The tenant's keys with the most accepted events, approximately (a Space-Saving sketch per process, or per isolate on Workers). ${guarded("read").description}`,
      security: guarded("read").security,
      parameters,
      request: {
        query: z.object({ limit: z.int().min(1).max(MAX_TOP_KEYS).default(DEFAULT_TOP_KEYS).optional() }),
      },
      responses: { 200: json("The busiest keys, busiest first", S.TopKeysSchema), ...INVALID_QUERY, ...AUTH_ERRORS },
    }),
    actorRoute("get", "", "read", { operationId: "getActor", summary: "An actor's state", description: "Totals, watermark, open and recently closed windows." }, {
      200: json("The actor", S.ActorViewSchema),
      ...NOT_FOUND,
    }),
    actorRoute(
      "get",
      "/windows",
      "read",
      {
        operationId: "getWindows",
        summary: "An actor's windows",
        description: `Open and retained closed windows, newest first. Configured windows: ${config.windows.map((w) => w.name).join(", ")}.`,
        request: {
          query: z.object({
            size: z.string().optional().meta({ description: 'A configured window: "1m", "5m/1m" (size/hop), "5m" with hop, or a shape keyflow.config.json gives a type: "sliding:10m", "session:30m".', example: "1m" }),
            hop: z.string().optional().meta({ description: "The hop of a hopping window, with size.", example: "1m" }),
            type: z.string().regex(EVENT_TYPE).optional().meta({ description: "Only this event type's aggregates." }),
            from: time("Windows ending after this"),
            to: time("Windows starting before this"),
            limit: z.int().min(1).max(MAX_WINDOW_LIMIT).default(DEFAULT_WINDOW_LIMIT).optional(),
          }),
        },
      },
      { 200: json("The windows", S.WindowsSchema), ...INVALID_QUERY, ...NOT_FOUND },
    ),
    actorRoute("get", "/alerts", "read", { operationId: "getAlerts", summary: "An actor's recent alerts", description: "The detection rules (keyflow.config.json) that fired on the key, oldest first: the last 1,000." }, {
      200: json("The recent alerts", S.AlertsSchema),
      ...NOT_FOUND,
    }),
    actorRoute("get", "/late", "read", { operationId: "getLateEvents", summary: "An actor's late events", description: "Events that arrived after their windows closed." }, {
      200: json("The late log", S.LateSchema),
      ...NOT_FOUND,
    }),
    actorRoute(
      "get",
      "/live",
      "read",
      {
        operationId: "getLive",
        summary: "An actor's live view (server-sent events)",
        description:
          "`event: event` for each accepted event and `event: window` for each window update and close, the data being the record as sinks get it. Resume with Last-Event-ID; `event: gap` when items were missed, `event: overflow` (and the stream ends) for a client too slow. On Workers, with `Upgrade: websocket`, the same as WebSocket frames `{\"id\",\"event\",\"data\"}`.",
        request: {
          headers: z.object({
            "last-event-id": z.string().optional().meta({ description: "The id of the last message seen, to resume after it." }),
            upgrade: z.literal("websocket").optional().meta({ description: "A WebSocket instead (Workers only)." }),
          }),
          query: z.object({ last_event_id: z.string().optional().meta({ description: "As Last-Event-ID, for clients that cannot set headers." }) }),
        },
      },
      {
        200: { description: "The stream", headers: { "x-request-id": header("RequestId") }, content: { "text/event-stream": { schema: z.string() } } },
        101: { description: "A WebSocket (Workers, with Upgrade: websocket)", headers: { "x-request-id": header("RequestId") } },
        400: error("Last-Event-ID is not an id this stream sent, or a WebSocket was asked of a host without them", ["invalid_query", "websocket_unsupported"]),
        429: error("Over a rate limit, or the tenant has its most live streams open", ["rate_limited", "too_many_streams"], { "Retry-After": header("RetryAfter") }),
        501: error("This host has no live views", ["not_implemented"]),
      },
    ),
    actorRoute("get", "/dlq", "admin", { operationId: "getDeadLetters", summary: "An actor's dead letters", description: "Records a sink refused for good." }, {
      200: json("The dead letters", S.DeadLettersSchema),
      ...NOT_FOUND,
    }),
    actorRoute(
      "post",
      "/dlq/replay",
      "admin",
      {
        operationId: "replayDeadLetters",
        summary: "Replay dead letters",
        description: "Puts dead letters back in the outbox of their sink: all of them, one sink's, and/or those with the given ids.",
        request: {
          query: z.object({
            sink: sinks.optional().meta({ description: "Only this sink's dead letters." }),
            ids: z.string().regex(/^\d+(,\d+)*$/).optional().meta({ description: "Comma-separated dead-letter ids.", example: "1,2,3" }),
          }),
        },
      },
      { 200: json("How many were replayed", S.ReplaySchema), ...INVALID_QUERY, ...NOT_FOUND },
    ),
    actorRoute("get", "/outbox", "admin", { operationId: "getOutbox", summary: "An actor's delivery state", description: "Backlog per sink, dead letters, and the sink channels." }, {
      200: json("The outbox", S.OutboxViewSchema),
      ...NOT_FOUND,
    }),
    createRoute({
      method: "get",
      path: "/health",
      operationId: "getHealth",
      tags: ["Operations"],
      summary: "Liveness",
      security: [],
      responses: { 200: json("The server is up", S.HealthSchema) },
    }),
    createRoute({
      method: "get",
      path: "/ready",
      operationId: "getReady",
      tags: ["Operations"],
      summary: "Readiness",
      description: `Not ready when a sink has been down for ${config.readySinkDownAfterMs / 1000} s. Open to all; a key with the **metrics** scope also sees each sink's status.`,
      security: [{}, { apiKey: ["metrics"] }],
      parameters,
      responses: { 200: json("Ready", S.ReadySchema), 503: json("Not ready: a sink is down", S.ReadySchema), ...INTERNAL },
    }),
    createRoute({
      method: "get",
      path: "/metrics",
      operationId: "getMetrics",
      tags: ["Operations"],
      summary: "Prometheus metrics",
      description: `Served when metrics are on. ${guarded("metrics").description}`,
      security: guarded("metrics").security,
      parameters,
      responses: {
        200: { description: "Prometheus text format", headers: { "x-request-id": header("RequestId") }, content: { "text/plain": { schema: z.string() } } },
        ...AUTH_ERRORS,
      },
    }),
    createRoute({
      method: "get",
      path: "/openapi.json",
      operationId: "getOpenApi",
      tags: ["Pages"],
      summary: "This document",
      security: [],
      responses: { 200: json("The OpenAPI 3.1 document", z.record(z.string(), z.unknown())) },
    }),
    page("/docs", "API reference"),
    page("/dashboard", "Dashboard"),
    createRoute({
      method: "get",
      path: "/assets/{name}",
      operationId: "getAsset",
      tags: ["Pages"],
      summary: "A script or style of the pages",
      security: [],
      request: { params: z.object({ name: z.string().meta({ example: "docs.js" }) }) },
      responses: {
        200: { description: "The file", content: { "text/javascript": { schema: z.string() }, "text/css": { schema: z.string() } } },
        404: error("No such file", ["not_found"]),
      },
    }),
  ];
}

/** The document, as JSON text. */
export function openApiDocument(config: Config): string {
  const app = new OpenAPIHono();
  const registry = app.openAPIRegistry;
  registry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "An API key (`npm run keys -- create`). A key belongs to one tenant and has scopes: ingest, read, admin, metrics.",
  });
  registry.registerComponent("parameters", "RequestId", {
    name: "x-request-id",
    in: "header",
    description: "Your correlation ID (1-128 printable ASCII characters; otherwise ignored): returned in x-request-id, logged, and carried into the sink records of the events. One is made when absent.",
    schema: { type: "string", maxLength: 128 },
  });
  registry.registerComponent("parameters", "Traceparent", {
    name: "traceparent",
    in: "header",
    description: "W3C trace context: without x-request-id, its trace id becomes the correlation ID.",
    schema: { type: "string" },
  });
  registry.registerComponent("headers", "RequestId", {
    description: "The request's correlation ID: the client's x-request-id, its traceparent's trace id, or a new one.",
    required: true,
    schema: { type: "string" },
  });
  registry.registerComponent("headers", "RetryAfter", { description: "Seconds to wait before retrying.", required: true, schema: { type: "integer", minimum: 1 } });
  registry.registerComponent("headers", "WWWAuthenticate", { description: 'The Bearer challenge (RFC 6750): realm="keyflow", and error and scope when a key was refused.', schema: { type: "string" } });
  for (const route of apiRoutes(config)) registry.registerPath(route);
  const document = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "keyflow",
      version: VERSION,
      description: [
        "An event-stream actor runtime: events are routed by key to actors that keep windowed aggregates and deliver records to sinks.",
        "Errors are JSON: `{\"error\": {\"code\", \"message\", \"details\"?}}`; switch on `code`. A method a path does not serve is answered 405 with Allow.",
        "Browsers are served CORS for the origins API keys allow. Every answer carries `x-request-id`.",
      ].join("\n\n"),
    },
    tags: [
      { name: "Events", description: "Sending events" },
      { name: "Actors", description: "Reading what the actors computed" },
      { name: "Delivery", description: "Sink delivery: outbox and dead letters" },
      { name: "Operations", description: "Health, readiness and metrics" },
      { name: "Pages", description: "The packaged pages and this document" },
    ],
  });
  return JSON.stringify(document);
}

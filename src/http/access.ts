import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { originAllowed, type ApiKey, type Scope } from "../auth/api-keys.ts";
import { isLoopback, type AuthSettings } from "../auth/settings.ts";
import { KeyRing, webCryptoSha256, type Sha256 } from "../auth/key-ring.ts";
import { DEFAULT_TENANT } from "../actor/tenant.ts";
import { ApiError } from "./errors.ts";
import { RateLimits, type LimitCheck } from "../auth/rate-limits.ts";

/**
 * Who may do what. "keys": every route but /health needs a key with the route's scope.
 * "open": no keys asked (KEYFLOW_AUTH=off, or a self-hosted server on loopback without keys).
 * "unconfigured": a Worker without keys: closed, except to requests made on this machine (wrangler dev).
 */
export type Access = ({ mode: "keys"; ring: KeyRing } | { mode: "open" | "unconfigured" }) & {
  corsOrigins: string[];
  limits: RateLimits;
  /** Workers: the platform's rate limiting binding, asked per API key (coarse, per location); false = over. */
  platformLimit?: PlatformLimit;
};

/** A limiter outside the process (the Workers rate limiting binding): whether this key may make one more request. */
export type PlatformLimit = (keyId: string) => Promise<boolean>;

/** How long a client refused by the platform limiter waits: the binding's shortest period, 10 s. */
const PLATFORM_RETRY_AFTER_S = 10;

/** No keys asked: tests of other layers, and a server run open on purpose. */
export const OPEN_ACCESS: Access = { mode: "open", corsOrigins: [], limits: new RateLimits({}) };

export function accessFor(auth: AuthSettings, openWithoutKeys: boolean, sha256: Sha256 = webCryptoSha256, platformLimit?: PlatformLimit): Access {
  const common = { corsOrigins: auth.corsOrigins, limits: new RateLimits(auth.rateLimits), platformLimit };
  if (auth.off) return { mode: "open", ...common };
  if (auth.keys.length) return { mode: "keys", ring: new KeyRing(auth.keys, sha256), ...common };
  return { mode: openWithoutKeys ? "open" : "unconfigured", ...common };
}

/** What a guarded route knows of its caller. */
export interface Caller {
  tenant: string;
  key?: ApiKey;
}

const OPEN: Caller = { tenant: DEFAULT_TENANT };
const BEARER = /^bearer +(.*)$/i;
const REALM = 'Bearer realm="keyflow"';

/**
 * Who calls a route that needs `scope`: authenticates, checks scope and origin, admits the request
 * under the request-rate limits; throws the ApiError that answers otherwise. A plain call at the
 * start of each handler rather than a Hono middleware: a route with one handler takes Hono's fast
 * path, and an extra layer costs a single event several microseconds. Synchronous unless the key
 * ring hashes with WebCrypto or the platform limiter is asked.
 */
export function authorize(access: Access, scope: Scope, c: Context, now: () => number): Caller | Promise<Caller> {
  const found = caller(access, scope, c);
  if (found instanceof Promise) return found.then((who) => admitRequest(access, remember(c, who), now));
  return admitRequest(access, remember(c, found), now);
}

/** Who made a request, once authorized (for its log line). */
const callers = new WeakMap<Request, Caller>();

export function callerOf(request: Request): Caller | undefined {
  return callers.get(request);
}

function remember(c: Context, who: Caller): Caller {
  callers.set(c.req.raw, who);
  return who;
}

function admitRequest(access: Access, who: Caller, now: () => number): Caller | Promise<Caller> {
  if (access.limits.enabled) throwIfLimited(access.limits.requests(who.key?.id, who.tenant, now()));
  if (!access.platformLimit || !who.key) return who;
  return access.platformLimit(who.key.id).then((allowed) => {
    if (!allowed) throwIfLimited({ ok: false, retryAfterMs: PLATFORM_RETRY_AFTER_S * 1000, limit: "requests per API key (the Workers rate limiting binding KEYFLOW_RATE_LIMITER)" });
    return who;
  });
}

/** Admits `count` events of the caller under the event-rate limits, or throws 429 (413 for more than a burst). */
export function admitEvents(access: Access, who: Caller, count: number, now: number): void {
  if (access.limits.enabled) throwIfLimited(access.limits.events(who.key?.id, who.tenant, count, now));
}

function throwIfLimited(check: LimitCheck): void {
  if (check.ok) return;
  if ("tooLarge" in check) {
    throw new ApiError(413, "over_rate_limit_burst", `this request's events exceed the burst of ${check.burst} ${check.limit}: send smaller batches`, {
      limit: check.limit,
      burst: check.burst,
    });
  }
  const seconds = Math.max(1, Math.ceil(check.retryAfterMs / 1000));
  throw new ApiError(429, "rate_limited", `over the limit of ${check.limit}; nothing of this request was applied: retry after ${seconds} s`, { limit: check.limit, retry_after_s: seconds }, {
    "Retry-After": String(seconds),
  });
}

/** The caller, or an ApiError; synchronous unless the key ring hashes asynchronously (WebCrypto). */
function caller(access: Access, scope: Scope, c: Context): Caller | Promise<Caller> {
  if (access.mode !== "keys") {
    if (access.mode === "open" || isLoopback(new URL(c.req.url).hostname)) return OPEN;
    throw new ApiError(
      401,
      "auth_not_configured",
      "no API keys are configured, so this deployment refuses every request: set KEYFLOW_API_KEYS (npx wrangler secret put KEYFLOW_API_KEYS; npm run keys -- create makes a key), or KEYFLOW_AUTH=off to run it open on purpose",
      undefined,
      { "WWW-Authenticate": REALM },
    );
  }
  const header = c.req.header("authorization");
  const token = header === undefined ? undefined : BEARER.exec(header)?.[1]?.trim();
  if (!token) {
    const message = header === undefined ? "an API key is required: send Authorization: Bearer <key>" : "the Authorization header must be Bearer <key>";
    throw new ApiError(401, "unauthorized", message, undefined, { "WWW-Authenticate": REALM });
  }
  const key = access.ring.find(token);
  return key instanceof Promise ? key.then((k) => permitted(k, scope, c)) : permitted(key, scope, c);
}

/** What a found (or not found) key may do here. */
function permitted(key: ApiKey | undefined, scope: Scope, c: Context): Caller {
  if (!key) throw new ApiError(401, "unauthorized", "the API key is not valid", undefined, { "WWW-Authenticate": `${REALM}, error="invalid_token"` });
  if (!key.scopes.has(scope)) {
    throw new ApiError(403, "forbidden", `this API key (${key.id}) does not have the ${scope} scope`, { scope }, {
      "WWW-Authenticate": `${REALM}, error="insufficient_scope", scope="${scope}"`,
    });
  }
  if (key.origins) {
    const origin = c.req.header("origin");
    if (origin === undefined || !originAllowed(key.origins, origin)) {
      const what = origin === undefined ? "a request without an Origin header" : "this origin";
      throw new ApiError(403, "origin_not_allowed", `this public API key (${key.id}) may not be used from ${what}`);
    }
  }
  return { tenant: key.tenant, key };
}

/**
 * CORS for browsers, with Hono's middleware: a preflight carries no key, so it is answered for
 * every origin some key allows (and KEYFLOW_CORS_ORIGINS); the key itself is checked on the
 * request that follows. The app sends only requests with an Origin header through it.
 */
export function corsFor(access: Access): MiddlewareHandler {
  const listed = new Set([...(access.mode === "keys" ? access.ring.origins() : []), ...access.corsOrigins]);
  const any = listed.has("*") || (access.mode === "open" && listed.size === 0);
  const patterns = [...listed];
  const middleware = cors({
    origin: any ? "*" : (origin) => (originAllowed(patterns, origin) ? origin : null),
    allowMethods: ["GET", "HEAD", "POST"],
    allowHeaders: ["Authorization", "Content-Type"],
    exposeHeaders: ["Retry-After", "WWW-Authenticate"],
    maxAge: 7200,
  });
  return middleware;
}

import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { originAllowed, type ApiKey, type Scope } from "../auth/api-keys.ts";
import { isLoopback, type AuthSettings } from "../auth/settings.ts";
import { KeyRing, webCryptoSha256, type Sha256 } from "../auth/key-ring.ts";
import { DEFAULT_TENANT } from "../actor/tenant.ts";
import { ApiError } from "./errors.ts";

/**
 * Who may do what. "keys": every route but /health needs a key with the route's scope.
 * "open": no keys asked (KEYFLOW_AUTH=off, or a self-hosted server on loopback without keys).
 * "unconfigured": a Worker without keys: closed, except to requests made on this machine (wrangler dev).
 */
export type Access = { mode: "keys"; ring: KeyRing; corsOrigins: string[] } | { mode: "open" | "unconfigured"; corsOrigins: string[] };

/** No keys asked: tests of other layers, and a server run open on purpose. */
export const OPEN_ACCESS: Access = { mode: "open", corsOrigins: [] };

export function accessFor(auth: AuthSettings, openWithoutKeys: boolean, sha256: Sha256 = webCryptoSha256): Access {
  if (auth.off) return { mode: "open", corsOrigins: auth.corsOrigins };
  if (auth.keys.length) return { mode: "keys", ring: new KeyRing(auth.keys, sha256), corsOrigins: auth.corsOrigins };
  return { mode: openWithoutKeys ? "open" : "unconfigured", corsOrigins: auth.corsOrigins };
}

/** What a guarded route knows of its caller. */
export interface Caller {
  tenant: string;
  key?: ApiKey;
}

export type AppEnv = { Variables: { caller: Caller } };

const OPEN: Caller = { tenant: DEFAULT_TENANT };
const BEARER = /^bearer +(.*)$/i;
const REALM = 'Bearer realm="keyflow"';

/** The middleware of a route that needs `scope`: authenticates, checks scope and origin, sets the caller. */
export function guard(access: Access, scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("caller", await caller(access, scope, c));
    await next();
  };
}

async function caller(access: Access, scope: Scope, c: Context): Promise<Caller> {
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
  const key = await access.ring.find(token);
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
 * request that follows. Requests without an Origin header (servers) skip it.
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
  return (c, next) => (c.req.header("origin") === undefined ? next() : middleware(c, next));
}

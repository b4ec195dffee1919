import { Toucan } from "toucan-js";

import type { ErrorReporter } from "./types.ts";

/**
 * Sentry through toucan-js, which is built on fetch and so serves Workers, Bun and Deno alike. A
 * client per report (toucan keeps request scope in the instance, so reports never share state).
 * Only the method, origin and path of the request are sent: no headers, query, body or payload.
 */
export function sentryReporter(dsn: string, environment: string, release: string): ErrorReporter {
  return (error, { request, requestId, tenant, waitUntil }) => {
    const pending: Array<Promise<unknown>> = [];
    const context = { waitUntil: (p: Promise<unknown>) => void (waitUntil ? waitUntil(p) : pending.push(p)), request };
    const sentry = new Toucan({ dsn, context, request, environment, release, requestDataOptions: { allowedHeaders: false, allowedCookies: false, allowedSearchParams: false, allowedIps: false } });
    if (tenant) sentry.setTag("tenant", tenant);
    if (requestId) sentry.setTag("request_id", requestId);
    sentry.captureException(error);
    // Self-hosted, nothing ends the request's life: the report is sent in the background.
    for (const p of pending) void p.catch(() => undefined);
  };
}

import { internalErrorResponse } from "../http/errors.ts";

type Fetch = (request: Request) => Response | Promise<Response>;

/**
 * Bun hands a handler a relative URL ("/health") for an HTTP/1.0 request without a Host header;
 * the app routes on absolute URLs, so such a request gets one (its host does not matter to routing).
 */
function absoluteUrls(fetch: Fetch): Fetch {
  return (request) => (request.url.charCodeAt(0) === 47 ? fetch(new Request(`http://localhost${request.url}`, request)) : fetch(request));
}

/**
 * Bun.serve options for keyflow: never Bun's development error page (it shows source code and
 * paths), in any mode; an error that escapes the app is a plain JSON 500.
 */
export function bunServeOptions(hostname: string, port: number, fetch: Fetch) {
  return { hostname, port, fetch: absoluteUrls(fetch), development: false, error: internalErrorResponse } as const;
}

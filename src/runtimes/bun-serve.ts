import { internalErrorResponse } from "./internal-error.ts";

/**
 * Bun.serve options for keyflow: never Bun's development error page (it shows source code and
 * paths), in any mode; an error that escapes the app is a plain JSON 500.
 */
export function bunServeOptions(hostname: string, port: number, fetch: (request: Request) => Response | Promise<Response>) {
  return { hostname, port, fetch, development: false, error: internalErrorResponse } as const;
}

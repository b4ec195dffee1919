import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import type { ErrorBodySchema } from "./schemas.ts";

export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** An error a client caused or can act on; rendered as {"error":{code,message,details}}. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }

  body(): { error: ErrorBody } {
    return { error: errorBody(this.code, this.message, this.details) };
  }
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return details === undefined ? { code, message } : { code, message, details };
}

/** The answer to an error that escaped the app, on every host: JSON, nothing of the error itself (that goes to the log). */
export function internalErrorResponse(error: unknown): Response {
  console.error("keyflow: unhandled error", error);
  return Response.json({ error: errorBody("internal", "internal error") }, { status: 500 });
}

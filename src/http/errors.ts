import type { ContentfulStatusCode } from "hono/utils/http-status";

export interface FieldProblem {
  field: string;
  message: string;
}

export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

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

/** A host could not do its part (storage, an actor); nothing of the request was acknowledged, a retry is safe. */
export class UnavailableError extends Error {
  override name = "UnavailableError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Storage could not commit. */
export class StorageError extends UnavailableError {
  override name = "StorageError";
  constructor(message: string) {
    super("storage_unavailable", message);
  }
}

/** An actor's outbox is over its bound: the client should slow down; nothing was accepted. */
export class BackpressureError extends Error {
  override name = "BackpressureError";
  constructor(
    readonly key: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`the sinks of key ${JSON.stringify(key)} are behind; retry after ${retryAfterSeconds} s`);
  }
}

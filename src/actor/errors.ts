import { splitActorName } from "./tenant.ts";
/** How long a client told to slow down waits before it retries (Retry-After). */
export const BACKPRESSURE_RETRY_AFTER_SECONDS = 1;

/** An actor's outbox is over its bound: the client should slow down; nothing was accepted. */
export class BackpressureError extends Error {
  override name = "BackpressureError";
  constructor(
    readonly key: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`the sinks of key ${JSON.stringify(splitActorName(key).key)} are behind; retry after ${retryAfterSeconds} s`);
  }
}

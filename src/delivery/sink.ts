import type { OutboxRecord } from "../actor/outbox.ts";

/** A downstream system. deliver() must be idempotent per record: redelivery leaves no second effect. */
export interface Sink {
  readonly name: string;
  deliver(records: OutboxRecord[]): Promise<void>;
  close?(): Promise<void>;
}

/**
 * A delivery failure. Transient (timeouts, 5xx, 429, connection errors): retried with backoff.
 * Permanent (the sink rejects the payload): dead-lettered at once. Too large (the request exceeds a
 * size limit of the sink: HTTP 413, Kafka's message.max.bytes): the batch is split and sent again,
 * and only a record too large on its own is dead-lettered. `index`, when known, is the first record
 * that failed; the records before it were delivered.
 */
export class SinkError extends Error {
  override name = "SinkError";
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly index?: number,
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

/** Words a sink uses to say a request or record exceeds its size limit (Kafka, REST proxies, HTTP). */
export const TOO_LARGE = /too large|larger than|exceeds the maximum|max(imum)?[ ._-]request[ ._-]size|message[._]max[._]bytes/i;

export function classify(error: unknown): SinkError {
  if (error instanceof SinkError) return error;
  return new SinkError((error as Error)?.message ?? String(error), false);
}

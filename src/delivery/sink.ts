import type { OutboxRecord } from "../actor/outbox.ts";

/** A downstream system. deliver() must be idempotent per record: redelivery leaves no second effect. */
export interface Sink {
  readonly name: string;
  deliver(records: OutboxRecord[]): Promise<void>;
  close?(): Promise<void>;
}

/**
 * A delivery failure. Transient (timeouts, 5xx, 429, connection errors): retried with backoff.
 * Permanent (the sink rejects the payload): dead-lettered at once. `index`, when known, is the first
 * record that failed; the records before it were delivered.
 */
export class SinkError extends Error {
  override name = "SinkError";
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly index?: number,
  ) {
    super(message);
  }
}

export function classify(error: unknown): SinkError {
  if (error instanceof SinkError) return error;
  return new SinkError((error as Error)?.message ?? String(error), false);
}

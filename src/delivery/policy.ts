/** How one sink's records are sent: batch size, retries, backoff and circuit breaker. */
export interface DeliveryPolicy {
  /** Records per request to a sink when it keeps up; a backlog doubles it batch by batch, up to maxBatchSize. */
  batchSize: number;
  maxBatchSize: number;
  /** Self-hosted: batches in flight to one sink at once (each key's records in one of them at a time). */
  maxInFlight: number;
  /** How long a record may keep failing transiently before it is dead-lettered. */
  retryBudgetMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
}

export const DEFAULT_DELIVERY_POLICY: DeliveryPolicy = {
  batchSize: 500,
  maxBatchSize: 5_000,
  maxInFlight: 2,
  retryBudgetMs: 3_600_000,
  backoffBaseMs: 100,
  backoffMaxMs: 30_000,
  breakerThreshold: 5,
  breakerCooldownMs: 5_000,
};

/** How one sink's records are sent: batch size, retries, backoff and circuit breaker. */
export interface DeliveryPolicy {
  batchSize: number;
  /** How long a record may keep failing transiently before it is dead-lettered. */
  retryBudgetMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
}

export const DEFAULT_DELIVERY_POLICY: DeliveryPolicy = {
  batchSize: 500,
  retryBudgetMs: 3_600_000,
  backoffBaseMs: 100,
  backoffMaxMs: 30_000,
  breakerThreshold: 5,
  breakerCooldownMs: 5_000,
};

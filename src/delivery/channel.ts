import type { Random } from "../ports/clock.ts";
import type { OutboxRecord } from "../actor/outbox.ts";
import type { DeliveryPolicy } from "./policy.ts";
import { classify, type Sink, type SinkError } from "./sink.ts";

export type Outcome = { status: "delivered" } | { status: "dead"; error: string; attempts: number } | { status: "pending" };

// Shared, never mutated: a batch of thousands of records allocates no outcome per record.
const PENDING: Outcome = Object.freeze({ status: "pending" });
const DELIVERED: Outcome = Object.freeze({ status: "delivered" });

/** Opens after `threshold` consecutive transient failures; after `cooldownMs` lets one probe through. */
export class CircuitBreaker {
  state: "closed" | "open" | "half_open" = "closed";
  private failures = 0;
  private openedAt = 0;
  readonly stats = { opened: 0, closed: 0 };

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
  ) {}

  /** Earliest time a delivery may be tried. */
  readyAt(): number {
    return this.state === "open" ? this.openedAt + this.cooldownMs : 0;
  }

  beforeAttempt(now: number): boolean {
    if (this.state === "open" && now >= this.openedAt + this.cooldownMs) this.state = "half_open";
    return this.state !== "open";
  }

  success(): void {
    if (this.state !== "closed") this.stats.closed++;
    this.state = "closed";
    this.failures = 0;
  }

  failure(now: number): void {
    this.failures++;
    if (this.state === "half_open" || (this.state === "closed" && this.failures >= this.threshold)) {
      if (this.state === "closed") this.stats.opened++;
      this.state = "open";
      this.openedAt = now;
    }
  }
}

/**
 * One sink's delivery state in one scope (a whole host, or one Durable Object): circuit breaker,
 * exponential backoff with full jitter, retry budget, bisection to find the poison record in a
 * batch the sink rejects as a whole, and splitting of a batch the sink finds too large.
 */
export class SinkChannel {
  readonly breaker: CircuitBreaker;
  private retryAt = 0;
  private attempts = 0;
  private failingSince: number | null = null;
  private lastError = "";
  /** How long the last successful batch took (ms of the host's clock). */
  private lastLatencyMs: number | null = null;
  readonly stats = { delivered: 0, deadLettered: 0, transientFailures: 0, attempts: 0 };

  constructor(
    readonly sink: Sink,
    private readonly policy: DeliveryPolicy,
    private readonly random: Random,
  ) {
    this.breaker = new CircuitBreaker(policy.breakerThreshold, policy.breakerCooldownMs);
  }

  get name(): string {
    return this.sink.name;
  }

  /** Earliest time the next attempt may run. */
  readyAt(): number {
    return Math.max(this.retryAt, this.breaker.readyAt());
  }

  /** Delivers `records` (in order); returns one outcome per record: a delivered/dead prefix, then pending. */
  async deliver(records: OutboxRecord[], now: () => number): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array<Outcome>(records.length).fill(PENDING);
    if (!records.length || now() < this.retryAt || !this.breaker.beforeAttempt(now())) return outcomes;
    const startedAt = now();
    const failure = await this.attempt(records, 0, outcomes);
    if (!failure) {
      this.lastLatencyMs = now() - startedAt;
      this.breaker.success();
      this.attempts = 0;
      this.failingSince = null;
      this.retryAt = 0;
      return outcomes;
    }
    const t = now();
    this.stats.transientFailures++;
    this.breaker.failure(t);
    this.attempts++;
    this.failingSince ??= t;
    this.lastError = failure.message;
    if (t - this.failingSince >= this.policy.retryBudgetMs) {
      // Budget spent: what is still pending goes to the dead-letter queue, and the next batch starts afresh.
      const error = `retry budget of ${this.policy.retryBudgetMs} ms exhausted after ${this.attempts} attempts: ${this.lastError}`;
      const attempts = this.attempts;
      for (let i = 0; i < outcomes.length; i++) {
        if (outcomes[i]!.status !== "pending") continue;
        outcomes[i] = { status: "dead", error, attempts };
        this.stats.deadLettered++;
      }
      this.failingSince = null;
      this.attempts = 0;
      return outcomes;
    }
    const ceiling = Math.min(this.policy.backoffMaxMs, this.policy.backoffBaseMs * 2 ** Math.min(this.attempts - 1, 30));
    this.retryAt = t + Math.floor(this.random.next() * ceiling);
    return outcomes;
  }

  /** Fills outcomes[offset…]; returns the transient failure that stopped it, if any. */
  private async attempt(records: OutboxRecord[], offset: number, outcomes: Outcome[]): Promise<SinkError | undefined> {
    this.stats.attempts++;
    let error: SinkError;
    try {
      await this.sink.deliver(records);
      this.mark(outcomes, offset, records.length);
      return undefined;
    } catch (e) {
      error = classify(e);
    }
    if (error.tooLarge) return this.bisect(records, offset, outcomes, error);
    if (error.index !== undefined && error.index >= 0 && error.index < records.length) {
      this.mark(outcomes, offset, error.index);
      if (!error.permanent) return error;
      this.dead(outcomes, offset + error.index, error.message);
      const rest = records.slice(error.index + 1);
      return rest.length ? this.attempt(rest, offset + error.index + 1, outcomes) : undefined;
    }
    if (!error.permanent) return error;
    // The sink refused the batch as a whole: halve it until the poison records stand alone.
    return this.bisect(records, offset, outcomes, error);
  }

  /**
   * The sink refused the batch (as too large, or permanently as a whole): what it took before the
   * failure stays taken, the rest goes again in halves, and a record still refused alone is dead-lettered.
   */
  private async bisect(records: OutboxRecord[], offset: number, outcomes: Outcome[], error: SinkError): Promise<SinkError | undefined> {
    const taken = error.index !== undefined && error.index >= 0 && error.index < records.length ? error.index : 0;
    this.mark(outcomes, offset, taken);
    const rest = taken ? records.slice(taken) : records;
    const at = offset + taken;
    if (rest.length === 1) {
      this.dead(outcomes, at, error.message);
      return undefined;
    }
    const half = Math.ceil(rest.length / 2);
    const left = await this.attempt(rest.slice(0, half), at, outcomes);
    return left ?? this.attempt(rest.slice(half), at + half, outcomes);
  }

  private mark(outcomes: Outcome[], from: number, count: number): void {
    outcomes.fill(DELIVERED, from, from + count);
    this.stats.delivered += count;
  }

  private dead(outcomes: Outcome[], at: number, error: string): void {
    outcomes[at] = { status: "dead", error, attempts: 1 };
    this.stats.deadLettered++;
  }

  status(): ChannelStatus {
    return {
      sink: this.name,
      breaker: this.breaker.state,
      retryAt: this.retryAt || null,
      consecutiveFailures: this.attempts,
      lastError: this.lastError || null,
      failingSince: this.failingSince,
      lastLatencyMs: this.lastLatencyMs,
      ...this.stats,
      breakerOpened: this.breaker.stats.opened,
      breakerClosed: this.breaker.stats.closed,
    };
  }
}

/** A channel's state for the outbox view. */
export interface ChannelStatus {
  sink: string;
  breaker: CircuitBreaker["state"];
  retryAt: number | null;
  consecutiveFailures: number;
  lastError: string | null;
  /** When the current run of failures began; null while deliveries succeed. */
  failingSince: number | null;
  lastLatencyMs: number | null;
  delivered: number;
  deadLettered: number;
  transientFailures: number;
  attempts: number;
  breakerOpened: number;
  breakerClosed: number;
}

/** What went wrong in a delivery, from the channel's status before and after it: a failed batch and/or a breaker change. */
export interface SinkTrouble {
  error?: string;
  breaker?: { from: string; to: string };
}

export function troubleBetween(before: ChannelStatus, after: ChannelStatus): SinkTrouble | undefined {
  const failed = after.transientFailures > before.transientFailures || after.deadLettered > before.deadLettered;
  const breaker = after.breaker !== before.breaker ? { from: before.breaker, to: after.breaker } : undefined;
  if (!failed && !breaker) return undefined;
  return { ...(failed ? { error: after.lastError ?? "refused" } : {}), ...(breaker ? { breaker } : {}) };
}

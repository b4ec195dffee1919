import type { IngestOutcome } from "../actor/actor.ts";
import type { Event } from "../actor/event.ts";
import type { WindowQuery } from "../actor/windows.ts";
import type { ActorView, DeadLetterView, LateView, OutboxView, WindowView } from "./views.ts";

/**
 * What the HTTP app needs from a host, and every host implements: route events to their keys'
 * actors and read actors back. Reads return null for a key that has never accepted an event.
 */
export interface Gateway {
  /** Outcomes in the order of `events`; resolves only once every accepted event is durable. */
  ingest(events: Event[]): Promise<IngestOutcome[]>;
  state(key: string): Promise<ActorView | null>;
  windows(key: string, query: WindowQuery): Promise<WindowView[] | null>;
  late(key: string): Promise<LateView[] | null>;
  deadLetters(key: string): Promise<DeadLetterView[] | null>;
  /** Puts dead letters back in the outbox for their sink; returns how many. */
  replay(key: string, filter: ReplayFilter): Promise<{ replayed: number } | null>;
  /** Delivery state: backlog per sink, dead letters, and the sink channels serving this actor. */
  outbox(key: string): Promise<OutboxView | null>;
  /** Counters of a host that runs its actors in this process (the self-hosted server), for /health. */
  health?(): Record<string, number>;
}

/** Which dead letters a replay takes: all, one sink's, and/or these ids. */
export interface ReplayFilter {
  sink?: string;
  ids?: number[];
}

/** A host could not do its part (storage, an actor); the response says what is known of the request. */
export class UnavailableError extends Error {
  override name = "UnavailableError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Storage could not commit: nothing of the request was acknowledged. */
export class StorageError extends UnavailableError {
  override name = "StorageError";
  constructor(message: string) {
    super("storage_unavailable", message);
  }
}

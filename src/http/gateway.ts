import type { IngestOutcome } from "../actor/actor.ts";
import type { BackpressureError } from "../actor/errors.ts";
import type { Event } from "../actor/event.ts";
import type { WindowQuery } from "../actor/windows.ts";
import type { ChannelStatus } from "../delivery/channel.ts";
import type { ActorView, DeadLetterView, LateView, OutboxView, WindowView } from "./views.ts";
import type { AlertRecordView } from "../delivery/records.ts";

/**
 * What the HTTP app needs from a host, and every host implements: route events to their keys'
 * actors and read actors back. Reads return null for a key that has never accepted an event.
 */
export interface Gateway {
  /**
   * Outcomes in the order of `events`; resolves only once every accepted event is durable. A host
   * that fails a whole request throws; one whose keys fail apart (Durable Objects) fails them per event.
   */
  ingest(events: Event[]): Promise<GatewayOutcome[]>;
  state(key: string): Promise<ActorView | null>;
  windows(key: string, query: WindowQuery): Promise<WindowView[] | null>;
  late(key: string): Promise<LateView[] | null>;
  /** The rules that fired on the key (keyflow.config.json), oldest first. */
  alerts(key: string): Promise<AlertRecordView[] | null>;
  deadLetters(key: string): Promise<DeadLetterView[] | null>;
  /** Puts dead letters back in the outbox for their sink; returns how many. */
  replay(key: string, filter: ReplayFilter): Promise<{ replayed: number } | null>;
  /** Delivery state: backlog per sink, dead letters, and the sink channels serving this actor. */
  outbox(key: string): Promise<OutboxView | null>;
  /**
   * The key's live view as server-sent events (src/live/sse.ts): accepted events and window updates
   * and closes from now on, or resumed after `lastEventId`. Ends when the client cancels it.
   */
  live?(key: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array>>;
  /** The live view over a WebSocket (`request` asks for the upgrade): Workers, where the object can hibernate meanwhile. */
  liveSocket?(key: string, lastEventId: string | null, request: Request): Promise<Response>;
  /** Counters of a host that runs its actors in this process (the self-hosted server), for /health. */
  health?(): Record<string, number>;
  /** The host's sink channels, for /ready (Workers: each key's channels, as reported to the metrics hub). */
  sinkStatus?(): ChannelStatus[] | Promise<ChannelStatus[]>;
}

/** An event the host could not take: its key's actor is behind its sinks, or failed. */
export interface IngestFailure {
  status: "failed";
  error: BackpressureError | UnavailableError | QuotaError;
}

export type GatewayOutcome = IngestOutcome | IngestFailure;

/** Which dead letters a replay takes: all, one sink's, and/or these ids. */
export interface ReplayFilter {
  sink?: string;
  ids?: number[];
}

/**
 * A host could not do its part (storage, an actor). `stored` says what is known of the events:
 * "none" were stored, or "unknown" (the failure may have come after they were stored). Either way
 * a retry is safe: a stored event answers as a duplicate.
 */
export class UnavailableError extends Error {
  override name = "UnavailableError";
  constructor(
    readonly code: string,
    message: string,
    readonly stored: "none" | "unknown",
  ) {
    super(message);
  }

  /** The message for the client: the failure, what was stored, and what to do. */
  advice(): string {
    const stored =
      this.stored === "none"
        ? "nothing of it was stored"
        : "some or all of these events may have been stored before the failure";
    return `${this.message}; ${stored}: retry them (an event already stored answers as a duplicate)`;
  }
}

/** Storage could not commit: nothing of the request was stored. */
export class StorageError extends UnavailableError {
  override name = "StorageError";
  constructor(message: string) {
    super("storage_unavailable", message, "none");
  }
}

/** A tenant is at its quota of keys or stored bytes: nothing of the request was applied. */
export class QuotaError extends Error {
  override name = "QuotaError";
  constructor(
    readonly quota: "keys" | "bytes",
    readonly limit: number,
    readonly used: number,
  ) {
    super(
      quota === "keys"
        ? `this tenant has ${used} keys, its quota is ${limit}: events for new keys are refused (existing keys still take events)`
        : `this tenant's stored data takes ${used} bytes, its quota is ${limit}: new events are refused until it shrinks or the quota grows`,
    );
  }
}

import { BackpressureError } from "../../actor/errors.ts";
import { groupByKey, type Event } from "../../actor/event.ts";
import { splitActorName } from "../../actor/tenant.ts";
import type { WindowQuery } from "../../actor/windows.ts";
import { QuotaError, UnavailableError, type Gateway, type GatewayOutcome, type ReplayFilter } from "../../http/gateway.ts";
import type { ActorView, DeadLetterView, LateView, OutboxView, WindowView } from "../../http/views.ts";
import type { AlertRecordView } from "../../delivery/records.ts";
import type { IngestResult } from "./durable-host.ts";
import type { ChannelStatus } from "../../delivery/channel.ts";
import type { DoUsage } from "./usage.ts";

/** A key's answer to ingest: its host's, or its tenant's quota refusing it before the host saw it. */
export type ActorIngestResult = (IngestResult | { quota: { quota: "keys" | "bytes"; limit: number; used: number } }) & {
  /** What the object did since it last told anyone (billed requests, alarms, rows), for the metrics. */
  usage?: DoUsage;
};

/** What the gateway calls on a key's Durable Object (the RPC methods of actors/key-actor.ts). */
export type ActorStub = Omit<Gateway, "ingest" | "health" | "live"> & {
  ingest(key: string, events: Event[]): Promise<ActorIngestResult>;
  live(key: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array>>;
  /** A WebSocket upgrade for the key's live view (the object's own fetch handler). */
  fetch(request: Request): Promise<Response>;
};

/** The Durable Object namespace, as the gateway uses it: one object per key name. */
export interface ActorNamespace {
  getByName(name: string): ActorStub;
}

/**
 * Routes each key to its Durable Object: a batch is split by key and sent to all its actors at
 * once. Each key's outcome is its own: one key behind or failing does not hide what the others did.
 */
export class DurableGateway implements Gateway {
  /**
   * `sinkStatus`: the sinks' state summed over the keys' objects (the metrics hub), for /ready.
   * `countUsage`: told what a key's object reports it did (its ingest replies carry it).
   */
  constructor(
    private readonly actors: ActorNamespace,
    readonly sinkStatus?: () => Promise<ChannelStatus[]>,
    private readonly countUsage?: (usage: DoUsage) => void,
  ) {}

  async ingest(events: Event[]): Promise<GatewayOutcome[]> {
    const outcomes = new Array<GatewayOutcome>(events.length);
    await Promise.all(
      [...groupByKey(events)].map(async ([key, indexes]) => {
        // call() turns any failure into an UnavailableError: this key's events fail, the others' stand.
        const result: ActorIngestResult | UnavailableError = await this.call(key, (stub) => stub.ingest(key, indexes.map((i) => events[i]!))).catch(
          (error: UnavailableError) => error,
        );
        if (!(result instanceof UnavailableError) && result.usage) this.countUsage?.(result.usage);
        if (!(result instanceof UnavailableError) && "outcomes" in result) {
          indexes.forEach((i, n) => (outcomes[i] = result.outcomes[n]!));
          return;
        }
        const error =
          result instanceof UnavailableError
            ? result
            : "quota" in result
              ? new QuotaError(result.quota.quota, result.quota.limit, result.quota.used)
              : new BackpressureError(key, result.backpressure.retryAfterSeconds);
        for (const i of indexes) outcomes[i] = { status: "failed", error };
      }),
    );
    return outcomes;
  }

  state(key: string): Promise<ActorView | null> {
    return this.call(key, (stub) => stub.state(key));
  }

  windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    return this.call(key, (stub) => stub.windows(key, query));
  }

  alerts(key: string): Promise<AlertRecordView[] | null> {
    return this.call(key, (stub) => stub.alerts(key));
  }

  late(key: string): Promise<LateView[] | null> {
    return this.call(key, (stub) => stub.late(key));
  }

  deadLetters(key: string): Promise<DeadLetterView[] | null> {
    return this.call(key, (stub) => stub.deadLetters(key));
  }

  replay(key: string, filter: ReplayFilter): Promise<{ replayed: number } | null> {
    return this.call(key, (stub) => stub.replay(key, filter));
  }

  outbox(key: string): Promise<OutboxView | null> {
    return this.call(key, (stub) => stub.outbox(key));
  }

  /** The stream comes from the key's object over RPC; the client's disconnect cancels it there. */
  live(key: string, lastEventId: string | null): Promise<ReadableStream<Uint8Array>> {
    return this.call(key, (stub) => stub.live(key, lastEventId));
  }

  /** The upgrade goes to the key's object, which accepts the socket with the hibernation API. */
  async liveSocket(key: string, lastEventId: string | null, request: Request): Promise<Response> {
    const url = new URL("https://actor.internal/live");
    url.searchParams.set("key", key);
    if (lastEventId !== null) url.searchParams.set("last_event_id", lastEventId);
    const response = await this.call(key, (stub) => stub.fetch(new Request(url, { headers: request.headers })));
    // An object's response has immutable headers; the app adds its own (x-request-id, CORS).
    const webSocket = (response as Response & { webSocket?: unknown }).webSocket;
    return new Response(response.body, { status: response.status, headers: response.headers, ...(webSocket ? { webSocket } : {}) } as ResponseInit);
  }

  /** A failed call may have been carried out before it failed (its reply is what was lost). */
  private async call<T>(key: string, fn: (stub: ActorStub) => Promise<T>): Promise<T> {
    try {
      return await fn(this.actors.getByName(key));
    } catch (error) {
      const reason = (error as Error)?.message ?? String(error);
      throw new UnavailableError("actor_unavailable", `the actor for key ${JSON.stringify(splitActorName(key).key)} failed: ${reason}`, "unknown");
    }
  }
}

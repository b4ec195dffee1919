import type { KeyActor } from "../../../actors/key-actor.ts";
import type { IngestResult } from "./durable-host.ts";
import type { IngestOutcome } from "../../actor/actor.ts";
import type { Gateway } from "../../http/gateway.ts";
import type { ActorView, DeadLetterView, LateView, OutboxView, WindowView } from "../../http/views.ts";
import { BackpressureError } from "../../actor/errors.ts";
import { UnavailableError } from "../../http/gateway.ts";
import { groupByKey, type Event } from "../../actor/event.ts";
import type { WindowQuery } from "../../actor/windows.ts";
import type { WorkerEnv } from "./env.ts";

/** Routes each key to its Durable Object: a batch is split by key and sent to all its actors at once. */
export class DurableGateway implements Gateway {
  constructor(private readonly actors: WorkerEnv["ACTORS"]) {}

  async ingest(events: Event[]): Promise<IngestOutcome[]> {
    const outcomes = new Array<IngestOutcome>(events.length);
    let behind: BackpressureError | undefined;
    await Promise.all(
      [...groupByKey(events)].map(async ([key, indexes]) => {
        // RPC stubs type a union result awkwardly; the value is the actor's IngestResult.
        const result = await this.call(key, (stub) => stub.ingest(key, indexes.map((i) => events[i]!)) as unknown as Promise<IngestResult>);
        if ("backpressure" in result) behind = new BackpressureError(key, result.backpressure.retryAfterSeconds);
        else indexes.forEach((i, n) => (outcomes[i] = result.outcomes[n]!));
      }),
    );
    // The keys that were not behind have their events durably; a retry of the request is safe.
    if (behind) throw behind;
    return outcomes;
  }

  state(key: string): Promise<ActorView | null> {
    return this.call(key, (stub) => stub.state(key));
  }

  windows(key: string, query: WindowQuery): Promise<WindowView[] | null> {
    return this.call(key, (stub) => stub.windows(key, query));
  }

  late(key: string): Promise<LateView[] | null> {
    return this.call(key, (stub) => stub.late(key));
  }

  deadLetters(key: string): Promise<DeadLetterView[] | null> {
    return this.call(key, (stub) => stub.deadLetters(key));
  }

  replay(key: string, filter: { sink?: string; ids?: number[] }): Promise<{ replayed: number } | null> {
    return this.call(key, (stub) => stub.replay(key, filter));
  }

  outbox(key: string): Promise<OutboxView | null> {
    return this.call(key, (stub) => stub.outbox(key));
  }

  private async call<T>(key: string, fn: (stub: DurableObjectStub<KeyActor>) => Promise<T>): Promise<T> {
    try {
      return await fn(this.actors.getByName(key));
    } catch (error) {
      throw new UnavailableError("actor_unavailable", `the actor for key ${JSON.stringify(key)} failed: ${(error as Error)?.message ?? error}`);
    }
  }
}

import type { IngestOutcome } from "../../core/actor.ts";
import type { ActorBackend, ActorView, LateView, WindowView } from "../../core/backend.ts";
import { UnavailableError } from "../../core/errors.ts";
import type { Event } from "../../core/event.ts";
import type { WindowQuery } from "../../core/views.ts";
import type { WorkerEnv } from "./env.ts";

/** Routes each key to its Durable Object: a batch is split by key and sent to all its actors at once. */
export class DurableObjectBackend implements ActorBackend {
  constructor(private readonly actors: WorkerEnv["ACTORS"]) {}

  async ingest(events: Event[]): Promise<IngestOutcome[]> {
    const byKey = new Map<string, number[]>();
    events.forEach((e, i) => {
      const list = byKey.get(e.key);
      if (list) list.push(i);
      else byKey.set(e.key, [i]);
    });
    const outcomes = new Array<IngestOutcome>(events.length);
    await Promise.all(
      [...byKey].map(async ([key, indexes]) => {
        const results = await this.call(key, (stub) => stub.ingest(key, indexes.map((i) => events[i]!)));
        indexes.forEach((i, n) => (outcomes[i] = results[n]!));
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

  late(key: string): Promise<LateView[] | null> {
    return this.call(key, (stub) => stub.late(key));
  }

  private async call<T>(key: string, fn: (stub: DurableObjectStub<import("../../../actors/key-actor.ts").KeyActor>) => Promise<T>): Promise<T> {
    try {
      return await fn(this.actors.getByName(key));
    } catch (error) {
      throw new UnavailableError("actor_unavailable", `the actor for key ${JSON.stringify(key)} failed: ${(error as Error)?.message ?? error}`);
    }
  }
}

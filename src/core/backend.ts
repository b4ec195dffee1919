import type { IngestOutcome } from "./actor.ts";
import type { Event } from "./event.ts";
import { actorView, lateView, selectWindows, type WindowQuery } from "./views.ts";
import type { Actor } from "./actor.ts";

export type ActorView = ReturnType<typeof actorView>;
export type WindowView = ReturnType<typeof selectWindows>[number];
export type LateView = ReturnType<typeof lateView>;

/**
 * What the HTTP app needs from a host: route events to their keys' actors and read actors back.
 * Reads return null for a key that has never accepted an event.
 */
export interface ActorBackend {
  /** Outcomes in the order of `events`; resolves only once every accepted event is durable. */
  ingest(events: Event[]): Promise<IngestOutcome[]>;
  state(key: string): Promise<ActorView | null>;
  windows(key: string, query: WindowQuery): Promise<WindowView[] | null>;
  late(key: string): Promise<LateView[] | null>;
}

/** The read side of one actor, rendered for the API; shared by every host. */
export const read = {
  state: (actor: Actor): ActorView => actorView(actor.snapshot()),
  windows: (actor: Actor, query: WindowQuery): WindowView[] =>
    selectWindows([...actor.closedWindows(), ...actor.openWindows()], query),
  late: (actor: Actor): LateView[] => actor.lateLog().map(lateView),
};

import type { IngestOutcome } from "../actor/actor.ts";
import type { Event } from "../actor/event.ts";
import type { Actor } from "../actor/actor.ts";
import type { SinkChannel } from "../delivery/channel.ts";
import { actorView, deadLetterView, lateView, selectWindows, type WindowQuery } from "./views.ts";

export type ActorView = ReturnType<typeof actorView>;
export type WindowView = ReturnType<typeof selectWindows>[number];
export type LateView = ReturnType<typeof lateView>;
export type DeadLetterView = ReturnType<typeof deadLetterView>;
export type OutboxView = ReturnType<typeof read.outbox>;

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
  deadLetters(key: string): Promise<DeadLetterView[] | null>;
  /** Puts dead letters back in the outbox for their sink; returns how many. */
  replay(key: string, filter: { sink?: string; ids?: number[] }): Promise<{ replayed: number } | null>;
  /** Delivery state: backlog per sink, dead letters, and the sink channels serving this actor. */
  outbox(key: string): Promise<OutboxView | null>;
  /** Counters of a host that runs its actors in this process (the self-hosted server), for /health. */
  health?(): Record<string, number>;
}

/** The read side of one actor, rendered for the API; shared by every host. */
export const read = {
  state: (actor: Actor): ActorView => actorView(actor.snapshot()),
  windows: (actor: Actor, query: WindowQuery): WindowView[] =>
    selectWindows([...actor.closedWindows(), ...actor.openWindows()], query),
  late: (actor: Actor): LateView[] => actor.lateLog().map(lateView),
  deadLetters: (actor: Actor): DeadLetterView[] => actor.outbox.deadLetters().map(deadLetterView),
  outbox: (actor: Actor, channels: readonly SinkChannel[]) => ({
    key: actor.key,
    backlog: Object.fromEntries(actor.outbox.sinks.map((sink) => [sink, actor.outbox.backlog(sink)])),
    dead_letters: actor.outbox.deadLetters().length,
    sinks: channels.map((c) => c.status()),
  }),
};

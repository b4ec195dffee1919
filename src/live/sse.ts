import { recordJson } from "../delivery/records.ts";
import type { EventRecord, WindowRecord } from "../actor/outbox.ts";
import type { Timers } from "../ports/timers.ts";
import type { LiveFeed, LiveItem } from "./feed.ts";

/** Comment lines this often keep proxies and Bun's 10 s idle timeout from closing a quiet stream. */
export const KEEPALIVE_MS = 5_000;

export interface LiveStreamOptions {
  /** The Last-Event-ID the client sent: what it saw last of this key's live view. */
  lastEventId: string | null;
  timers: Timers;
  /** Messages a slow client may leave unread before its stream is ended (it may reconnect and resume). */
  maxQueued: number;
  /** The stream ended, however it ended. */
  onEnd?: () => void;
}

const encoder = new TextEncoder();

/** A message ID: the feed's incarnation and the item's number in it. */
export const liveEventId = (feed: LiveFeed, seq: number) => `${feed.incarnation}.${seq}`;

/** The number after `lastEventId` if it names this feed's incarnation; otherwise undefined. */
export function resumeAfter(feed: LiveFeed, lastEventId: string | null): number | undefined {
  if (lastEventId === null) return undefined;
  const dot = lastEventId.lastIndexOf(".");
  if (dot < 0 || lastEventId.slice(0, dot) !== feed.incarnation) return undefined;
  const seq = Number(lastEventId.slice(dot + 1));
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
}

/**
 * What a client resuming after `lastEventId` gets first: the retained items after it, and whether
 * it may have missed some (its ID is from another incarnation, or items after it were dropped).
 */
export function resumption(feed: LiveFeed, lastEventId: string | null): { items: LiveItem[]; gap: boolean } {
  if (lastEventId === null) return { items: [], gap: false };
  const after = resumeAfter(feed, lastEventId);
  return after === undefined ? { items: feed.since(0).items, gap: true } : feed.since(after);
}

/** Why a gap is reported, as its data. */
export const gapData = (lastEventId: string | null) => JSON.stringify({ last_event_id: lastEventId, reason: "the items after it are no longer retained" });

function message(feed: LiveFeed, item: LiveItem): string {
  const data = recordJson(item.record as EventRecord | WindowRecord);
  return `id: ${liveEventId(feed, item.seq)}\nevent: ${item.record.kind}\ndata: ${data}\n\n`;
}

/**
 * A key's live view as server-sent events (text/event-stream): `event: event` for each accepted event
 * and `event: window` for each window update and close, the data being the record as sinks get it.
 * A client resuming with a Last-Event-ID of this feed gets every retained item after it first; one
 * whose ID is unknown (another incarnation) or whose next items are no longer retained gets
 * `event: gap` first. A client that falls `maxQueued` messages behind gets `event: overflow` and the
 * stream ends (it may reconnect with its Last-Event-ID).
 */
export function liveStream(feed: LiveFeed, options: LiveStreamOptions): ReadableStream<Uint8Array> {
  const { timers, maxQueued } = options;
  let unsubscribe: (() => void) | undefined;
  let keepalive: unknown;
  let ended = false;
  const stop = () => {
    if (ended) return false;
    ended = true;
    unsubscribe?.();
    timers.clearTimeout(keepalive);
    options.onEnd?.();
    return true;
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const send = (text: string) => controller.enqueue(encoder.encode(text));
        const finish = (text: string) => {
          if (!stop()) return;
          send(text);
          controller.close();
        };
        const tick = () => {
          send(": keepalive\n\n");
          keepalive = timers.setTimeout(tick, KEEPALIVE_MS);
        };
        send("retry: 1000\n: keyflow live view\n\n");
        const { items, gap } = resumption(feed, options.lastEventId);
        if (gap) send(`event: gap\ndata: ${gapData(options.lastEventId)}\n\n`);
        if (items.length) send(items.map((item) => message(feed, item)).join(""));
        unsubscribe = feed.subscribe({
          deliver(items) {
            if ((controller.desiredSize ?? 0) <= 0) return finish(`event: overflow\ndata: ${JSON.stringify({ reason: `more than ${maxQueued} messages unread` })}\n\n`);
            send(items.map((item) => message(feed, item)).join(""));
          },
          end: () => finish("event: end\ndata: {\"reason\":\"the server is closing\"}\n\n"),
        });
        keepalive = timers.setTimeout(tick, KEEPALIVE_MS);
      },
      cancel() {
        stop();
      },
    },
    { highWaterMark: maxQueued, size: () => 1 },
  );
}

import { recordJson } from "../delivery/records.ts";
import type { EventRecord, WindowRecord } from "../actor/outbox.ts";
import type { LiveFeed, LiveItem } from "./feed.ts";
import { gapData, liveEventId, resumption } from "./sse.ts";

/**
 * A live view message over a WebSocket (Workers, hibernatable): one JSON text frame,
 * `{"id","event","data"}` with the same id, event name and data as the server-sent event.
 */
export function socketMessage(feed: LiveFeed, item: LiveItem): string {
  return `{"id":${JSON.stringify(liveEventId(feed, item.seq))},"event":"${item.record.kind}","data":${recordJson(item.record as EventRecord | WindowRecord)}}`;
}

/** The frames a socket opened with `lastEventId` gets first: a gap notice if need be, then what is retained after it. */
export function resumeFrames(feed: LiveFeed, lastEventId: string | null): string[] {
  const { items, gap } = resumption(feed, lastEventId);
  const frames = items.map((item) => socketMessage(feed, item));
  if (gap) frames.unshift(`{"event":"gap","data":${gapData(lastEventId)}}`);
  return frames;
}

import { assert } from "../ports/assert.ts";
import type { LiveOutput, LiveRecord } from "../actor/actor.ts";

/** One message of a key's live view, numbered in the order its actor made it. */
export interface LiveItem {
  seq: number;
  record: LiveRecord;
}

/** Told of newly durable items, in order. */
export interface LiveSubscriber {
  deliver(items: readonly LiveItem[]): void;
  /** The feed is gone (the host is closing): end the stream. */
  end(): void;
}

/**
 * One key's live view: the accepted events and window updates and closes its actor makes, held as
 * pending until their commit is durable, then published to subscribers and retained (the last
 * `retain` items) so that a client reconnecting with the last ID it saw misses nothing retained.
 * `incarnation` tells this feed's numbering apart from an earlier feed's for the same key.
 */
export class LiveFeed implements LiveOutput {
  private readonly retained: LiveItem[] = [];
  private pending: LiveItem[] = [];
  private nextSeq = 1;
  private readonly subscribers = new Set<LiveSubscriber>();

  constructor(
    readonly incarnation: string,
    private readonly retain: number,
  ) {
    assert(retain >= 1, "a live feed retains at least one item");
  }

  /** The actor made a record; it is published with the commit that stores it. */
  push(record: LiveRecord): void {
    this.pending.push({ seq: this.nextSeq++, record });
  }

  position(): number {
    return this.nextSeq;
  }

  /** The commit that stored the pending records (those before `before`, all by default) is durable: publish them. */
  publish(before = this.nextSeq): void {
    let count = 0;
    while (count < this.pending.length && this.pending[count]!.seq < before) count++;
    if (!count) return;
    const items = count === this.pending.length ? this.pending : this.pending.slice(0, count);
    this.pending = count === this.pending.length ? [] : this.pending.slice(count);
    this.retained.push(...items);
    if (this.retained.length > this.retain) this.retained.splice(0, this.retained.length - this.retain);
    for (const subscriber of this.subscribers) subscriber.deliver(items);
  }

  /** The commit failed: its records never happened (the actor is rebuilt from storage). */
  discard(): void {
    if (this.pending.length) this.nextSeq = this.pending[0]!.seq;
    this.pending = [];
  }

  /** Retained items after `seq`, and whether some after it are no longer retained. */
  since(seq: number): { items: LiveItem[]; gap: boolean } {
    const first = this.retained[0]?.seq ?? this.nextSeq;
    const items = this.retained.filter((item) => item.seq > seq);
    return { items, gap: seq + 1 < first };
  }

  subscribe(subscriber: LiveSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => void this.subscribers.delete(subscriber);
  }

  get watched(): boolean {
    return this.subscribers.size > 0;
  }

  /** Ends every subscriber's stream. */
  close(): void {
    for (const subscriber of [...this.subscribers]) subscriber.end();
    this.subscribers.clear();
  }
}

/**
 * The live feeds of a host's keys: created on a key's first watcher, kept after the last one leaves
 * (so a reconnect resumes), the least recently watched unwatched feed dropped beyond `maxFeeds`.
 */
export class LiveFeeds {
  private readonly feeds = new Map<string, LiveFeed>();

  constructor(
    private readonly retain: number,
    private readonly maxFeeds: number,
    private readonly newIncarnation: () => string,
    /** A feed was dropped: its key's actor must stop feeding it. */
    private readonly dropped: (key: string) => void,
  ) {}

  get(key: string): LiveFeed | undefined {
    return this.feeds.get(key);
  }

  /** The key's feed, made if it has none; `attach` gives it to the key's actor if that is in memory. */
  open(key: string, attach: (feed: LiveFeed) => void): LiveFeed {
    let feed = this.feeds.get(key);
    if (feed) this.feeds.delete(key);
    else {
      feed = new LiveFeed(this.newIncarnation(), this.retain);
      attach(feed);
    }
    this.feeds.set(key, feed);
    this.trim();
    return feed;
  }

  private trim(): void {
    let excess = this.feeds.size - this.maxFeeds;
    for (const [key, feed] of this.feeds) {
      if (excess <= 0) break;
      if (feed.watched) continue;
      this.feeds.delete(key);
      this.dropped(key);
      excess--;
    }
  }

  closeAll(): void {
    for (const feed of this.feeds.values()) feed.close();
    this.feeds.clear();
  }
}

import { errorOf, isRecord, KeyflowError, noAnswer, parseJson } from "./errors.ts";
import { sleep, type Transport } from "./http.ts";
import { backoffMs, retryableStatus } from "./retry.ts";
import { SseParser, type SseMessage } from "./sse.ts";
import type { LiveMessage } from "./types.ts";

export interface LiveOptions {
  /** Ends the stream: the iterator finishes (no error) once it aborts. Breaking out of `for await` ends it too. */
  signal?: AbortSignal;
  /** Resume after this message ID (a previous stream's last `id`): the server replays what it retained after it. */
  lastEventId?: string;
  /**
   * Reconnect when the stream ends or breaks (default true), with the last message's ID so nothing
   * retained is missed (a `gap` message says when something was); 4xx answers other than 408/429 still throw.
   */
  reconnect?: boolean;
  /** Called each time the stream is open (the server has subscribed it): events accepted after this are seen. */
  onOpen?: () => void;
  /** A stream silent this long is taken as broken (the server sends a heartbeat every 5 s). Default 30,000 ms. */
  idleTimeoutMs?: number;
}

/** The ceiling of the backoff between failed connection attempts. */
const MAX_RECONNECT_MS = 30_000;

/** `GET /v1/actors/:key/live` as an async iterator of typed messages. */
export async function* liveMessages(t: Transport, key: string, options: LiveOptions, random: () => number): AsyncGenerator<LiveMessage, void, undefined> {
  const { signal, reconnect = true, idleTimeoutMs = 30_000 } = options;
  const path = `/v1/actors/${encodeURIComponent(key)}/live`;
  let lastEventId = options.lastEventId;
  let retryMs = 1_000;
  let failures = 0;
  while (!signal?.aborted) {
    const connection = new AbortController();
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    /** Ends this connection: the request, and the body's reader too (whatever the fetch does with the signal). */
    const cut = () => {
      connection.abort();
      reader?.cancel().catch(() => undefined);
    };
    signal?.addEventListener("abort", cut);
    let idle: unknown;
    const arm = () => {
      t.timers.clearTimeout(idle);
      idle = t.timers.setTimeout(cut, idleTimeoutMs);
    };
    let wait: number | undefined;
    try {
      const headers: Record<string, string> = { ...t.headers, accept: "text/event-stream" };
      if (lastEventId) headers["last-event-id"] = lastEventId;
      arm();
      let response: Response;
      try {
        response = await t.fetch(t.base + path, { method: "GET", headers, signal: connection.signal });
      } catch (error) {
        if (signal?.aborted) return;
        if (!reconnect) throw noAnswer(error, false);
        wait = backoffMs(failures++, { baseMs: retryMs, maxMs: MAX_RECONNECT_MS }, random);
        continue;
      }
      if (!response.ok) {
        const error = await errorOf(response, t.now());
        if (!reconnect || !retryableStatus(response.status)) throw error;
        wait = error.retryAfterMs ?? backoffMs(failures++, { baseMs: retryMs, maxMs: MAX_RECONNECT_MS }, random);
        continue;
      }
      if (!response.body) throw new KeyflowError(response.status, "bad_response", "the live answer has no body");
      options.onOpen?.();
      failures = 0;
      const parser = new SseParser(lastEventId);
      const decoder = new TextDecoder();
      reader = response.body.getReader();
      try {
        for (;;) {
          arm();
          const next = await reader.read();
          if (next.done) break;
          for (const message of parser.push(decoder.decode(next.value, { stream: true }))) {
            lastEventId = message.id;
            const typed = liveMessage(message);
            if (typed) yield typed;
          }
        }
      } catch (error) {
        if (signal?.aborted) return;
        if (!reconnect) throw noAnswer(error, false);
      }
      if (parser.retryMs !== undefined) retryMs = parser.retryMs;
      if (!reconnect) return;
      wait = retryMs + Math.floor(random() * retryMs);
    } finally {
      t.timers.clearTimeout(idle);
      signal?.removeEventListener("abort", cut);
      connection.abort();
      reader?.cancel().catch(() => undefined);
      // Between connections (a `continue` or the end of one): only here, so that `return` skips it.
      if (wait !== undefined && !signal?.aborted) await sleep(t.timers, wait, signal);
    }
  }
}

/** A server-sent message as a typed LiveMessage; undefined for an event name this client does not know. */
export function liveMessage(message: SseMessage): LiveMessage | undefined {
  const { event, id } = message;
  if (event !== "event" && event !== "window" && event !== "alert" && event !== "gap" && event !== "overflow" && event !== "end") return undefined;
  const data = parseJson(message.data);
  if (!isRecord(data)) throw new KeyflowError(0, "bad_response", `a live "${event}" message whose data is not a JSON object: ${message.data.slice(0, 200)}`);
  if (event === "event" || event === "window" || event === "alert") {
    if (data.kind !== event) throw new KeyflowError(0, "bad_response", `a live "${event}" message holding a "${String(data.kind)}" record`);
    return { type: event, id, record: data as never } as LiveMessage;
  }
  const reason = typeof data.reason === "string" ? data.reason : "";
  if (event === "gap") return { type: "gap", id, last_event_id: typeof data.last_event_id === "string" ? data.last_event_id : null, reason };
  return { type: event, id, reason };
}

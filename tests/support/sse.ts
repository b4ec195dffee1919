/** Reads a text/event-stream response as a test client would (fetch, not EventSource: it sends a bearer key). */
export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

export interface SseReader {
  /** Messages read so far, in order. */
  readonly messages: SseMessage[];
  /** Reads until `done` holds for a message (returned); fails after `limitMs` or at the end of the stream. */
  until(done: (m: SseMessage) => boolean, limitMs?: number): Promise<SseMessage>;
  /** Whether the stream has ended (the server closed it). */
  readonly ended: boolean;
  cancel(): Promise<void>;
}

export function sseReader(response: Response): SseReader {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const messages: SseMessage[] = [];
  let buffer = "";
  let ended = false;
  let checked = 0;
  /** A read still outstanding after a timeout is kept: what it brings must not be lost. */
  let reading: ReturnType<typeof reader.read> | undefined;
  const parse = () => {
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message: SseMessage = { event: "message", data: "" };
      let fields = 0;
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") message.id = value;
        else if (field === "event") message.event = value;
        else if (field === "data") message.data += (message.data ? "\n" : "") + value;
        else continue;
        fields++;
      }
      if (fields) messages.push(message);
    }
  };
  return {
    messages,
    get ended() {
      return ended;
    },
    async until(done, limitMs = 30_000) {
      const deadline = Date.now() + limitMs;
      for (;;) {
        for (; checked < messages.length; checked++) if (done(messages[checked]!)) return messages[checked++]!;
        if (ended) throw new Error(`the stream ended first; messages: ${JSON.stringify(messages)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`not seen within ${limitMs} ms; messages: ${JSON.stringify(messages)}`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), left)));
        reading ??= reader.read();
        const next = await Promise.race([reading, timeout]);
        clearTimeout(timer);
        if (next === "timeout") continue;
        reading = undefined;
        if (next.done) ended = true;
        else buffer += decoder.decode(next.value, { stream: true });
        parse();
      }
    },
    async cancel() {
      await reader.cancel().catch(() => undefined);
    },
  };
}

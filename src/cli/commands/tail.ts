import { KeyflowError, SseParser } from "../../client/index.ts";
import { errorOf } from "../../client/errors.ts";
import { parse, positionalArgs, quoted, safe, writeLine, type Command, type Io } from "../io.ts";
import { actorPath, remote, REMOTE_OPTIONS, REMOTE_USAGE, type Remote } from "../remote.ts";

/** The server sends a heartbeat every 5 s: a stream silent this long is taken as broken and reopened. */
const IDLE_TIMEOUT_MS = 30_000;
/** The wait before reopening a stream that ended or broke (unless the server's `retry:` says otherwise). */
const RECONNECT_MS = 1_000;

export const tailCommand: Command = {
  name: "tail",
  summary: "follow a key live: one JSON line per event, window update and alert",
  interruptible: true,
  usage: `usage: keyflow tail KEY [--url URL] [--api-key KEY]

  KEY              the actor key (any text; it is URL-encoded)
${REMOTE_USAGE}

Prints each record of GET /v1/actors/KEY/live as one JSON line on stdout (its "kind" says event,
window or alert) until Ctrl-C. A broken stream is reopened from the last record seen; notes about
the stream (open, gap, reconnecting) go to stderr. Needs the read scope.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, REMOTE_OPTIONS);
    const [key] = positionalArgs(positionals, ["KEY"]) as [string];
    await follow(remote(values, io), key, io);
    return 0;
  },
};

/** Reads the live stream until io.signal aborts; throws on an answer that says retrying will not help (4xx other than 408/429). */
async function follow(server: Remote, key: string, io: Io): Promise<void> {
  const { signal } = io;
  let lastEventId: string | undefined;
  let retryMs = RECONNECT_MS;
  let opened = false;
  while (!signal?.aborted) {
    const connection = new AbortController();
    const cut = () => connection.abort();
    signal?.addEventListener("abort", cut);
    let idle: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(cut, IDLE_TIMEOUT_MS);
    };
    try {
      arm();
      const headers: Record<string, string> = { ...server.headers, accept: "text/event-stream" };
      if (lastEventId) headers["last-event-id"] = lastEventId;
      const response = await fetch(`${server.base}${actorPath(key)}/live`, { headers, signal: connection.signal });
      if (!response.ok) {
        const error = await errorOf(response, Date.now());
        if (response.status !== 408 && response.status !== 429) throw error;
        writeLine(io.stderr, `keyflow tail: ${safe(error.message)}; retrying`);
        retryMs = error.retryAfterMs ?? retryMs;
      } else if (response.body) {
        writeLine(io.stderr, `keyflow tail: following ${quoted(key)} at ${server.base} (Ctrl-C stops)`);
        opened = true;
        const parser = new SseParser(lastEventId);
        const decoder = new TextDecoder();
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          arm();
          for (const message of parser.push(decoder.decode(chunk, { stream: true }))) {
            lastEventId = message.id ?? lastEventId;
            if (message.event === "event" || message.event === "window" || message.event === "alert") writeLine(io.stdout, message.data);
            else if (message.event !== "message") writeLine(io.stderr, `keyflow tail: ${safe(message.event)}: ${safe(message.data)}`);
          }
        }
        retryMs = parser.retryMs ?? retryMs;
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (error instanceof KeyflowError) throw error;
      // No server at all before the first stream: say so rather than wait forever.
      if (!opened) throw new KeyflowError(0, "network_error", `no answer from ${server.base}: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      clearTimeout(idle);
      signal?.removeEventListener("abort", cut);
      connection.abort();
    }
    if (signal?.aborted) return;
    writeLine(io.stderr, `keyflow tail: the stream ended; reopening in ${retryMs} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, retryMs);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      signal?.addEventListener("abort", done);
    });
  }
}

/**
 * Structured logs: one JSON object per line, with a level filter (KEYFLOW_LOG_LEVEL). The runtime
 * supplies where lines go (stdout, batched); fields are data, so client strings are escaped by JSON
 * and never form a line of their own. Secrets and event payloads are never logged: callers pass
 * only the fields listed in their own code.
 */

export const LOG_LEVELS = ["debug", "info", "warn", "error", "off"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export class Logger {
  private readonly min: number;

  constructor(
    level: LogLevel,
    private readonly write: (line: string) => void,
    private readonly now: () => number,
  ) {
    this.min = RANK[level];
  }

  enabled(level: Exclude<LogLevel, "off">): boolean {
    return RANK[level] >= this.min;
  }

  log(level: Exclude<LogLevel, "off">, msg: string, fields: LogFields = {}): void {
    if (RANK[level] < this.min) return;
    this.write(JSON.stringify({ time: new Date(this.now()).toISOString(), level, msg, ...fields }));
  }

  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }
}

/** A sink's failed delivery or breaker change, at warn (every host logs these the same way). */
export function sinkTroubleLog(logger: Logger) {
  return (sink: string, { error, breaker }: { error?: string; breaker?: { from: string; to: string } }): void => {
    if (breaker) logger.warn("sink breaker", { sink, from: breaker.from, to: breaker.to, error });
    else logger.warn("sink delivery failed", { sink, error });
  };
}

/** A logger that writes nothing (tests of other layers). */
export const SILENT = new Logger("off", () => {}, () => 0);

/** Printable, at most 128 characters: a client's x-request-id is used as it is only then. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** W3C traceparent: version-traceid-parentid-flags; the trace id names the request. */
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The request's correlation ID: the client's x-request-id, else its traceparent's trace id, else a new one. */
export function requestIdOf(requestId: string | null, traceparent: string | null, newId: () => string): string {
  if (requestId !== null && REQUEST_ID.test(requestId)) return requestId;
  const trace = traceparent === null ? null : TRACEPARENT.exec(traceparent.trim().toLowerCase());
  if (trace && !/^0+$/.test(trace[1]!)) return trace[1]!;
  return newId();
}

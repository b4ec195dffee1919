import { parseArgs } from "node:util";
import { DEFAULT_CONFIG } from "../../settings/config.ts";

export type Format = "ndjson" | "json" | "csv";

export interface BackfillOptions {
  file: string;
  format: Format;
  url: string;
  apiKey?: string;
  batchSize: number;
  concurrency: number;
  /** Events per second; 0 is no limit. */
  rate: number;
  checkpoint?: string;
  restart: boolean;
  progress: "auto" | "on" | "off";
  json: boolean;
  maxAttempts: number;
}

export class UsageError extends Error {}

/** The server's own default address (src/settings/env.ts: HOST 127.0.0.1, PORT 8787). */
export const DEFAULT_URL = "http://127.0.0.1:8787";
export const MAX_BATCH_EVENTS = DEFAULT_CONFIG.maxBatchEvents;

export const USAGE = `usage: keyflow backfill FILE|- [options]
  reads NDJSON, a JSON array or CSV (gzip detected by its magic bytes) and sends it to POST /v1/events
  --format ndjson|json|csv  default from the extension (.gz stripped): .csv csv, .json json, else ndjson
  --url URL                 server (env KEYFLOW_URL, default ${DEFAULT_URL})
  --api-key KEY             bearer key (env KEYFLOW_API_KEY)
  --batch-size N            events per request (default 1000, at most ${MAX_BATCH_EVENTS})
  --concurrency N           requests in flight (default 4)
  --rate N                  events per second, 0 for no limit (default 0)
  --checkpoint FILE         resume file (default FILE.keyflow-checkpoint; none for stdin)
  --restart                 ignore an existing checkpoint and start from the beginning
  --retries N               attempts per request before giving up (default 10)
  --progress | --no-progress  force the progress display on stderr, or silence it
  --json                    print the summary as JSON on stdout
exit codes: 0 every event accepted or duplicate, 1 some rejected or the run stopped, 2 usage error`;

function count(name: string, text: string | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} must be a whole number, got ${JSON.stringify(text)}`);
  const v = Number(text);
  if (v < min || v > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** The format a file name implies (.gz stripped); ndjson for stdin and other names. */
export function formatOf(file: string): Format {
  const name = file.toLowerCase().replace(/\.gz$/, "");
  if (name.endsWith(".csv")) return "csv";
  if (name.endsWith(".json")) return "json";
  return "ndjson";
}

export function parseBackfillArgs(argv: string[], env: Record<string, string | undefined>): BackfillOptions | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        format: { type: "string" },
        url: { type: "string" },
        "api-key": { type: "string" },
        "batch-size": { type: "string" },
        concurrency: { type: "string" },
        rate: { type: "string" },
        checkpoint: { type: "string" },
        restart: { type: "boolean", default: false },
        retries: { type: "string" },
        progress: { type: "boolean" },
        "no-progress": { type: "boolean" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (parsed.positionals.length !== 1) throw new UsageError(parsed.positionals.length ? `one FILE expected, got ${parsed.positionals.length}` : "FILE (or - for stdin) is required");
  const file = parsed.positionals[0]!;
  const format = v.format ?? formatOf(file);
  if (format !== "ndjson" && format !== "json" && format !== "csv") throw new UsageError(`--format must be ndjson, json or csv, got ${JSON.stringify(format)}`);
  const url = (v.url ?? env.KEYFLOW_URL ?? DEFAULT_URL).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`--url must be an http(s) URL, got ${JSON.stringify(url)}`);
  if (v.progress && v["no-progress"]) throw new UsageError("--progress and --no-progress contradict each other");
  return {
    file,
    format,
    url,
    apiKey: v["api-key"] ?? (env.KEYFLOW_API_KEY || undefined),
    batchSize: count("batch-size", v["batch-size"], 1000, 1, MAX_BATCH_EVENTS),
    concurrency: count("concurrency", v.concurrency, 4, 1, 256),
    rate: count("rate", v.rate, 0, 0),
    checkpoint: v.checkpoint ?? (file === "-" ? undefined : `${file}.keyflow-checkpoint`),
    restart: v.restart ?? false,
    progress: v.progress ? "on" : v["no-progress"] ? "off" : "auto",
    json: v.json ?? false,
    maxAttempts: count("retries", v.retries, 10, 1, 1000),
  };
}

import { createClient, KeyflowError, type KeyflowClient } from "../client/index.ts";
import { errorOf } from "../client/errors.ts";
import { UsageError, type Io } from "./io.ts";

/** The server the client commands talk to when neither --url nor KEYFLOW_URL says (PORT's default in src/settings/env.ts). */
export const DEFAULT_URL = "http://127.0.0.1:8787";

/** A request with no answer (and body) within this is abandoned: a command never hangs on a stuck server. */
const REQUEST_TIMEOUT_MS = 30_000;

/** The flags every command that talks to a server takes. */
export const REMOTE_OPTIONS = {
  url: { type: "string" },
  "api-key": { type: "string" },
} as const;

export const REMOTE_USAGE = `  --url URL        the server (default: KEYFLOW_URL, else ${DEFAULT_URL})
  --api-key KEY    the API key (default: KEYFLOW_API_KEY); read scope for reads, admin for dead letters`;

/** A server: the typed client for what it has, and plain requests (with the same key) for the rest. */
export interface Remote {
  base: string;
  client: KeyflowClient;
  /** A JSON request; an answer that is not 2xx throws a KeyflowError with the server's message. */
  json<T>(method: "GET" | "POST", path: string): Promise<T>;
  headers: Record<string, string>;
}

export function remote(values: { url?: string; "api-key"?: string }, io: Io): Remote {
  const [source, url] = values.url !== undefined ? ["--url", values.url] : io.env.KEYFLOW_URL ? ["KEYFLOW_URL", io.env.KEYFLOW_URL] : ["--url", DEFAULT_URL];
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) throw new UsageError(`${source} must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  const key = values["api-key"] ?? (io.env.KEYFLOW_API_KEY || undefined);
  if (key !== undefined && !/^[\x21-\x7e]+$/.test(key)) throw new UsageError(`${values["api-key"] !== undefined ? "--api-key" : "KEYFLOW_API_KEY"} must be a key like kf_…, without spaces`);
  const base = url.replace(/\/+$/, "");
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const client = createClient({ url: base, ...(key ? { key } : {}), requestTimeoutMs: REQUEST_TIMEOUT_MS, flushOnPageHide: false, onError: () => undefined });
  const json = async <T>(method: "GET" | "POST", path: string): Promise<T> => {
    try {
      const response = await fetch(base + path, { method, headers: { ...headers, accept: "application/json" }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      if (!response.ok) throw await errorOf(response, Date.now());
      return (await response.json()) as T;
    } catch (error) {
      if (error instanceof KeyflowError) throw error;
      throw new KeyflowError(0, "network_error", `no answer from ${base}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  };
  return { base, client, json, headers };
}

/** `/v1/actors/<key>`: a key is data, encoded whatever it holds. */
export const actorPath = (key: string) => `/v1/actors/${encodeURIComponent(key)}`;

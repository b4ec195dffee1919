import { getJson, type Transport } from "./http.ts";
import type { ActorView, AlertRecord, LateEntry, WindowsQuery, WindowView } from "./types.ts";

/**
 * The typed reads (a key with the `read` scope). A key nobody sent events for throws a KeyflowError
 * with status 404 and code `actor_not_found`; a query the server refuses, 400 `invalid_query`.
 */

const actorPath = (key: string) => `/v1/actors/${encodeURIComponent(key)}`;

/** `GET /v1/actors/:key`: totals, first/last event time, watermark, open and recently closed windows. */
export function readActor(t: Transport, key: string, signal?: AbortSignal): Promise<ActorView> {
  return getJson<ActorView>(t, actorPath(key), signal);
}

/** `GET /v1/actors/:key/windows`: the key's windows, filtered by the query. */
export async function readWindows(t: Transport, key: string, query: WindowsQuery = {}, signal?: AbortSignal): Promise<WindowView[]> {
  const params = new URLSearchParams();
  if (query.size !== undefined) params.set("size", query.size);
  if (query.type !== undefined) params.set("type", query.type);
  if (query.from !== undefined) params.set("from", timeParam(query.from));
  if (query.to !== undefined) params.set("to", timeParam(query.to));
  if (query.limit !== undefined) params.set("limit", String(query.limit));
  const search = params.toString();
  const body = await getJson<{ key: string; windows: WindowView[] }>(t, `${actorPath(key)}/windows${search ? `?${search}` : ""}`, signal);
  return body.windows;
}

/** `GET /v1/actors/:key/late`: the bounded log of late events, with the windows each missed. */
export async function readLate(t: Transport, key: string, signal?: AbortSignal): Promise<LateEntry[]> {
  return (await getJson<{ key: string; late: LateEntry[] }>(t, `${actorPath(key)}/late`, signal)).late;
}

/** `GET /v1/actors/:key/alerts`: the alerts the detection rules of keyflow.config.json fired for the key. */
export async function readAlerts(t: Transport, key: string, signal?: AbortSignal): Promise<AlertRecord[]> {
  return (await getJson<{ key: string; alerts: AlertRecord[] }>(t, `${actorPath(key)}/alerts`, signal)).alerts;
}

function timeParam(time: string | number | Date): string {
  if (time instanceof Date) return time.toISOString();
  return String(time);
}

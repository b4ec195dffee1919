import type { EnvReader } from "../../settings/reader.ts";
import { postgresUrl } from "../urls.ts";
import type { PostgresSinkOptions } from "./sink.ts";

export type PostgresSettings = Omit<PostgresSinkOptions, "poolPerDelivery">;

/** KEYFLOW_POSTGRES_URL (or DATABASE_URL) turns the Postgres sink on. */
export function postgresSettings(r: EnvReader, timeoutMs: number): PostgresSettings | undefined {
  const found = r.get("KEYFLOW_POSTGRES_URL", "DATABASE_URL");
  if (!found) return undefined;
  const url = r.check(postgresUrl, found.name, found.value);
  const wsProxy = r.env.KEYFLOW_NEON_WSPROXY;
  if (wsProxy && !/^[^\s/:]+(:\d+)?(\/\S*)?$/.test(wsProxy)) {
    r.problem("KEYFLOW_NEON_WSPROXY", wsProxy, "must be host[:port][/path], e.g. 127.0.0.1:6543/v1");
  }
  if (!url) return undefined;
  return { url, wsProxy: wsProxy || undefined, wsProxyTls: r.env.KEYFLOW_NEON_WSPROXY_TLS === "true", timeoutMs };
}

import type { EnvReader } from "../../settings/reader.ts";
import { postgresUrl } from "../urls.ts";
import type { PostgresSinkOptions } from "./sink.ts";

export interface PostgresSettings extends Omit<PostgresSinkOptions, "poolPerDelivery"> {
  /**
   * Which driver (KEYFLOW_POSTGRES_CLIENT): absent, the Neon driver (a Neon host, KEYFLOW_NEON_WSPROXY
   * set, or KEYFLOW_POSTGRES_CLIENT=neon); "native", postgres.js (the self-hosted server only);
   * "auto", postgres.js where the host has it (the self-hosted server), the Neon driver elsewhere (Workers).
   */
  client?: "native" | "auto";
}

const CLIENTS = ["auto", "native", "neon"];

/** A host of Neon's own (its proxy speaks the Neon driver's WebSocket protocol). */
export function isNeonHost(url: string): boolean {
  try {
    const host = new URL(url).hostname.toLowerCase();
    return host === "neon.tech" || host.endsWith(".neon.tech");
  } catch {
    return false;
  }
}

/** KEYFLOW_POSTGRES_URL (or DATABASE_URL) turns the Postgres sink on. */
export function postgresSettings(r: EnvReader, timeoutMs: number): PostgresSettings | undefined {
  const found = r.get("KEYFLOW_POSTGRES_URL", "DATABASE_URL");
  if (!found) return undefined;
  const url = r.check(postgresUrl, found.name, found.value);
  const wsProxy = r.env.KEYFLOW_NEON_WSPROXY;
  if (wsProxy && !/^[^\s/:]+(:\d+)?(\/\S*)?$/.test(wsProxy)) {
    r.problem("KEYFLOW_NEON_WSPROXY", wsProxy, "must be host[:port][/path], e.g. 127.0.0.1:6543/v1");
  }
  const choice = r.text("KEYFLOW_POSTGRES_CLIENT", "auto");
  if (!CLIENTS.includes(choice)) r.problem("KEYFLOW_POSTGRES_CLIENT", choice, `must be one of ${CLIENTS.join(", ")}`);
  if (!url) return undefined;
  const settings: PostgresSettings = { url, wsProxy: wsProxy || undefined, wsProxyTls: r.env.KEYFLOW_NEON_WSPROXY_TLS === "true", timeoutMs };
  if (choice === "native" || (choice === "auto" && !wsProxy && !isNeonHost(url))) settings.client = choice === "native" ? "native" : "auto";
  return settings;
}

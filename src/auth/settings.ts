import type { EnvReader } from "../settings/reader.ts";
import { parseApiKeys, type ApiKey } from "./api-keys.ts";

/** Who may call the API: KEYFLOW_AUTH, KEYFLOW_API_KEYS, KEYFLOW_CORS_ORIGINS. */
export interface AuthSettings {
  /** KEYFLOW_AUTH=off runs the API open to anyone, on purpose. */
  off: boolean;
  keys: ApiKey[];
  /** Extra origins browsers may call from with any key (public keys bring their own). */
  corsOrigins: string[];
}

const CORS_ORIGIN = /^(\*|https?:\/\/[a-z0-9.-]+(:\d{1,5})?)$/;

export function readAuthSettings(r: EnvReader): AuthSettings {
  const mode = r.text("KEYFLOW_AUTH", "on");
  if (mode !== "on" && mode !== "off") r.problem("KEYFLOW_AUTH", mode, 'must be "on" or "off"');
  const { keys, problems } = parseApiKeys(r.env.KEYFLOW_API_KEYS ?? "");
  // The variable's value is not echoed: it names tenants and origins, and is usually a secret.
  for (const problem of problems) r.problems.push(`KEYFLOW_API_KEYS: ${problem}`);
  const corsOrigins = (r.env.KEYFLOW_CORS_ORIGINS ?? "").split(",").map((o) => o.trim().toLowerCase()).filter(Boolean);
  for (const origin of corsOrigins) {
    if (!CORS_ORIGIN.test(origin)) r.problem("KEYFLOW_CORS_ORIGINS", origin, "each origin must be scheme://host[:port] or *");
  }
  return { off: mode === "off", keys, corsOrigins };
}

/** Whether the server listens on this machine only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

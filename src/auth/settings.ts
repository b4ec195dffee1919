import type { EnvReader } from "../settings/reader.ts";
import { parseApiKeys, type ApiKey } from "./api-keys.ts";
import { parseRate, type RateLimitSettings } from "./rate-limits.ts";

/** Who may call the API: KEYFLOW_AUTH, KEYFLOW_API_KEYS, KEYFLOW_CORS_ORIGINS. */
export interface AuthSettings {
  /** KEYFLOW_AUTH=off runs the API open to anyone, on purpose. */
  off: boolean;
  keys: ApiKey[];
  /** Extra origins browsers may call from with any key (public keys bring their own). */
  corsOrigins: string[];
  rateLimits: RateLimitSettings;
}

/** Token buckets: per API key and per tenant, requests and events (unset: no limit). */
const RATE_VARIABLES = {
  KEYFLOW_RATE_LIMIT_KEY_REQUESTS: "keyRequests",
  KEYFLOW_RATE_LIMIT_KEY_EVENTS: "keyEvents",
  KEYFLOW_RATE_LIMIT_TENANT_REQUESTS: "tenantRequests",
  KEYFLOW_RATE_LIMIT_TENANT_EVENTS: "tenantEvents",
} as const;

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
  const rateLimits: RateLimitSettings = {};
  for (const [name, field] of Object.entries(RATE_VARIABLES)) {
    const text = r.env[name];
    if (!text) continue;
    const rate = parseRate(text);
    if (typeof rate === "string") r.problem(name, text, rate);
    else rateLimits[field] = rate;
  }
  return { off: mode === "off", keys, corsOrigins, rateLimits };
}

/** Whether the server listens on this machine only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

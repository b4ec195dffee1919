import { TENANT_NAME } from "../actor/tenant.ts";

/**
 * API keys as configured: one line per key, `<tenant>:<scopes>:<sha256 hex>[:<origins>]`, lines
 * separated by whitespace (KEYFLOW_API_KEYS). Only the SHA-256 of a key is configured, so the
 * configuration is no secret and a leak of it lets nobody in. `npm run keys -- create` prints a
 * new key once, with its line.
 */

/** `metrics`: the operator's view across tenants (GET /metrics); the others act within the key's tenant. */
export const SCOPES = ["ingest", "read", "admin", "metrics"] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  /** Names the key in logs and errors without revealing it: the first 12 hex digits of its hash. */
  id: string;
  tenant: string;
  scopes: ReadonlySet<Scope>;
  /**
   * A public key (safe to embed in a web page) is bound to these origins and may only ingest;
   * null for a server key, which is sent from anywhere.
   */
  origins: readonly string[] | null;
  sha256: Uint8Array;
}

/** A browser origin as a page sends it: scheme, host, optional port; `*.` allows every subdomain. */
const ORIGIN = /^https?:\/\/(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:\d{1,5})?$/;
const HASH = /^[0-9a-f]{64}$/;

export function parseApiKeys(text: string): { keys: ApiKey[]; problems: string[] } {
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  const lines = text.split(/\s+/).filter(Boolean);
  lines.forEach((line, n) => {
    const parsed = parseLine(line);
    if (typeof parsed === "string") return void problems.push(`key ${n + 1}: ${parsed}`);
    if (keys.some((k) => sameBytes(k.sha256, parsed.sha256))) return void problems.push(`key ${n + 1}: the same key is configured twice`);
    keys.push(parsed);
  });
  return { keys, problems };
}

/** One key line, or what is wrong with it (never echoing the line: it is configuration, but be sparing). */
function parseLine(line: string): ApiKey | string {
  const [tenant = "", scopeText = "", hash = "", ...rest] = line.split(":");
  const originText = rest.join(":");
  if (!TENANT_NAME.test(tenant)) return `tenant "${tenant.slice(0, 70)}" must match ${TENANT_NAME.source}`;
  const scopes = new Set<Scope>();
  for (const scope of scopeText.split(",")) {
    if (!(SCOPES as readonly string[]).includes(scope)) return `scope "${scope.slice(0, 20)}" is not one of ${SCOPES.join(", ")}`;
    scopes.add(scope as Scope);
  }
  const sha256 = hash.toLowerCase();
  if (!HASH.test(sha256)) return "the third field must be the key's SHA-256 as 64 hex digits (npm run keys -- create prints it)";
  let origins: string[] | null = null;
  if (rest.length) {
    origins = originText.split(",").map((o) => o.toLowerCase());
    const bad = origins.find((o) => !ORIGIN.test(o));
    if (bad !== undefined) return `origin "${bad.slice(0, 100)}" must be scheme://host[:port] (no path), optionally https://*.example.com`;
    if (scopes.size !== 1 || !scopes.has("ingest")) return "a key bound to origins is public (it is embedded in web pages): its only scope must be ingest";
  }
  return { id: sha256.slice(0, 12), tenant, scopes, origins, sha256: fromHex(sha256) };
}

export function keyLine(key: { tenant: string; scopes: Iterable<Scope>; sha256Hex: string; origins?: readonly string[] | null }): string {
  const line = `${key.tenant}:${[...key.scopes].join(",")}:${key.sha256Hex}`;
  return key.origins?.length ? `${line}:${key.origins.join(",")}` : line;
}

/** Whether a public key may be used from this page's origin. */
export function originAllowed(allowed: readonly string[], origin: string): boolean {
  const o = origin.toLowerCase();
  return allowed.some((a) => {
    if (!a.includes("://*.")) return a === o;
    const [scheme, rest] = a.split("://*.") as [string, string];
    return o.startsWith(`${scheme}://`) && o.endsWith(`.${rest}`) && o.length > scheme.length + 4 + rest.length;
  });
}

/**
 * A new key: `kf_` (server) or `kf_pub_` (public), then 32 random bytes as base64url. The prefix
 * only helps people and secret scanners tell keys apart; what a key may do is in its line.
 */
export function newKeyText(bytes: Uint8Array, isPublic: boolean): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const b64url = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${isPublic ? "kf_pub_" : "kf_"}${b64url}`;
}

function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

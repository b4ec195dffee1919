/**
 * Standard Webhooks (https://www.standardwebhooks.com, spec v1.0.0) signing with WebCrypto only, so
 * the same code runs on Workers, Bun and Deno: secrets, message ids and signatures.
 */

const utf8 = new TextEncoder();

/** The Standard Webhooks prefix of a symmetric secret: `whsec_<base64 of 24-64 random bytes>`. */
export const SECRET_PREFIX = "whsec_";
/** The fewest key bytes a `whsec_` secret may hold (the spec asks for 24 to 64). */
export const MIN_SECRET_BYTES = 24;

/** Canonical standard base64, padded: what every Standard Webhooks library decodes alike. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const ORDINALS = ["1st", "2nd", "3rd"];
const ordinal = (i: number) => ORDINALS[i] ?? `${i + 1}th`;

/**
 * The secrets KEYFLOW_WEBHOOK_SECRET holds, the current one first. During a rotation it holds several
 * separated by whitespace, at least one of them `whsec_`; a value with no `whsec_` part is one
 * (deprecated) raw secret, read whole, spaces included, as before Standard Webhooks.
 */
export function splitSecrets(text: string): string[] {
  const parts = text.split(/\s+/).filter(Boolean);
  return parts.some((p) => p.startsWith(SECRET_PREFIX)) ? parts : [text];
}

/** What is wrong with the secrets in `text`, if anything. The messages never quote a secret. */
export function secretProblems(text: string): string[] {
  const secrets = splitSecrets(text);
  const problems: string[] = [];
  secrets.forEach((secret, i) => {
    const problem = secretProblem(secret);
    if (problem) problems.push(secrets.length > 1 ? `the ${ordinal(i)} secret: ${problem}` : problem);
  });
  return problems;
}

function secretProblem(secret: string): string | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined; // deprecated raw secret: its UTF-8 bytes are the key
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!BASE64.test(encoded)) return "a whsec_ secret must continue with standard base64 (A-Z, a-z, 0-9, + and /, padded with =)";
  const bytes = decodedLength(encoded);
  if (bytes < MIN_SECRET_BYTES) {
    return `a whsec_ secret must hold at least ${MIN_SECRET_BYTES} random bytes (this one holds ${bytes}); make one with: echo "whsec_$(openssl rand -base64 32)"`;
  }
  return undefined;
}

const decodedLength = (encoded: string) => (encoded.length / 4) * 3 - (encoded.endsWith("==") ? 2 : encoded.endsWith("=") ? 1 : 0);

/** The HMAC key bytes of one secret: a `whsec_` secret's base64 decoded, or a raw secret's UTF-8 bytes (deprecated). */
export function secretKey(secret: string): Uint8Array {
  if (!secret.startsWith(SECRET_PREFIX)) return utf8.encode(secret);
  const problem = secretProblem(secret);
  if (problem) throw new Error(`KEYFLOW_WEBHOOK_SECRET: ${problem}`);
  return Uint8Array.from(atob(secret.slice(SECRET_PREFIX.length)), (c) => c.charCodeAt(0));
}

export function hmacKey(bytes: Uint8Array): Promise<CryptoKey> {
  // Never a view of a SharedArrayBuffer: the bytes come from TextEncoder or Uint8Array.from.
  return crypto.subtle.importKey("raw", bytes as Uint8Array<ArrayBuffer>, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

export async function hmac(key: CryptoKey, text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8.encode(text)));
}

export function base64Of(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export const hexOf = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

/** The text a Standard Webhooks `v1` signature covers. */
export const signedContent = (id: string, timestamp: string | number, body: string) => `${id}.${timestamp}.${body}`;

/**
 * One Standard Webhooks `v1` signature: `v1,` + base64 HMAC-SHA256(key, `${id}.${timestamp}.${body}`),
 * keyed by one secret (`whsec_…`, or a deprecated raw secret). The sink itself caches its keys.
 */
export async function standardSignature(secret: string, id: string, timestamp: string | number, body: string): Promise<string> {
  return `v1,${base64Of(await hmac(await hmacKey(secretKey(secret)), signedContent(id, timestamp, body)))}`;
}

/**
 * A webhook-id derived from what the batch holds (its records' idempotency keys, which hold no
 * newline): `msg_` + base64url SHA-256. Every attempt at the same batch carries the same id.
 */
export async function messageId(idempotencyKeys: readonly string[]): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8.encode(idempotencyKeys.join("\n"))));
  return `msg_${base64Of(digest).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

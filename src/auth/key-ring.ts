import type { ApiKey } from "./api-keys.ts";

/** SHA-256 of a key's UTF-8 text; each runtime passes its fastest (Bun's hasher, node:crypto, WebCrypto). */
export type Sha256 = (text: string) => Uint8Array | Promise<Uint8Array>;

export const webCryptoSha256: Sha256 = async (text) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));

/** RFC 6750 b64token, bounded: anything else is no key, and is refused without hashing it. */
const TOKEN = /^[A-Za-z0-9\-._~+/]{1,200}=*$/;

/**
 * The configured keys, looked up by the hash of a presented key. The hash is compared with every
 * configured hash, byte by byte without an early exit, so how long a lookup takes says nothing
 * about how much of a hash matched, nor which key it was; an unknown key and a wrong one are the
 * same thing here (a key names nothing but itself) and take the same path.
 */
export class KeyRing {
  constructor(
    private readonly keys: readonly ApiKey[],
    private readonly sha256: Sha256,
  ) {}

  get size(): number {
    return this.keys.length;
  }

  async find(token: string): Promise<ApiKey | undefined> {
    if (!TOKEN.test(token)) return undefined;
    const digest = await this.sha256(token);
    let found: ApiKey | undefined;
    for (const key of this.keys) {
      let diff = 0;
      for (let i = 0; i < 32; i++) diff |= digest[i]! ^ key.sha256[i]!;
      if (diff === 0) found = key;
    }
    return found;
  }

  /** Every origin some public key may be used from (what a CORS preflight, which carries no key, allows). */
  origins(): string[] {
    return [...new Set(this.keys.flatMap((k) => k.origins ?? []))];
  }
}

import type { ApiKey } from "./api-keys.ts";

/**
 * SHA-256 of a key's UTF-8 text; each runtime passes its fastest: synchronous into a buffer (Bun's
 * hasher, node:crypto), or asynchronous (WebCrypto, Workers).
 */
export type Sha256 = { into(text: string, out: Uint8Array): void } | { digest(text: string): Promise<Uint8Array> };

export const webCryptoSha256: Sha256 = {
  digest: async (text) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))),
};

/** RFC 6750 b64token, bounded: anything else is no key, and is refused without hashing it. */
const TOKEN = /^[A-Za-z0-9\-._~+/]{1,200}=*$/;

/** A SHA-256 digest as eight 32-bit words (copied, so the view is aligned whatever buffer the digest came in). */
function words(digest: Uint8Array): Uint32Array {
  const copy = new Uint8Array(32);
  copy.set(digest.subarray(0, 32));
  return new Uint32Array(copy.buffer);
}

/** Where a synchronous hasher writes: shared, as a synchronous lookup never interleaves with another. */
const scratch = new Uint8Array(32);
const scratchWords = new Uint32Array(scratch.buffer);

/**
 * The configured keys, looked up by the hash of a presented key. The hash is compared with every
 * configured hash, word by word without an early exit, so how long a lookup takes says nothing
 * about how much of a hash matched, nor which key it was; an unknown key and a wrong one are the
 * same thing here (a key names nothing but itself) and take the same path. With a synchronous
 * hasher (Bun, node:crypto) the lookup is synchronous too.
 */
export class KeyRing {
  private readonly hashes: Uint32Array[];

  constructor(
    private readonly keys: readonly ApiKey[],
    private readonly sha256: Sha256,
  ) {
    this.hashes = keys.map((k) => words(k.sha256));
  }

  find(token: string): ApiKey | undefined | Promise<ApiKey | undefined> {
    if (!TOKEN.test(token)) return undefined;
    if ("digest" in this.sha256) return this.sha256.digest(token).then((d) => this.match(words(d)));
    this.sha256.into(token, scratch);
    return this.match(scratchWords);
  }

  private match(d: Uint32Array): ApiKey | undefined {
    let found = -1;
    for (let k = 0; k < this.hashes.length; k++) {
      const h = this.hashes[k]!;
      const diff = (d[0]! ^ h[0]!) | (d[1]! ^ h[1]!) | (d[2]! ^ h[2]!) | (d[3]! ^ h[3]!) | (d[4]! ^ h[4]!) | (d[5]! ^ h[5]!) | (d[6]! ^ h[6]!) | (d[7]! ^ h[7]!);
      if (diff === 0) found = k;
    }
    return found < 0 ? undefined : this.keys[found];
  }

  /** Every origin some public key may be used from (what a CORS preflight, which carries no key, allows). */
  origins(): string[] {
    return [...new Set(this.keys.flatMap((k) => k.origins ?? []))];
  }
}

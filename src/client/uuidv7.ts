/**
 * RFC 9562 UUIDv7 (§5.7): a 48-bit big-endian Unix timestamp in milliseconds, the version `0111`,
 * 12 bits `rand_a`, the variant `10`, 62 bits `rand_b` — 74 random bits from crypto.getRandomValues.
 *
 * IDs from one generator are strictly increasing (§6.2 method 2, "monotonic random"): within one
 * millisecond, or when the clock steps back, the 74 random bits of the previous ID are incremented
 * by one instead of drawn afresh; if they overflow, the timestamp is advanced by one millisecond.
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const MAX_MS = 2 ** 48 - 1;

export type RandomBytes = (bytes: Uint8Array) => void;

/** Fills `bytes` from the platform's CSPRNG (browsers, Workers, Bun, Deno, Node ≥ 19). */
export const cryptoRandomBytes: RandomBytes = (bytes) => {
  // A fresh array: its type suits every runtime's declaration of getRandomValues (DOM, Workers, Deno).
  bytes.set(crypto.getRandomValues(new Uint8Array(bytes.length)));
};

/** A UUIDv7 generator: `now` gives epoch milliseconds, `fill` the random bits (both injectable for tests). */
export function uuidv7Generator(now: () => number = Date.now, fill: RandomBytes = cryptoRandomBytes): () => string {
  const bytes = new Uint8Array(16);
  let lastMs = -1;
  return () => {
    let ms = Math.min(MAX_MS, Math.max(0, Math.floor(now())));
    if (ms > lastMs) {
      fill(bytes.subarray(6));
    } else {
      ms = lastMs;
      if (!increment(bytes)) {
        ms = Math.min(MAX_MS, ms + 1);
        fill(bytes.subarray(6));
      }
    }
    lastMs = ms;
    for (let i = 5; i >= 0; i--) {
      bytes[i] = ms % 256;
      ms = Math.floor(ms / 256);
    }
    bytes[6] = 0x70 | (bytes[6]! & 0x0f);
    bytes[8] = 0x80 | (bytes[8]! & 0x3f);
    return format(bytes);
  };
}

/**
 * Adds one to the 74 random bits, read as one number from the low 4 bits of byte 6 (rand_a's top),
 * byte 7, the low 6 bits of byte 8 (under the variant) and bytes 9–15; false when they overflow.
 */
function increment(bytes: Uint8Array): boolean {
  for (let i = 15; i >= 6; i--) {
    const mask = i === 6 ? 0x0f : i === 8 ? 0x3f : 0xff;
    const current = bytes[i]! & mask;
    const fixed = bytes[i]! & ~mask & 0xff;
    if (current < mask) {
      bytes[i] = fixed | (current + 1);
      return true;
    }
    bytes[i] = fixed;
  }
  return false;
}

function format(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < 16; i++) {
    s += HEX[bytes[i]!];
    if (i === 3 || i === 5 || i === 7 || i === 9) s += "-";
  }
  return s;
}

/** The millisecond timestamp of a UUIDv7 string, or undefined when it is not one. */
export function uuidv7Time(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** A fresh UUIDv7 from a module-wide generator (monotonic within this module instance). */
export const uuidv7: () => string = uuidv7Generator();

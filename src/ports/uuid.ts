import type { Env } from "./clock.ts";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** RFC 9562 UUIDv7: 48-bit millisecond timestamp, then random bits, from the injected clock and entropy. */
export function uuidv7(env: Env): string {
  const bytes = new Uint8Array(16);
  let ms = Math.max(0, Math.floor(env.clock.now()));
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  for (let i = 6; i < 16; i++) bytes[i] = Math.floor(env.random.next() * 256);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  let s = "";
  for (let i = 0; i < 16; i++) {
    s += HEX[bytes[i]!];
    if (i === 3 || i === 5 || i === 7 || i === 9) s += "-";
  }
  return s;
}

// The core never reads the host's clock or entropy directly: hosts inject these,
// so the simulator can drive time and randomness from a seed.
export interface Clock {
  now(): number;
}

export interface Random {
  /** Uniform float in [0, 1). */
  next(): number;
}

export interface Env {
  clock: Clock;
  random: Random;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** RFC 9562 UUIDv7: 48-bit millisecond timestamp, then random bits. */
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

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}

// The core never reads the host's clock or entropy directly: hosts inject these,
// so the simulator can drive time and randomness from a seed.
export interface Clock {
  /** Milliseconds since the epoch. */
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

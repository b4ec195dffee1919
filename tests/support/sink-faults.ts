/**
 * Faults for the sink tests (tests/integration/sink-faults.test.ts): a Kafka REST front of its own,
 * restartable on the same port, and helpers that cut a sink's connections.
 */
import { join } from "node:path";
import type { Pool } from "@neondatabase/serverless";
import { BIN, freePort, spawnUntil, type RunningProcess } from "./process.ts";
import { KAFKA_BROKERS } from "./kafka.ts";

export interface KafkaFront extends RunningProcess {
  /** http://127.0.0.1:<port>: KEYFLOW_KAFKA_REST_URL. */
  url: string;
  port: number;
}

/** Starts scripts/fronts/kafka-rest.ts (the Strimzi bridge's v2 produce API) and waits until its producer is connected. */
export async function startKafkaFront(port?: number): Promise<KafkaFront> {
  const p0 = port ?? (await freePort());
  const p = await spawnUntil(
    [join(BIN, "bun"), "scripts/fronts/kafka-rest.ts"],
    /kafka-rest front \(Strimzi bridge API\) \S+: (http:\/\/[^\s,]+)/,
    { BRIDGE_HOST: "127.0.0.1", BRIDGE_PORT: String(p0), KAFKA_BROKERS: KAFKA_BROKERS.join(",") },
  );
  return { ...p, url: p.match[1]!, port: p0 };
}

/** Kills a process at once (no graceful close: connections are cut mid-request) and waits for it to exit. */
export async function kill(p: RunningProcess): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill("SIGKILL");
  await p.proc.exited;
}

/** True while the process runs. */
export function alive(p: RunningProcess): boolean {
  return p.proc.exitCode === null && p.proc.signalCode === null;
}

/**
 * Terminates the backends of the sessions named `applicationName` (and only those: never the
 * checking pool's own) and returns how many there were.
 */
export async function terminateBackends(pool: Pool, applicationName: string): Promise<number> {
  const { rows } = await pool.query(
    `SELECT count(*)::int AS n FROM (
       SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
     ) t`,
    [applicationName],
  );
  return rows[0].n as number;
}

/** How many backends the sessions named `applicationName` hold. */
export async function backends(pool: Pool, applicationName: string): Promise<number> {
  const { rows } = await pool.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
    [applicationName],
  );
  return rows[0].n as number;
}

/**
 * Polls `probe` every 100 ms until it returns something truthy; throws after `timeoutMs`, naming
 * `what`. A probe that throws is tried again; `fatal` (checked before each probe) ends the wait at once.
 */
export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined | false | null | 0>,
  fatal: () => void = () => undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    fatal();
    try {
      const value = await probe();
      if (value) return value as T;
    } catch (error) {
      lastError = error;
    }
    await Bun.sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}`);
}

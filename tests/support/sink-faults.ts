/**
 * Faults for the sink tests (tests/integration/sink-faults.test.ts, native-sink-faults.test.ts): a
 * Kafka REST front of its own, restartable on the same port, helpers that cut a sink's connections,
 * and the ingest load both run meanwhile.
 */
import { join } from "node:path";
import type { Pool } from "@neondatabase/serverless";
import { BIN, freePort, spawnUntil, type RunningProcess } from "./process.ts";
import { KAFKA_BROKERS } from "./kafka.ts";
import type { ServerProcess } from "./targets.ts";

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

/** Throws with the server's last output when it has exited: the failure the fault tests exist for. */
export function serverAlive(server: ServerProcess): void {
  if (!alive(server)) {
    throw new Error(`the keyflow server exited (code ${server.proc.exitCode}, signal ${server.proc.signalCode}):\n${server.output().slice(-4000)}`);
  }
}

export interface IngestLoad {
  /** Per key, the event ids the server accepted, in order. */
  readonly accepted: Map<string, string[]>;
  /** Answers by HTTP status. */
  readonly statuses: Record<number, number>;
  /** Events accepted, and requests retried after a 429. */
  readonly sent: number;
  readonly retried: number;
  /** Throws the first ingest failure, or the server's exit. */
  check(): void;
  /** Ends the lanes and waits for the requests in flight. */
  stop(): Promise<void>;
}

/**
 * Ingest for the fault tests: `lanes` clients, each POSTing batches of `eventsPerRequest` events
 * over keys of its own (so each key's order is known) until stopped. A 429 is retried after a short
 * wait (nothing of it was applied); any other answer but 200, or a batch not wholly accepted, fails
 * the load, and check() throws it at once rather than after the fault schedule.
 */
export function startIngest(server: ServerProcess, opts: { keys: string[]; lanes: number; eventsPerRequest: number; run: string }): IngestLoad {
  const accepted = new Map<string, string[]>(opts.keys.map((k) => [k, []]));
  const statuses: Record<number, number> = {};
  let sent = 0;
  let retried = 0;
  let stopped = false;
  let failure: unknown;
  const lane = async (l: number) => {
    const keys = opts.keys.filter((_, i) => i % opts.lanes === l);
    let next = 0;
    while (!stopped) {
      const events = Array.from({ length: opts.eventsPerRequest }, () => {
        const i = next++;
        return { event_id: `${opts.run}-${l}-${i}`, event_type: "purchase", user_id: keys[i % keys.length]!, value: i % 100 };
      });
      for (let attempt = 0; ; attempt++) {
        serverAlive(server);
        const res = await fetch(`${server.url}/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status === 429 && attempt < 100) {
          retried++;
          await res.body?.cancel();
          await Bun.sleep(100);
          continue;
        }
        const body = (await res.json()) as { accepted?: number };
        if (res.status !== 200) throw new Error(`ingest answered ${res.status}: ${JSON.stringify(body)}`);
        if (body.accepted !== events.length) throw new Error(`ingest accepted ${body.accepted} of ${events.length}: ${JSON.stringify(body)}`);
        for (const e of events) accepted.get(e.user_id)!.push(e.event_id);
        sent += events.length;
        break;
      }
      await Bun.sleep(40);
    }
  };
  const lanes = Promise.all(Array.from({ length: opts.lanes }, (_, l) => lane(l)));
  lanes.catch((error) => {
    failure = error;
    stopped = true;
  });
  return {
    accepted,
    statuses,
    get sent() {
      return sent;
    },
    get retried() {
      return retried;
    },
    check() {
      if (failure) throw failure;
      serverAlive(server);
    },
    async stop() {
      stopped = true;
      await lanes.catch(() => undefined);
    },
  };
}

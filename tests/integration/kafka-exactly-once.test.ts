/**
 * Exactly once into Kafka through the native producer, across crashes: the real Bun server (durable
 * SQLite in a temp dir, KEYFLOW_KAFKA_BROKERS on the local broker) takes single events and batches
 * with unique IDs over a few keys, and is killed with SIGKILL at random points (seeded) several
 * times, restarted on the same data dir each time. Unacknowledged requests are sent again (a retried
 * event ID the server took before is a duplicate it drops). Once every request is acknowledged and
 * the Kafka backlog is empty, a read_committed consumer finds every accepted event exactly once.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { SeededRandom } from "../support/fake-env.ts";
import { ensureServices, createTopic, uniqueTopic } from "../support/kafka.ts";
import { exactlyOnceProblems, readToEnd } from "../support/kafka-read.ts";
import { BUN_SERVER, spawnServer, tempDir, type ServerProcess } from "../support/targets.ts";

const SEED = Number(process.env.KEYFLOW_CRASH_SEED ?? 1313);
const KILLS = 8;
const KEYS = Array.from({ length: 8 }, (_, i) => `eo-user-${i}`);
const T0 = Date.UTC(2026, 10, 30, 6, 0, 0);


interface Request {
  events: Array<{ event_id: string; event_type: string; user_id: string; timestamp: number; value: number }>;
  batch: boolean;
}

const dir = tempDir("kafka-eo");
const base = uniqueTopic("kf-eo");
const env = {
  PORT: "0",
  HOST: "127.0.0.1",
  KEYFLOW_DATA_DIR: dir.path,
  KEYFLOW_LOG_LEVEL: "warn",
  KEYFLOW_KAFKA_BROKERS: "127.0.0.1:9092",
  KEYFLOW_KAFKA_TOPIC: `${base}.events`,
  KEYFLOW_KAFKA_WINDOWS_TOPIC: `${base}.windows`,
  KEYFLOW_KAFKA_ALERTS_TOPIC: `${base}.alerts`,
  KEYFLOW_KAFKA_PROGRESS_TOPIC: `${base}.progress`,
  KEYFLOW_SINK_MAX_DELAY: "5ms",
  KEYFLOW_SINK_BACKOFF_MAX: "200ms",
};
let server: ServerProcess | undefined;

beforeAll(async () => {
  ensureServices();
  await Promise.all([createTopic(`${base}.events`), createTopic(`${base}.windows`, 1), createTopic(`${base}.alerts`, 1)]);
}, 300_000);

afterAll(async () => {
  await server?.stop();
  dir.remove();
});

/** True when the server acknowledged every event of the request (accepted now, or a duplicate of one accepted before). */
async function send(url: string, r: Request): Promise<boolean> {
  try {
    const res = r.batch
      ? await fetch(`${url}/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(r.events) })
      : await fetch(`${url}/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(r.events[0]) });
    if (!res.ok) return false;
    const body = (await res.json()) as { rejected?: unknown[] };
    return !r.batch || (body.rejected?.length ?? 0) === 0;
  } catch {
    return false;
  }
}

test("SIGKILL at random points under load: every accepted event is in Kafka exactly once", async () => {
  // One seed: the same kill points and requests every run.
  const prng = new SeededRandom(SEED);
  const random = () => prng.next();
  let next = 0;
  const makeRequest = (): Request => {
    const batch = random() < 0.4;
    const count = batch ? 1 + Math.floor(random() * 25) : 1;
    const events = Array.from({ length: count }, () => {
      const i = next++;
      return { event_id: `eo-${i}`, event_type: i % 3 ? "page_view" : "purchase", user_id: KEYS[Math.floor(random() * KEYS.length)]!, timestamp: T0 + i * 10, value: i };
    });
    return { events, batch };
  };
  const sent: Request[] = [];
  const unacknowledged: Request[] = [];
  let interrupted = 0;
  server = await spawnServer(BUN_SERVER, env);

  // Four senders; each round ends with a kill at a random moment once the server has taken
  // requests for a while (so deliveries to Kafka are under way).
  for (let round = 0; round < KILLS; round++) {
    const killAfter = 200 + Math.floor(random() * 800);
    let killed = false;
    let firstAck: number | undefined;
    const url = server.url;
    const sender = async () => {
      while (!killed) {
        const request = unacknowledged.shift() ?? makeRequest();
        if (!sent.includes(request)) sent.push(request);
        if (await send(url, request)) {
          firstAck ??= Date.now();
          if (Date.now() - firstAck >= killAfter && !killed) {
            killed = true;
            server!.proc.kill("SIGKILL");
          }
        } else {
          unacknowledged.push(request);
          if (killed) interrupted++;
        }
      }
    };
    await Promise.all([sender(), sender(), sender(), sender()]);
    await server.proc.exited;
    server = await spawnServer(BUN_SERVER, env);
  }

  // Every request acknowledged at last (retries of ones a kill cut off included).
  const deadline = Date.now() + 30_000;
  while (unacknowledged.length) {
    if (Date.now() > deadline) throw new Error(`${unacknowledged.length} requests never acknowledged`);
    const request = unacknowledged.shift()!;
    if (!(await send(server.url, request))) unacknowledged.push(request);
  }

  // The Kafka backlog drains.
  const drained = async () => {
    for (const key of KEYS) {
      const res = await fetch(`${server!.url}/v1/actors/${key}/outbox`);
      if (!res.ok) continue;
      const body = (await res.json()) as { backlog: Record<string, number> };
      if ((body.backlog.kafka ?? 0) > 0) return false;
    }
    return true;
  };
  while (!(await drained())) {
    if (Date.now() > deadline) throw new Error(`the Kafka backlog did not drain:\n${server.output()}`);
    await Bun.sleep(50);
  }

  const accepted = sent.flatMap((r) => r.events.map((e) => e.event_id));
  const seen = (await readToEnd(`${base}.events`)).map((r) => r.headers.event_id!.toString());
  expect(accepted.length).toBeGreaterThan(200);
  expect(interrupted).toBeGreaterThan(0);
  expect(exactlyOnceProblems(accepted, seen)).toEqual([]);
}, 120_000);

import { Redis } from "@upstash/redis";
import { connect } from "node:net";
import { bridgeProduce, createTopic, kafkaClient, uniqueTopic } from "../tests/support/kafka.ts";
import { preparePostgres } from "../tests/support/postgres.ts";
import { localSinkEnv, REDIS_FRONT } from "../tests/support/sink-env.ts";
import { BUN_SERVER, spawnServer, tempDir } from "../tests/support/targets.ts";

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.end(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

/**
 * Ingest-to-visible latency per sink, in ms: events are sent one at a time to a Bun host wired to
 * the local services, and each sink is watched (Redis and Postgres polled every 2 ms with the
 * production clients, Kafka through a consumer) until the event is there. The baseline ("direct")
 * is the same probe after writing a record to the sink straight from this process with the same
 * client (Redis XADD, a Postgres INSERT, a REST produce), so the ratio is what keyflow adds.
 * Null when services are down.
 */
export async function sinkLatency(samples: number): Promise<Record<string, { keyflow: number[]; direct: number[] }> | null> {
  for (const port of [8079, 6543, 8082, 9092]) if (!(await portOpen(port))) return null;
  const pool = await preparePostgres();
  const run = uniqueTopic("bench");
  const dir = tempDir("bench-sinks");
  const server = await spawnServer(BUN_SERVER, {
    PORT: "0",
    KEYFLOW_DATA_DIR: dir.path,
    ...localSinkEnv(run),
  });
  const redis = new Redis({ ...REDIS_FRONT, enableTelemetry: false });
  await createTopic(`${run}.events`);
  const kafkaSeen = new Map<string, number>();
  const consumer = kafkaClient("keyflow-bench").consumer({ groupId: `${run}-g`, maxWaitTimeInMs: 5 });
  await consumer.connect();
  await consumer.subscribe({ topic: `${run}.events`, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void kafkaSeen.set(message.headers!.event_id!.toString(), performance.now()) });
  const latency: Record<string, number[]> = { redis: [], postgres: [], kafka: [] };
  const direct: Record<string, number[]> = { redis: [], postgres: [], kafka: [] };
  const table = `bench_direct_${run.replace(/\W/g, "_")}`;
  await pool.query(`CREATE TABLE ${table} (event_id text PRIMARY KEY)`);
  const visible = async (probe: () => Promise<boolean>, since: number, limitMs = 5_000) => {
    while (performance.now() - since < limitMs) {
      if (await probe()) return performance.now() - since;
      await Bun.sleep(2);
    }
    return NaN;
  };
  for (let i = 0; i < samples; i++) {
    const id = `${run}-${i}`;
    const key = `bench-${i % 10}`;
    const sent = performance.now();
    const res = await fetch(`${server.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ event_id: id, event_type: "purchase", user_id: key, value: i }),
    });
    if (res.status !== 202) throw new Error(`ingest answered ${res.status}`);
    const [r, p] = await Promise.all([
      visible(async () => {
        const last = (await redis.xrevrange(`${run}:events:${key}`, "+", "-", 1)) as Record<string, { event_id: unknown }>;
        return Object.values(last).some((e) => String(e.event_id) === id);
      }, sent),
      visible(async () => (await pool.query("SELECT 1 FROM processed_events WHERE event_id = $1", [id])).rows.length > 0, sent),
    ]);
    latency.redis!.push(r);
    latency.postgres!.push(p);
    const k = await visible(async () => kafkaSeen.has(id), sent);
    latency.kafka!.push(Number.isNaN(k) ? k : kafkaSeen.get(id)! - sent);

    const directId = `${id}-direct`;
    let at = performance.now();
    await redis.xadd(`${run}:direct:${key}`, "*", { event_id: directId });
    direct.redis!.push(
      await visible(async () => {
        const last = (await redis.xrevrange(`${run}:direct:${key}`, "+", "-", 1)) as Record<string, { event_id: unknown }>;
        return Object.values(last).some((e) => String(e.event_id) === directId);
      }, at),
    );
    at = performance.now();
    await pool.query(`INSERT INTO ${table} (event_id) VALUES ($1)`, [directId]);
    direct.postgres!.push(await visible(async () => (await pool.query(`SELECT 1 FROM ${table} WHERE event_id = $1`, [directId])).rows.length > 0, at));
    at = performance.now();
    const produced = await bridgeProduce(`${run}.events`, [{ key: btoa(key), value: btoa(directId), headers: [{ key: "event_id", value: btoa(directId) }] }], "binary");
    if (produced.status !== 200) throw new Error(`direct produce answered ${produced.status}`);
    const d = await visible(async () => kafkaSeen.has(directId), at);
    direct.kafka!.push(Number.isNaN(d) ? d : kafkaSeen.get(directId)! - at);
  }
  await consumer.disconnect();
  await server.stop();
  await pool.query(`DROP TABLE ${table}`);
  await pool.end();
  dir.remove();
  return Object.fromEntries(Object.keys(latency).map((sink) => [sink, { keyflow: latency[sink]!, direct: direct[sink]! }]));
}

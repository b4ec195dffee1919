/**
 * The native Kafka sink (kafkajs, transactional) against the real broker on 127.0.0.1:9092: records
 * land with the REST sink's topics, keys, values and headers; a redelivery (a lost ack), or a
 * restart, writes nothing twice; an aborted transaction shows nothing to read_committed consumers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { EventRecord, OutboxRecord, WindowRecord } from "../../src/actor/outbox.ts";
import { recordJson } from "../../src/delivery/records.ts";
import { SinkError } from "../../src/delivery/sink.ts";
import { NativeKafkaSink } from "../../src/sinks/kafka/native-sink.ts";
import type { NativeKafkaOptions } from "../../src/sinks/kafka/settings.ts";
import { createTopic, ensureServices, KAFKA_BROKERS, uniqueTopic } from "../support/kafka.ts";
import { exactlyOnceProblems, readToEnd } from "../support/kafka-read.ts";
import { tempDir } from "../support/targets.ts";

const TENANT_SEPARATOR = "\x1f";
const dir = tempDir("kafka-native");
const sinks: NativeKafkaSink[] = [];

function options(base: string, extra: Partial<NativeKafkaOptions> = {}): NativeKafkaOptions {
  return {
    dialect: "native",
    brokers: KAFKA_BROKERS,
    transactionalId: `${base}-tx`,
    dataDir: dir.path,
    durable: true,
    progressTopic: `${base}.progress`,
    topic: `${base}.events`,
    windowsTopic: `${base}.windows`,
    alertsTopic: `${base}.alerts`,
    timeoutMs: 10_000,
    maxRequestBytes: 1_048_576,
    ssl: false,
    ...extra,
  };
}

function sink(opts: NativeKafkaOptions, hooks = {}): NativeKafkaSink {
  const s = new NativeKafkaSink(opts, hooks);
  sinks.push(s);
  return s;
}

async function topics(base: string): Promise<void> {
  await Promise.all([createTopic(`${base}.events`), createTopic(`${base}.windows`, 1), createTopic(`${base}.alerts`, 1)]);
}

function event(key: string, n: number, id: string, extra: Partial<EventRecord> = {}): EventRecord {
  return { kind: "event", n, key, id, type: "page:view", ts: 1_700_000_000_000 + n, receivedAt: 1_700_000_000_500 + n, late: false, ...extra };
}

function window(key: string, n: number): WindowRecord {
  const all = { count: 2, sum: 3, min: 1, max: 2 } as unknown as WindowRecord["all"];
  return { kind: "window", n, key, spec: "1m", start: 1_700_000_040_000, end: 1_700_000_100_000, revision: 1, final: true, all, types: {} };
}

const ids = (records: Awaited<ReturnType<typeof readToEnd>>) => records.map((r) => r.headers.event_id!.toString());

beforeAll(() => ensureServices(), 300_000);
afterAll(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  dir.remove();
});

describe("native Kafka sink", () => {
  const base = uniqueTopic("kf-native");
  const records: OutboxRecord[] = [
    event("user-1", 0, "e-1", { requestId: "req-1" }),
    event("user-1", 1, "e-2"),
    { kind: "dead_letter", n: 2, key: "user-1", sink: "postgres", record: event("user-1", 0, "e-1"), error: "x", failedAt: 1 },
    event(`acme${TENANT_SEPARATOR}user-2`, 0, "e-3"),
    window("user-1", 3),
  ];

  beforeAll(() => topics(base), 60_000);

  test("records land in their topics with the REST sink's keys, values and headers; a dead letter is skipped", async () => {
    await sink(options(base)).deliver(records);
    const events = await readToEnd(`${base}.events`);
    expect(ids(events).sort()).toEqual(["e-1", "e-2", "e-3"]);
    const e1 = events.find((r) => r.headers.event_id!.toString() === "e-1")!;
    expect(e1.key!.toString()).toBe("user-1");
    expect(e1.headers.event_type!.toString()).toBe("page:view");
    expect(e1.headers.tenant!.toString()).toBe("default");
    expect(e1.headers["request-id"]!.toString()).toBe("req-1");
    expect(e1.value!.toString()).toBe(recordJson(records[0] as EventRecord));
    const e3 = events.find((r) => r.headers.event_id!.toString() === "e-3")!;
    expect(e3.key!.toString()).toBe("user-2");
    expect(e3.headers.tenant!.toString()).toBe("acme");
    const windows = await readToEnd(`${base}.windows`);
    expect(windows).toHaveLength(1);
    expect(windows[0]!.key!.toString()).toBe("user-1");
    expect(windows[0]!.headers.window!.toString()).toBe(`1m:1700000040000:1`);
  }, 60_000);

  test("a redelivery (the ack was lost) and a restarted sink write nothing twice", async () => {
    const first = sinks[0]!;
    expect(first.progress().get("user-1")).toBe(3);
    expect(first.progress().get(`acme${TENANT_SEPARATOR}user-2`)).toBe(0);
    await first.deliver(records);
    const restarted = sink(options(base));
    await restarted.deliver(records);
    expect(restarted.progress().get("user-1")).toBe(3);
    // New records after the known ones go out once, in the same deliver as the old ones.
    await restarted.deliver([...records, event("user-1", 4, "e-4")]);
    expect(exactlyOnceProblems(["e-1", "e-2", "e-3", "e-4"], ids(await readToEnd(`${base}.events`)))).toEqual([]);
    expect((await readToEnd(`${base}.windows`)).length).toBe(1);
  }, 60_000);

  test("without the progress skip a restart duplicates, and the check says so", async () => {
    const base2 = uniqueTopic("kf-native-dup");
    await topics(base2);
    const batch = [event("k", 0, "d-1"), event("k", 1, "d-2")];
    await sink(options(base2)).deliver(batch);
    // The server crashed after the transaction, before its ack was recorded: the batch goes again.
    await sink(options(base2), { ignoreProgress: true }).deliver(batch);
    const problems = exactlyOnceProblems(["d-1", "d-2"], ids(await readToEnd(`${base2}.events`)));
    expect(problems).toEqual(["d-1: seen 2 times", "d-2: seen 2 times"]);
  }, 60_000);

  test("a transaction that fails midway is aborted: read_committed sees none of it, and the sink goes on", async () => {
    const base3 = uniqueTopic("kf-native-abort");
    await topics(base3);
    // Past the broker's limit (message.max.bytes, 1 MiB by default) but under the sink's own: the
    // broker refuses the event after the window went out in the same transaction.
    const s = sink(options(base3, { maxRequestBytes: 8_000_000 }));
    const big = event("big", 0, "b-1", { properties: { blob: "x".repeat(2_000_000) } });
    const error = await s.deliver([window("small", 0), big]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SinkError);
    expect((error as SinkError).tooLarge).toBe(true);
    expect(await readToEnd(`${base3}.windows`)).toHaveLength(0);
    expect(await readToEnd(`${base3}.windows`, { readUncommitted: true })).toHaveLength(1);
    expect(s.progress().has("small")).toBe(false);
    await s.deliver([window("small", 0)]);
    expect(await readToEnd(`${base3}.windows`)).toHaveLength(1);
  }, 60_000);

  test("a record over KEYFLOW_KAFKA_MAX_REQUEST_BYTES is too large at its index; the records before it go out", async () => {
    const base4 = uniqueTopic("kf-native-large");
    await topics(base4);
    const s = sink(options(base4, { maxRequestBytes: 4096 }));
    const error = await s.deliver([event("a", 0, "l-1"), event("a", 1, "l-2", { properties: { blob: "x".repeat(5000) } }), event("a", 2, "l-3")]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ tooLarge: true, index: 1 });
    expect(s.progress().get("a")).toBe(0);
    expect(ids(await readToEnd(`${base4}.events`))).toEqual(["l-1"]);
  }, 60_000);

  test("KEYFLOW_STORAGE=memory: a restarted process's outbox starts at 0 again, and nothing of it is skipped", async () => {
    const base5 = uniqueTopic("kf-native-memory");
    await topics(base5);
    await sink(options(base5, { durable: false })).deliver([event("m", 0, "m-1")]);
    await sink(options(base5, { durable: false })).deliver([event("m", 0, "m-2")]);
    expect(ids(await readToEnd(`${base5}.events`)).sort()).toEqual(["m-1", "m-2"]);
  }, 60_000);

  test("an unreachable broker is a transient failure, not a crash", async () => {
    const s = sink(options(uniqueTopic("kf-native-down"), { brokers: ["127.0.0.1:1"], timeoutMs: 1_000 }));
    const error = await s.deliver([event("a", 0, "x-1")]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SinkError);
    expect((error as SinkError).permanent).toBe(false);
  }, 60_000);
});

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultTransactionalId, withTransactionalId } from "../../src/runtimes/kafka-transactional-id.ts";
import { EnvReader } from "../../src/settings/reader.ts";
import { ConfigError } from "../../src/settings/config.ts";
import { createSinks } from "../../src/sinks/index.ts";
import { NativeKafkaSink } from "../../src/sinks/kafka/native-sink.ts";
import { kafkaNativeSettings, kafkaSettings } from "../../src/sinks/kafka/settings.ts";
import { KafkaSink } from "../../src/sinks/kafka/sink.ts";
import { nativeSinks } from "../../src/sinks/native.ts";
import { readSinkSettings } from "../../src/sinks/settings.ts";

function read(env: Record<string, string>) {
  const r = new EnvReader(env);
  const native = kafkaNativeSettings(r, 10_000);
  const rest = kafkaSettings(r, 10_000);
  return { native, rest, problems: r.problems };
}

describe("KEYFLOW_KAFKA_BROKERS (the native producer)", () => {
  test("unset: no native sink", () => {
    expect(read({}).native).toBeUndefined();
  });

  test("brokers, topics and defaults", () => {
    const { native, problems } = read({ KEYFLOW_KAFKA_BROKERS: "127.0.0.1:9092, kafka-2.internal:9093,[::1]:9094", KEYFLOW_DATA_DIR: "/var/keyflow" });
    expect(problems).toEqual([]);
    expect(native).toMatchObject({
      dialect: "native",
      brokers: ["127.0.0.1:9092", "kafka-2.internal:9093", "[::1]:9094"],
      dataDir: "/var/keyflow",
      durable: true,
      progressTopic: "keyflow.progress",
      topic: "keyflow.events",
      windowsTopic: "keyflow.windows",
      alertsTopic: "keyflow.alerts",
      maxRequestBytes: 1_048_576,
      timeoutMs: 10_000,
      ssl: false,
    });
    expect(native!.transactionalId).toBeUndefined();
    expect(native!.sasl).toBeUndefined();
  });

  test("every variable is read", () => {
    const { native, problems } = read({
      KEYFLOW_KAFKA_BROKERS: "k:9092",
      KEYFLOW_KAFKA_TRANSACTIONAL_ID: "keyflow-eu-1",
      KEYFLOW_KAFKA_PROGRESS_TOPIC: "kf.progress",
      KEYFLOW_KAFKA_TOPIC: "kf.{tenant}.{type}",
      KEYFLOW_KAFKA_MAX_REQUEST_BYTES: "2097152",
      KEYFLOW_KAFKA_SSL: "true",
      KEYFLOW_KAFKA_SASL_MECHANISM: "scram-sha-512",
      KEYFLOW_KAFKA_USERNAME: "u",
      KEYFLOW_KAFKA_PASSWORD: "p",
    });
    expect(problems).toEqual([]);
    expect(native).toMatchObject({
      transactionalId: "keyflow-eu-1",
      progressTopic: "kf.progress",
      topic: "kf.{tenant}.{type}",
      maxRequestBytes: 2_097_152,
      ssl: true,
      sasl: { mechanism: "scram-sha-512", username: "u", password: "p" },
    });
  });

  test("KEYFLOW_STORAGE=memory: not durable (progress of an earlier process must not count)", () => {
    expect(read({ KEYFLOW_KAFKA_BROKERS: "k:9092", KEYFLOW_STORAGE: "memory" }).native!.durable).toBe(false);
  });

  test.each([
    [{ KEYFLOW_KAFKA_BROKERS: "localhost" }, "KEYFLOW_KAFKA_BROKERS"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092,,b:9092" }, "KEYFLOW_KAFKA_BROKERS"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:99999" }, "KEYFLOW_KAFKA_BROKERS"],
    [{ KEYFLOW_KAFKA_BROKERS: "http://a:9092" }, "KEYFLOW_KAFKA_BROKERS"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_TRANSACTIONAL_ID: "has space" }, "KEYFLOW_KAFKA_TRANSACTIONAL_ID"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_TRANSACTIONAL_ID: "a/b" }, "KEYFLOW_KAFKA_TRANSACTIONAL_ID"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_PROGRESS_TOPIC: "progress/{tenant}" }, "KEYFLOW_KAFKA_PROGRESS_TOPIC"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_TOPIC: "bad topic" }, "KEYFLOW_KAFKA_TOPIC"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_MAX_REQUEST_BYTES: "12" }, "KEYFLOW_KAFKA_MAX_REQUEST_BYTES"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_SSL: "yes" }, "KEYFLOW_KAFKA_SSL"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_SASL_MECHANISM: "gssapi", KEYFLOW_KAFKA_USERNAME: "u", KEYFLOW_KAFKA_PASSWORD: "p" }, "KEYFLOW_KAFKA_SASL_MECHANISM"],
    [{ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_SASL_MECHANISM: "plain" }, "KEYFLOW_KAFKA_USERNAME"],
  ] as Array<[Record<string, string>, string]>)("%j: a problem naming %s", (env, name) => {
    const { problems } = read(env);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join("\n")).toContain(name);
  });

  test("brokers and a REST URL together: a problem naming both variables", () => {
    const { problems } = read({ KEYFLOW_KAFKA_BROKERS: "a:9092", KEYFLOW_KAFKA_REST_URL: "http://127.0.0.1:8082" });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("KEYFLOW_KAFKA_BROKERS");
    expect(problems[0]).toContain("KEYFLOW_KAFKA_REST_URL");
  });
});

describe("choosing the Kafka sink", () => {
  const settings = (env: Record<string, string>) => {
    const r = new EnvReader(env);
    const s = readSinkSettings(r);
    expect(r.problems).toEqual([]);
    return s;
  };

  test("KEYFLOW_KAFKA_BROKERS on the self-hosted server: the native sink; a REST URL: the REST sink", async () => {
    const [native] = createSinks(settings({ KEYFLOW_KAFKA_BROKERS: "127.0.0.1:9092", KEYFLOW_STORAGE: "memory" }), { poolPerDelivery: false, native: nativeSinks });
    expect(native).toBeInstanceOf(NativeKafkaSink);
    expect(native!.name).toBe("kafka");
    await native!.close?.();
    const [rest] = createSinks(settings({ KEYFLOW_KAFKA_REST_URL: "http://127.0.0.1:8082" }), { poolPerDelivery: false, native: nativeSinks });
    expect(rest).toBeInstanceOf(KafkaSink);
  });

  test("Workers (no native clients): KEYFLOW_KAFKA_BROKERS is a ConfigError naming it", () => {
    let message = "";
    try {
      createSinks(settings({ KEYFLOW_KAFKA_BROKERS: "127.0.0.1:9092" }), { poolPerDelivery: true });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain("KEYFLOW_KAFKA_BROKERS needs the self-hosted server");
  });
});

describe("the default transactional id (src/runtimes/kafka-transactional-id.ts)", () => {
  test("kept in the data directory: the same on every start there, another in another directory", () => {
    const a = mkdtempSync(join(tmpdir(), "kf-txid-"));
    const b = mkdtempSync(join(tmpdir(), "kf-txid-"));
    try {
      const first = defaultTransactionalId(a);
      expect(first).toMatch(/^keyflow-[0-9a-f-]{36}$/);
      expect(defaultTransactionalId(a)).toBe(first);
      expect(defaultTransactionalId(b)).not.toBe(first);
      const settings = (env: Record<string, string>) => readSinkSettings(new EnvReader({ KEYFLOW_KAFKA_BROKERS: "k:9092", KEYFLOW_DATA_DIR: a, ...env }));
      expect((withTransactionalId(settings({})).kafka as { transactionalId?: string }).transactionalId).toBe(first);
      expect((withTransactionalId(settings({ KEYFLOW_KAFKA_TRANSACTIONAL_ID: "mine" })).kafka as { transactionalId?: string }).transactionalId).toBe("mine");
      // Memory storage: the sink makes an id per process itself.
      expect((withTransactionalId(settings({ KEYFLOW_STORAGE: "memory" })).kafka as { transactionalId?: string }).transactionalId).toBeUndefined();
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  });

  test("a durable native sink without an id is a programming error, said at once", () => {
    const kafka = readSinkSettings(new EnvReader({ KEYFLOW_KAFKA_BROKERS: "k:9092" })).kafka!;
    expect(() => new NativeKafkaSink(kafka as never)).toThrow(/needs its transactionalId/);
  });
});

import { expect, test } from "bun:test";
import { spawnServer, tempDir, WORKERD_SERVER } from "../support/targets.ts";

// The native clients (ioredis, postgres.js, kafkajs) exist only on the self-hosted server: a Worker
// given a setting that needs one answers 500 misconfigured naming the variable (never its password).
test("workerd: redis://, KEYFLOW_KAFKA_BROKERS and KEYFLOW_POSTGRES_CLIENT=native answer 500 misconfigured, naming each", async () => {
  const dir = tempDir("workers-native");
  const worker = await spawnServer(WORKERD_SERVER, {
    HOST: "127.0.0.1",
    PORT: "0",
    KEYFLOW_DATA_DIR: dir.path,
    KEYFLOW_REDIS_URL: "redis://:hunter2-secret@127.0.0.1:6379/0",
    KEYFLOW_KAFKA_BROKERS: "127.0.0.1:9092",
    KEYFLOW_POSTGRES_URL: "postgres://postgres:pg-secret@127.0.0.1:5432/test",
    KEYFLOW_POSTGRES_CLIENT: "native",
  }, 60_000);
  try {
    const res = await fetch(`${worker.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ event_id: "e1", event_type: "purchase", user_id: "u1", value: 1 }),
    });
    const body = await res.text();
    expect(res.status, body).toBe(500);
    const error = JSON.parse(body).error;
    expect(error.code).toBe("misconfigured");
    for (const variable of ["KEYFLOW_REDIS_URL", "KEYFLOW_KAFKA_BROKERS", "KEYFLOW_POSTGRES_CLIENT"]) expect(body).toContain(variable);
    expect(body).not.toContain("hunter2-secret");
    expect(body).not.toContain("pg-secret");
  } finally {
    await worker.stop();
    dir.remove();
  }
}, 120_000);

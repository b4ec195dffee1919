import { expect, test } from "bun:test";
import { sinksSection } from "../../scripts/bench-sections.ts";
import { expectRatiosHold } from "./support.ts";

test("ingest -> visible in Redis, Postgres and Kafka keeps its ratio to writing each sink directly", async () => {
  const rows = await sinksSection(40);
  expect(rows, "the local services are down: npm run services").not.toBeNull();
  expectRatiosHold(rows!, ["sinks.redis.p50", "sinks.postgres.p50", "sinks.kafka.p50"]);
});

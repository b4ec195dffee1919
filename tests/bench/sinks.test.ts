import { expect, test } from "bun:test";
import { sinksSection } from "../../scripts/bench-sections.ts";
import { bestOf, expectRatiosHold } from "./support.ts";

// A short `bun run bench --only sinks` (about 40 s a run, best of two): ingest and disk bytes per
// event with the sinks on against off, each sink's drain rate against writing the same rows directly
// (with the HTTP clients, and with the native Redis and Postgres clients), the native Kafka producer's
// drain against the REST bridge's,
// and the p50 ingest -> visible against a direct write at 1,000 events/s. The p99s of a 2 s latency
// run are too noisy on two shared cores to gate on.
const SHORT = { ingestSeconds: 1, warmSeconds: 0.3, directEvents: 20_000, latencySeconds: 2, latencyWarmSeconds: 0.5, extended: false };

test(
  "sinks on: ingest, disk per event, drain rates and p50 latency keep their ratios to sinks off and to direct writes",
  async () => {
    const rows = await bestOf(2, async () => {
      const measured = await sinksSection(SHORT);
      expect(measured, "the local services are down: npm run services").not.toBeNull();
      return measured!;
    });
    expectRatiosHold(rows, [
      "sinks.ingest",
      "sinks.disk",
      ...["redis", "postgres", "kafka"].flatMap((sink) => [`sinks.${sink}.drain`, `sinks.${sink}.p50`]),
      // The native clients' drains (ioredis, postgres.js), against the same direct writes as the HTTP ones,
      // and the native transactional Kafka producer against the REST bridge under the same load.
      "sinks.redis.drain_native",
      "sinks.postgres.drain_native",
      "sinks.kafka.drain_native",
    ]);
  },
  240_000,
);

// Creates the Postgres sink's tables and brings tables of older keyflow versions up to date (idempotent):
// bun scripts/migrate.ts, or npm run migrate.
// Reads KEYFLOW_POSTGRES_URL (or DATABASE_URL), KEYFLOW_POSTGRES_CLIENT and KEYFLOW_NEON_WSPROXY like
// the self-hosted server does, and connects with the same driver it would.
import { ConfigError } from "../src/settings/config.ts";
import { postgresSink } from "../src/sinks/index.ts";
import { nativeSinks } from "../src/sinks/native.ts";
import { sinkSettings } from "../src/settings/env.ts";

try {
  const sink = postgresSink(sinkSettings(process.env), false, nativeSinks);
  if (!sink) {
    console.error("keyflow migrate: set KEYFLOW_POSTGRES_URL (a postgres:// URL)");
    process.exit(2);
  }
  await sink.migrate();
  await sink.close();
  console.log("keyflow migrate: raw_events, processed_events (keyed by tenant, actor_key, event_id), window_aggregates, alerts, failed_events are in place");
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`keyflow migrate: ${error.message}`);
    process.exit(2);
  }
  throw error;
}

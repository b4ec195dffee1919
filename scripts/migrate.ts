// Creates the Postgres sink's tables and brings tables of older keyflow versions up to date (idempotent):
// bun scripts/migrate.ts, or npm run migrate.
// Reads KEYFLOW_POSTGRES_URL (or DATABASE_URL) and KEYFLOW_NEON_WSPROXY like the server does.
import { ConfigError } from "../src/settings/config.ts";
import { PostgresSink } from "../src/sinks/postgres/sink.ts";
import { sinkSettings } from "../src/settings/env.ts";

try {
  const settings = sinkSettings(process.env);
  if (!settings.postgres) {
    console.error("keyflow migrate: set KEYFLOW_POSTGRES_URL (and KEYFLOW_NEON_WSPROXY for a Postgres that is not on Neon)");
    process.exit(2);
  }
  const sink = new PostgresSink({ ...settings.postgres, poolPerDelivery: false });
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

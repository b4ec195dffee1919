// The Postgres sink's tables: `keyflow migrate` (and `npm run migrate`, scripts/migrate.ts). Reads
// KEYFLOW_POSTGRES_URL (or DATABASE_URL), KEYFLOW_POSTGRES_CLIENT and KEYFLOW_NEON_WSPROXY like the
// self-hosted server does, and connects with the same driver it would.
import { sinkSettings } from "../../settings/env.ts";
import { postgresSink } from "../../sinks/index.ts";
import { nativeSinks } from "../../sinks/native.ts";
import { parse, positionalArgs, UsageError, writeLine, type Command } from "../io.ts";

export const migrateCommand: Command = {
  name: "migrate",
  summary: "create or update the Postgres sink's tables, like npm run migrate",
  usage: `usage: keyflow migrate

Creates the Postgres sink's tables and brings tables of older keyflow versions up to date
(idempotent). Reads KEYFLOW_POSTGRES_URL (or DATABASE_URL) and the other KEYFLOW_POSTGRES_* /
KEYFLOW_NEON_* variables like the server does.`,
  async run(argv, io) {
    positionalArgs(parse(argv, {}).positionals, []);
    // A ConfigError (a bad setting, named) is exit 2, like a usage error: the dispatcher prints it.
    const sink = postgresSink(sinkSettings(io.env as Record<string, string>), false, nativeSinks);
    if (!sink) throw new UsageError("set KEYFLOW_POSTGRES_URL (a postgres:// URL)");
    try {
      await sink.migrate();
    } finally {
      await sink.close();
    }
    writeLine(io.stdout, "keyflow migrate: raw_events, processed_events (keyed by tenant, actor_key, event_id), window_aggregates, alerts, failed_events are in place");
    return 0;
  },
};

import { parse, positionalArgs, type Command } from "../io.ts";

export const migrateCommand: Command = {
  name: "migrate",
  summary: "create or update the Postgres sink's tables, like npm run migrate",
  usage: `usage: keyflow migrate

Creates the Postgres sink's tables and brings tables of older keyflow versions up to date
(idempotent). Reads KEYFLOW_POSTGRES_URL (or DATABASE_URL) and the other KEYFLOW_POSTGRES_* /
KEYFLOW_NEON_* variables like the server does.`,
  async run(argv) {
    positionalArgs(parse(argv, {}).positionals, []);
    // scripts/migrate.ts is npm run migrate itself: importing it runs it (and it exits 2 on a bad setting).
    await import("../../../scripts/migrate.ts");
    return 0;
  },
};

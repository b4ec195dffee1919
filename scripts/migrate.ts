// Creates the Postgres sink's tables and brings tables of older keyflow versions up to date (idempotent):
// npm run migrate. The same command as `keyflow migrate` (src/cli/commands/migrate.ts).
import { migrateCommand } from "../src/cli/commands/migrate.ts";
import { exitWith, processIo, runCommand } from "../src/cli/main.ts";

await exitWith(await runCommand(migrateCommand, process.argv.slice(2), processIo(false)));

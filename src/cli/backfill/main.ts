// `bun src/cli/backfill/main.ts FILE [options]`: the backfill on its own, as the keyflow CLI runs it.
import { runBackfill } from "./index.ts";

process.exitCode = await runBackfill(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });

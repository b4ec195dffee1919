import { runBackfill } from "../backfill/index.ts";
import type { Command } from "../io.ts";

/** The backfill engine (src/cli/backfill/) parses its own flags and prints its own help and errors. */
export const backfillCommand: Command = {
  name: "backfill",
  summary: "send historical events from a file (NDJSON, JSON array, CSV) with checkpoints",
  usage: "usage: keyflow backfill FILE [options]   (keyflow backfill --help lists them)",
  ownHelp: true,
  run: (argv, io) => runBackfill(argv, io),
};

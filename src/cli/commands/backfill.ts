import { writeLine, type Command, type Io } from "../io.ts";

type RunBackfill = (argv: string[], io: Pick<Io, "stdout" | "stderr" | "stdin">) => Promise<number>;

const ENTRY = "../backfill/index.ts";

/** Loads the backfill engine, or undefined in a build without it. */
async function engine(): Promise<RunBackfill | undefined> {
  try {
    const module = (await import(ENTRY)) as { runBackfill?: RunBackfill };
    return module.runBackfill;
  } catch {
    return undefined;
  }
}

export const backfillCommand: Command = {
  name: "backfill",
  summary: "send historical events from a file (keyflow backfill --help)",
  usage: "usage: keyflow backfill FILE [options]   (keyflow backfill --help lists them)",
  ownHelp: true,
  async run(argv, io) {
    const runBackfill = await engine();
    if (!runBackfill) {
      writeLine(io.stderr, "keyflow backfill: backfill is not available in this build");
      return 1;
    }
    return await runBackfill(argv, io);
  },
};

import { startBunServer } from "../../runtimes/bun-server.ts";
import { parse, positionalArgs, UsageError, type Command } from "../io.ts";

/** Flag → the variable it sets (the same the server reads in src/settings/env.ts). */
const VARIABLES = { port: "PORT", host: "HOST", "data-dir": "KEYFLOW_DATA_DIR", config: "KEYFLOW_CONFIG" } as const;

export const serveCommand: Command = {
  name: "serve",
  summary: "run the self-hosted server (embedded SQLite), like npm start",
  usage: `usage: keyflow serve [--port N] [--host ADDR] [--data-dir DIR] [--config FILE]

  --port N          listen on this port (sets PORT; default 8787, 0 picks a free one)
  --host ADDR       bind this address (sets HOST; default 127.0.0.1). Another address needs
                    KEYFLOW_API_KEYS (keyflow keys create makes one)
  --data-dir DIR    where the SQLite store lives (sets KEYFLOW_DATA_DIR; default .keyflow)
  --config FILE     keyflow.config.json with analytics rules (sets KEYFLOW_CONFIG)

Every other setting is a KEYFLOW_* variable of the environment (README.md, Configuration). Stops
cleanly on SIGINT or SIGTERM.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { port: { type: "string" }, host: { type: "string" }, "data-dir": { type: "string" }, config: { type: "string" } });
    positionalArgs(positionals, []);
    const env = { ...io.env };
    for (const [flag, variable] of Object.entries(VARIABLES)) {
      const value = values[flag as keyof typeof VARIABLES];
      if (value === undefined) continue;
      if (value === "") throw new UsageError(`--${flag} must not be empty`);
      env[variable] = value;
    }
    if (values.port !== undefined && !(/^\d{1,5}$/.test(values.port) && Number(values.port) <= 65535)) {
      throw new UsageError(`--port must be a port number from 0 to 65535, got ${JSON.stringify(values.port)}`);
    }
    await startBunServer(env).stopped;
    return 0;
  },
};

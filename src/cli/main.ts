// keyflow's command line: `keyflow <command> [options]` (bin/keyflow, npm run cli, the binary of npm run build).
import { KeyflowError } from "../client/index.ts";
import { SinkError } from "../delivery/sink.ts";
import { ConfigError } from "../settings/config.ts";
import { VERSION } from "../version.ts";
import { backfillCommand } from "./commands/backfill.ts";
import { dlqCommand } from "./commands/dlq.ts";
import { inspectCommand } from "./commands/inspect.ts";
import { keysCommand } from "./commands/keys.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { serveCommand } from "./commands/serve.ts";
import { tailCommand } from "./commands/tail.ts";
import { safe, UsageError, writeLine, type Command, type Io } from "./io.ts";

export const COMMANDS: readonly Command[] = [serveCommand, migrateCommand, backfillCommand, tailCommand, inspectCommand, dlqCommand, keysCommand()];

export const USAGE = `usage: keyflow <command> [options]

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join("\n")}

keyflow <command> --help shows a command's options; keyflow --version its version.
Exit codes: 0 done, 1 failed (the server's error is printed), 2 bad arguments or settings.`;

/** Runs `keyflow argv…` and resolves with the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-v") {
    writeLine(io.stdout, `keyflow ${VERSION}`);
    return 0;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    writeLine(io.stdout, USAGE);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    writeLine(io.stderr, `keyflow: ${name === undefined ? "a command is required" : `unknown command ${safe(JSON.stringify(name))}`}\n\n${USAGE}`);
    return 2;
  }
  return await runCommand(command, rest, io);
}

/** One command with the common handling: --help, usage errors (exit 2), the server's errors (exit 1). */
export async function runCommand(command: Command, argv: string[], io: Io): Promise<number> {
  const options = argv.slice(0, argv.includes("--") ? argv.indexOf("--") : argv.length);
  if (!command.ownHelp && (options.includes("--help") || options.includes("-h"))) {
    writeLine(io.stdout, command.usage);
    return 0;
  }
  try {
    return await command.run(argv, io);
  } catch (error) {
    if (error instanceof UsageError) {
      writeLine(io.stderr, `keyflow ${command.name}: ${safe(error.message)}\n\n${command.usage}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      // A bad KEYFLOW_* setting: the message names every variable at fault.
      writeLine(io.stderr, `keyflow ${command.name}: ${error.message.split("\n").map(safe).join("\n")}`);
      return 2;
    }
    if (error instanceof SinkError) {
      writeLine(io.stderr, `keyflow ${command.name}: ${safe(error.message)}`);
      return 1;
    }
    if (error instanceof KeyflowError) {
      const status = error.status ? ` (HTTP ${error.status} ${error.code})` : "";
      writeLine(io.stderr, `keyflow ${command.name}: ${safe(error.message)}${status}`);
      for (const f of error.fieldErrors) writeLine(io.stderr, `  ${safe(f.field)}: ${safe(f.message)}`);
      return 1;
    }
    throw error;
  }
}

/** The process's own streams and environment; SIGINT and SIGTERM abort `signal` for commands that run until stopped. */
export function processIo(interruptible: boolean): Io {
  const io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
  if (!interruptible) return io;
  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => controller.abort());
  return { ...io, signal: controller.signal };
}

/** The process's exit once stdout and stderr have taken everything written to them. */
export async function exitWith(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((resolve) => s.write("", resolve))));
  process.exit(code);
}

/** `keyflow argv…` as the process: runs it and exits with its code. */
export async function cli(argv: string[]): Promise<never> {
  const interruptible = COMMANDS.find((c) => c.name === argv[0])?.interruptible ?? false;
  return await exitWith(await main(argv, processIo(interruptible)));
}

if (import.meta.main) await cli(process.argv.slice(2));

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** What a command reads and writes: the process's streams and environment, or a test's. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: Record<string, string | undefined>;
  /** Aborted on Ctrl-C: long-running commands (tail) end cleanly. */
  signal?: AbortSignal;
}

export interface Command {
  name: string;
  /** One line for `keyflow --help`. */
  summary: string;
  /** The command's own help text, for `keyflow <command> --help` and usage errors. */
  usage: string;
  /** The command reads --help itself (the dispatcher passes it on). */
  ownHelp?: boolean;
  /** Runs until Ctrl-C: io.signal aborts on SIGINT and SIGTERM. */
  interruptible?: boolean;
  /** Resolves with the exit code; throws UsageError (exit 2) for bad arguments. */
  run(argv: string[], io: Io): Promise<number>;
}

/** Bad arguments: printed with the command's usage, exit code 2. The message names the argument. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Strict node:util parseArgs over `argv`; its errors (which name the option) become UsageErrors. */
export function parse<const O extends ParseArgsOptionsConfig>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** Exactly `names.length` positionals (KEY, FILE, …), each named in the error when missing or extra. */
export function positionalArgs(positionals: string[], names: string[]): string[] {
  if (positionals.length < names.length) throw new UsageError(`${names[positionals.length]} is required`);
  if (positionals.length > names.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[names.length])}`);
  const empty = positionals.findIndex((p) => p === "");
  if (empty >= 0) throw new UsageError(`${names[empty]} must not be empty`);
  // The server refuses these as keys too: a URL path would resolve them away.
  const dots = names.findIndex((name, i) => name === "KEY" && (positionals[i] === "." || positionals[i] === ".."));
  if (dots >= 0) throw new UsageError(`KEY must not be "${positionals[dots]}": no key is (it could not be read at /v1/actors/{key})`);
  return positionals;
}

export function writeLine(stream: NodeJS.WritableStream, text = ""): void {
  stream.write(`${text}\n`);
}

/** Text from a server or a key, safe on a terminal: control characters (escape sequences, newlines) are shown escaped. */
export function safe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A string as JSON, safe on a terminal. */
export const quoted = (text: string): string => safe(JSON.stringify(text));

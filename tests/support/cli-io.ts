/** Runs the CLI in this process with collected stdout/stderr (tests/unit/cli-*.test.ts). */
import { PassThrough, Writable } from "node:stream";
import type { Io } from "../../src/cli/io.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function collector(): { stream: Writable; text(): string } {
  let text = "";
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

export async function runCli(run: (argv: string[], io: Io) => Promise<number>, argv: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const stdout = collector();
  const stderr = collector();
  const code = await run(argv, { stdout: stdout.stream, stderr: stderr.stream, stdin: new PassThrough(), env });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

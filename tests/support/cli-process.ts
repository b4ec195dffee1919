/** The keyflow command as a subprocess (tests/e2e/cli.test.ts, binary.test.ts). */
import { BIN, ROOT } from "./process.ts";
import { join } from "node:path";

/** bin/keyflow run by the repo's Bun. */
export const KEYFLOW_BIN = [join(BIN, "bun"), join(ROOT, "bin/keyflow")];

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args…` to its end (killed after `limitMs`: a hung command fails its test, with what it printed). */
export async function runKeyflow(cmd: string[], args: string[], options: { env: Record<string, string>; cwd?: string; limitMs?: number }): Promise<CliRun> {
  const proc = Bun.spawn([...cmd, ...args], { cwd: options.cwd ?? ROOT, env: options.env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const limitMs = options.limitMs ?? 30_000;
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    proc.kill("SIGKILL");
  }, limitMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (killed) throw new Error(`keyflow ${args.join(" ")} did not end within ${limitMs} ms:\n${stdout}\n${stderr}`);
  return { code, stdout, stderr };
}

/** Polls `read` until `done` holds, failing after `limitMs` with the last value seen. */
export async function eventually<T>(what: string, read: () => T | Promise<T>, done: (value: T) => boolean, limitMs = 30_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${limitMs} ms; last seen ${JSON.stringify(value)}`);
    await Bun.sleep(20);
  }
}

/** A long-running keyflow command (tail): its output so far, and a stop that sends SIGINT like Ctrl-C. */
export function startKeyflow(cmd: string[], args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([...cmd, ...args], { cwd: ROOT, env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let stdout = "";
  let stderr = "";
  const collect = async (stream: ReadableStream<Uint8Array>, add: (text: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) add(decoder.decode(chunk, { stream: true }));
  };
  const reading = Promise.all([collect(proc.stdout, (t) => (stdout += t)), collect(proc.stderr, (t) => (stderr += t))]);
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    /** SIGINT, then SIGKILL after 5 s; resolves with the exit code once all output is read. */
    async interrupt(): Promise<number> {
      proc.kill("SIGINT");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      const code = await proc.exited;
      clearTimeout(timer);
      await reading;
      return code;
    },
  };
}

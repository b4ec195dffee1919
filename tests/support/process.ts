/** Subprocesses for tests: spawn a command and wait for the line that says it is ready. */
import { createServer } from "node:net";
import { join } from "node:path";

export const ROOT = new URL("../..", import.meta.url).pathname;
export const BIN = join(ROOT, "node_modules/.bin");

export interface RunningProcess {
  proc: ReturnType<typeof Bun.spawn>;
  /** Everything printed so far (stdout and stderr). */
  output(): string;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and resolves with its exit code. */
  stop(): Promise<number>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Spawns `cmd` and resolves once its output matches `ready` (rejects on exit or timeout). */
export async function spawnUntil(
  cmd: string[],
  ready: RegExp,
  env: Record<string, string> = {},
  timeoutMs = 20_000,
  /** false: once ready, the output is read and dropped (a benchmark's server logs a line per request, and decoding them all costs the machine it measures). */
  keepOutput = true,
): Promise<RunningProcess & { match: RegExpExecArray }> {
  const proc = Bun.spawn(cmd, {
    cwd: ROOT,
    env: { ...process.env, PATH: `${BIN}:${process.env.PATH}`, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let log = "";
  let stopping = false;
  const stop = async () => {
    stopping = true;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    }
    return await proc.exited;
  };
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      proc.kill("SIGKILL");
      reject(new Error(`${cmd.join(" ")} not ready within ${timeoutMs} ms:\n${log}`));
    }, timeoutMs);
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        if (settled && !keepOutput) continue;
        log += decoder.decode(chunk);
        // A server logs a line per request: keep the start and the latest output, not all of it.
        if (log.length > 2_000_000) log = `${log.slice(0, 200_000)}\n…\n${log.slice(-200_000)}`;
        if (settled) continue;
        const m = ready.exec(log);
        if (m) {
          settled = true;
          clearTimeout(timer);
          resolve(m);
        }
      }
    };
    void collect(proc.stdout as ReadableStream<Uint8Array>);
    void collect(proc.stderr as ReadableStream<Uint8Array>);
    void proc.exited.then((code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${cmd.join(" ")} exited with ${code} before it was ready:\n${log}`));
    });
  });
  // A process that dies on its own after it was ready (a crash): say so, with its last words, since
  // the test only sees refused connections. (SIGKILL is what crash tests send on purpose.)
  void proc.exited.then((code) => {
    if (!stopping && code !== 0 && proc.signalCode !== "SIGKILL") console.error(`${cmd.join(" ")} exited with ${code ?? proc.signalCode} by itself; its last output:\n${log.slice(-4_000)}`);
  });
  return { proc, match, output: () => log, stop: () => stop() };
}

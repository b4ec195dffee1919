// The Kafka Streams reference job (issue 12): builds scripts/kstreams (Maven, Java 17) once and runs
// its jar, which prints one JSON line of events/s per variant (scripts/kstreams/.../Bench.java).
//   bun scripts/kstreams.ts [--events 1000000] [--keys 10000] [--broker none] [-- <more jar args>]
// The bench section: `bun run bench --only kstreams` (kafkaStreamsReference in bench-sections.ts).
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const DIR = join(import.meta.dir, "kstreams");
export const KSTREAMS_JAR = join(DIR, "target", "kstreams-bench.jar");
/** A fixed heap, so that its growth is not part of the measurement; the analytics job holds ~2 M sliding windows at 1 M events. */
export const KSTREAMS_JVM_FLAGS = ["-Xms4g", "-Xmx4g"];

export interface KStreamsResult {
  tumbling_inmemory?: number;
  analytics_inmemory?: number;
  tumbling_rocksdb?: number;
  analytics_rocksdb?: number;
  tumbling_broker?: number;
  analytics_broker?: number;
  /** Why the broker variants did not run, when they did not. */
  broker?: string;
  events: number;
  keys: number;
  /** Records on each output topic per variant: the same for every variant of a job. */
  outputs: Record<string, Record<string, number>>;
  jvm: string;
}

export interface KStreamsOptions {
  events?: number;
  keys?: number;
  /** Extra arguments for the jar (see Bench.java), e.g. ["--broker", "none"]. */
  args?: string[];
  /** Killed after this long; 30 minutes by default (a full run takes about 12 on 2 cores). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** Why the job cannot run here (no java or mvn on PATH), or null. */
export function kstreamsMissing(): string | null {
  const missing = ["java", "mvn"].filter((tool) => !Bun.which(tool));
  return missing.length ? `${missing.join(" and ")} not found on PATH (the Kafka Streams reference needs Java 17+ and Maven)` : null;
}

function newestSource(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestSource(join(path, name))));
}

async function mvn(args: string[]): Promise<{ ok: boolean; output: string }> {
  const proc = Bun.spawn(["mvn", ...args], { cwd: DIR, stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { ok: (await proc.exited) === 0, output: `${out}${err}` };
}

/** Builds target/kstreams-bench.jar unless it is newer than pom.xml and src/: offline first, then online. */
export async function buildKStreams(log: (line: string) => void = console.log): Promise<string> {
  if (existsSync(KSTREAMS_JAR) && statSync(KSTREAMS_JAR).mtimeMs >= Math.max(newestSource(join(DIR, "pom.xml")), newestSource(join(DIR, "src")))) {
    return KSTREAMS_JAR;
  }
  const started = performance.now();
  log("building scripts/kstreams (mvn -q -o -DskipTests package)");
  let build = await mvn(["-q", "-o", "-DskipTests", "package"]);
  if (!build.ok) {
    log("offline build failed (Maven repository not cached yet): building online, which downloads Kafka Streams and RocksDB (~100 MB)");
    build = await mvn(["-q", "-DskipTests", "package"]);
  }
  if (!build.ok) throw new Error(`mvn package failed in scripts/kstreams:\n${build.output.slice(-4000)}`);
  log(`built ${KSTREAMS_JAR} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return KSTREAMS_JAR;
}

/** Builds the jar if needed and runs it; its progress lines go to `log`. Throws on failure or timeout. */
export async function runKStreams(options: KStreamsOptions = {}): Promise<KStreamsResult> {
  const log = options.log ?? console.log;
  const jar = await buildKStreams(log);
  const args = [...KSTREAMS_JVM_FLAGS, "-jar", jar, "--events", String(options.events ?? 1_000_000), "--keys", String(options.keys ?? 10_000), ...(options.args ?? [])];
  log(`java ${args.join(" ")}`);
  const proc = Bun.spawn(["java", ...args], { stdout: "pipe", stderr: "pipe" });
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    log(`killing the Kafka Streams run (pid ${proc.pid}) after ${timeoutMs / 60_000} minutes`);
    proc.kill("SIGKILL");
  }, timeoutMs);
  const stderr: string[] = [];
  const relay = (async () => {
    let rest = "";
    for await (const chunk of proc.stderr) {
      const lines = (rest + new TextDecoder().decode(chunk)).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        stderr.push(line);
        log(line.replace(/^\[kstreams\] /, ""));
      }
    }
  })();
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited, relay]);
  clearTimeout(timer);
  if (timedOut) throw new Error(`the Kafka Streams run took longer than ${timeoutMs / 60_000} minutes`);
  const line = stdout.trim().split("\n").at(-1);
  if (code !== 0 || !line?.startsWith("{")) throw new Error(`the Kafka Streams run failed (exit ${code}):\n${stderr.slice(-20).join("\n")}`);
  return JSON.parse(line) as KStreamsResult;
}

if (import.meta.main) {
  const argv = Bun.argv.slice(2);
  const take = (flag: string) => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : Number(argv.splice(i, 2)[1]);
  };
  const events = take("--events");
  const keys = take("--keys");
  const missing = kstreamsMissing();
  if (missing) {
    console.error(`kstreams: ${missing}`);
    process.exit(1);
  }
  const result = await runKStreams({ events, keys, args: argv.filter((a) => a !== "--"), log: (line) => console.error(line) });
  console.log(JSON.stringify(result));
}

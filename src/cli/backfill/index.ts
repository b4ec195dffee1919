import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { parseBackfillArgs, UsageError, USAGE, type BackfillOptions } from "./args.ts";
import { BatchBuilder, type Batch } from "./batch.ts";
import { AckTracker, CheckpointError, CheckpointFile, type Position } from "./checkpoint.ts";
import { systemClock, type Clock } from "./clock.ts";
import { csvBatches, CsvHeaderError } from "./csv.ts";
import { jsonArrayBatches, JsonArrayError } from "./json-array.ts";
import { ndjsonBatches } from "./ndjson.ts";
import { Progress, type ProgressMode } from "./progress.ts";
import { TokenBucket, unlimited } from "./rate.ts";
import { sendBatch, type SendOptions } from "./sender.ts";
import { fileIdentity, openSource } from "./source.ts";
import { buildSummary, formatSummary, Tally, type Summary } from "./summary.ts";

export { parseBackfillArgs, type BackfillOptions } from "./args.ts";
export type { Summary } from "./summary.ts";

/** A request body stays under the server's default 5 MiB limit (KEYFLOW_MAX_BODY_BYTES). */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
const MAX_LINE_BYTES = 1024 * 1024;
const LISTED_REJECTIONS = 20;

export interface BackfillIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** What tests inject; the CLI uses the defaults. */
export interface BackfillDeps extends BackfillIo {
  clock?: Clock;
  random?: () => number;
  /** Stops taking new batches; those in flight finish and the checkpoint is written. */
  signal?: AbortSignal;
  checkpointIntervalMs?: number;
  progressIntervalMs?: number;
  /** Called with the summary before the process-facing output (tests read numbers from it). */
  onSummary?: (summary: Summary) => void;
  /** Called after each batch is settled, with how many batches are settled so far. */
  onBatch?: (settled: number) => void;
}

/** `keyflow backfill FILE|- [options]`: returns the exit code (0 all accepted or duplicate, 1 rejected or stopped, 2 usage). */
export async function runBackfill(
  argv: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; stdin: NodeJS.ReadableStream },
): Promise<number> {
  let options: BackfillOptions | "help";
  try {
    options = parseBackfillArgs(argv, process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`keyflow backfill: ${error.message}\n${USAGE}\n`);
    return 2;
  }
  if (options === "help") {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // Ctrl-C stops taking new batches and lets the ones in flight settle, so the checkpoint is exact.
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    return await backfill(options, { ...io, signal: controller.signal });
  } catch (error) {
    // Not a rejected line (those are data): the file could not be read, or a bug. Said plainly, exit 1.
    io.stderr.write(`keyflow backfill: ${(error as Error).message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

export async function backfill(options: BackfillOptions, deps: BackfillDeps): Promise<number> {
  const { stdout, stderr } = deps;
  const clock = deps.clock ?? systemClock;
  const usage = (message: string) => (stderr.write(`keyflow backfill: ${message}\n`), 2);
  const fromStdin = options.file === "-";
  if (!fromStdin && !existsSync(options.file)) return usage(`no such file: ${options.file}`);
  if (!fromStdin && !statSync(options.file).isFile()) return usage(`not a file: ${options.file}`);

  const identity = fromStdin ? undefined : fileIdentity(options.file);
  const store = options.checkpoint ? new CheckpointFile(options.checkpoint, clock, deps.checkpointIntervalMs ?? 1_000) : undefined;
  let start: Position = { offset: 0, line: 0 };
  let header: string[] | undefined;
  let resumed: Position | undefined;
  if (store && !options.restart) {
    let saved;
    try {
      saved = store.load();
    } catch (error) {
      if (error instanceof CheckpointError) return usage(error.message);
      throw error;
    }
    if (saved) {
      const differs =
        saved.format !== options.format ? `it is for --format ${saved.format}` : identity && (saved.size !== identity.size || saved.head !== identity.head) ? "the file has changed since" : undefined;
      if (differs) return usage(`checkpoint ${store.path} does not match ${options.file} (${differs}): delete it or pass --restart`);
      start = { offset: saved.offset, line: saved.line };
      header = saved.header;
      resumed = start;
    }
  }

  const source = await openSource(options.file, deps.stdin, options.format === "json" ? 0 : start.offset);
  const builder = new BatchBuilder(options.batchSize, MAX_BATCH_BYTES);
  const read = { startOffset: start.offset, startLine: start.line, builder, maxLineBytes: MAX_LINE_BYTES };
  const batches: AsyncGenerator<Batch> =
    options.format === "ndjson"
      ? ndjsonBatches(source.chunks, read)
      : options.format === "csv"
        ? csvBatches(source.chunks, { ...read, header, onHeader: (columns) => void (header = columns) })
        : jsonArrayBatches(source.chunks, read);

  const send: SendOptions = {
    url: options.url,
    apiKey: options.apiKey,
    limiter: options.rate > 0 ? new TokenBucket(options.rate, options.batchSize, clock) : unlimited,
    clock,
    random: deps.random ?? Math.random,
    maxAttempts: options.maxAttempts,
    backoff: { baseMs: 200, maxMs: 30_000 },
    timeoutMs: 120_000,
  };
  const tracker = new AckTracker(start);
  const tally = new Tally();
  const saveCheckpoint = (force: boolean) =>
    store?.save({ format: options.format, size: identity?.size, head: identity?.head, header, ...tracker.position }, force);

  const startMs = clock.now();
  const isTTY = (stderr as { isTTY?: boolean }).isTTY === true;
  // A bar on a terminal (or when forced with --progress), a line every few seconds in a log.
  const mode: ProgressMode = options.progress === "off" ? "off" : options.progress === "on" || isTTY ? "bar" : "lines";
  const progress = new Progress(stderr, mode, clock, startMs);
  const state = () => ({ bytes: source.readBytes(), totalBytes: source.totalBytes, events: tally.events });
  const timer = mode === "off" ? undefined : setInterval(() => progress.tick(state()), deps.progressIntervalMs ?? (mode === "bar" ? 250 : 1_000));
  (timer as { unref?: () => void } | undefined)?.unref?.();

  let failure: string | undefined;
  let inputProblem = false;
  let settled = 0;
  const nextBatch = async (): Promise<Batch | undefined> => {
    if (failure || deps.signal?.aborted) return undefined;
    try {
      const next = await batches.next();
      return next.done ? undefined : next.value;
    } catch (error) {
      inputProblem = error instanceof CsvHeaderError || error instanceof JsonArrayError;
      failure ??= `reading ${options.file}: ${(error as Error).message}`;
      return undefined;
    }
  };
  const worker = async () => {
    for (let batch = await nextBatch(); batch; batch = await nextBatch()) {
      tracker.issue(batch.seq, { offset: batch.endOffset, line: batch.endLine });
      try {
        tally.add(await sendBatch(batch, send));
      } catch (error) {
        failure ??= (error as Error).message;
        return;
      }
      if (tracker.ack(batch.seq)) saveCheckpoint(false);
      deps.onBatch?.(++settled);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker));
  } finally {
    if (timer) clearInterval(timer);
  }
  if (!failure && deps.signal?.aborted) failure = "interrupted";
  const complete = !failure;
  progress.finish(state());
  if (complete) store?.remove();
  else saveCheckpoint(true);

  const summary = buildSummary(
    {
      file: fromStdin ? "-" : resolve(options.file),
      format: options.format,
      complete,
      error: failure,
      resumed_from: resumed,
      checkpoint: !complete && store ? { path: store.path, ...tracker.position } : undefined,
    },
    tally,
    clock.now() - startMs,
    options.json ? 1_000 : LISTED_REJECTIONS,
  );
  deps.onSummary?.(summary);
  if (failure) stderr.write(`keyflow backfill: ${failure}\n`);
  stdout.write(options.json ? `${JSON.stringify(summary)}\n` : formatSummary(summary));
  if (inputProblem && tally.events === 0) return 2;
  return complete && summary.rejected === 0 ? 0 : 1;
}

import type { Clock } from "./clock.ts";

export type ProgressMode = "bar" | "lines" | "off";

export interface ProgressState {
  bytes: number;
  totalBytes?: number;
  events: number;
}

const WIDTH = 30;
const n = (v: number) => Math.round(v).toLocaleString("en-US");

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** One progress report: bytes done (of the total when known), events, events/s, ETA. */
export function progressText(state: ProgressState, elapsedMs: number, bar: boolean): string {
  const seconds = elapsedMs / 1000;
  const rate = seconds > 0 ? state.events / seconds : 0;
  const parts: string[] = [];
  if (state.totalBytes) {
    const fraction = Math.min(1, state.bytes / state.totalBytes);
    const bytesPerS = seconds > 0 ? state.bytes / seconds : 0;
    const eta = bytesPerS > 0 ? (state.totalBytes - state.bytes) / bytesPerS : Infinity;
    if (bar) parts.push(`[${"#".repeat(Math.round(fraction * WIDTH)).padEnd(WIDTH, ".")}] ${(fraction * 100).toFixed(0).padStart(3)}%`);
    else parts.push(`${(fraction * 100).toFixed(1)}%`);
    parts.push(`${mib(state.bytes)}/${mib(state.totalBytes)}`, `${n(state.events)} events`, `${n(rate)} events/s`, `ETA ${duration(eta)}`);
  } else {
    parts.push(mib(state.bytes), `${n(state.events)} events`, `${n(rate)} events/s`);
  }
  return parts.join("  ");
}

/** Progress on stderr: a redrawn bar on a terminal, a line at a time otherwise (every `lineEveryMs`). */
export class Progress {
  private lastLineMs: number;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly mode: ProgressMode,
    private readonly clock: Clock,
    private readonly startMs: number,
    private readonly lineEveryMs = 5_000,
  ) {
    this.lastLineMs = startMs;
  }

  tick(state: ProgressState): void {
    const now = this.clock.now();
    if (this.mode === "bar") {
      this.out.write(`\r${progressText(state, now - this.startMs, true)}\x1b[K`);
      this.drawn = true;
    } else if (this.mode === "lines" && now - this.lastLineMs >= this.lineEveryMs) {
      this.lastLineMs = now;
      this.out.write(`progress: ${progressText(state, now - this.startMs, false)}\n`);
    }
  }

  /** Leaves the bar's last state on its own line before the summary. */
  finish(state: ProgressState): void {
    if (this.mode === "bar") {
      this.tick(state);
      if (this.drawn) this.out.write("\n");
    }
  }
}

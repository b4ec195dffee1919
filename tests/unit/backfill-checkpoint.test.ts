import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckTracker, CheckpointError, CheckpointFile } from "../../src/cli/backfill/checkpoint.ts";
import type { Clock } from "../../src/cli/backfill/clock.ts";

class FakeClock implements Clock {
  t = 0;
  slept: number[] = [];
  now = () => this.t;
  sleep = async (ms: number) => {
    this.slept.push(ms);
    this.t += ms;
  };
}

describe("AckTracker", () => {
  test("the position moves only over a contiguous prefix of acknowledged batches", () => {
    const tracker = new AckTracker({ offset: 0, line: 0 });
    const end = (seq: number) => ({ offset: (seq + 1) * 100, line: (seq + 1) * 10 });
    for (let seq = 0; seq < 5; seq++) tracker.issue(seq, end(seq));
    expect(tracker.ack(2)).toBe(false);
    expect(tracker.ack(1)).toBe(false);
    expect(tracker.position).toEqual({ offset: 0, line: 0 });
    expect(tracker.ack(0)).toBe(true);
    expect(tracker.position).toEqual(end(2)); // 0, 1 and 2 are all done
    expect(tracker.ack(4)).toBe(false);
    expect(tracker.position).toEqual(end(2));
    expect(tracker.outstanding).toBe(2);
    expect(tracker.ack(3)).toBe(true);
    expect(tracker.position).toEqual(end(4));
    expect(tracker.outstanding).toBe(0);
  });

  test("a batch acknowledged before an earlier one is even issued waits for it", () => {
    const tracker = new AckTracker({ offset: 50, line: 5 });
    tracker.issue(1, { offset: 200, line: 20 });
    expect(tracker.ack(1)).toBe(false);
    expect(tracker.position).toEqual({ offset: 50, line: 5 });
    tracker.issue(0, { offset: 100, line: 10 });
    expect(tracker.ack(0)).toBe(true);
    expect(tracker.position).toEqual({ offset: 200, line: 20 });
  });
});

describe("CheckpointFile", () => {
  const withDir = (run: (dir: string) => void) => {
    const dir = mkdtempSync(join(tmpdir(), "keyflow-bf-cp-"));
    try {
      run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  test("writes at most every interval (unless forced), whole, and loads what it wrote", () =>
    withDir((dir) => {
      const clock = new FakeClock();
      const file = new CheckpointFile(join(dir, "cp"), clock, 1_000);
      const data = { format: "ndjson", size: 10, head: "h", offset: 5, line: 1 };
      expect(file.load()).toBeUndefined();
      expect(file.save(data)).toBe(true);
      clock.t = 999;
      expect(file.save({ ...data, offset: 9, line: 2 })).toBe(false);
      expect(file.load()).toMatchObject({ version: 1, offset: 5, line: 1 });
      clock.t = 1_000;
      expect(file.save({ ...data, offset: 9, line: 2 })).toBe(true);
      expect(file.save({ ...data, offset: 12, line: 3 }, true)).toBe(true);
      expect(file.load()).toMatchObject({ version: 1, format: "ndjson", offset: 12, line: 3 });
      expect(readdirSync(dir)).toEqual(["cp"]); // the temp file was renamed over it
      file.remove();
      expect(existsSync(join(dir, "cp"))).toBe(false);
    }));

  test("a damaged or foreign checkpoint is an error that says how to go on, not a silent restart", () =>
    withDir((dir) => {
      const path = join(dir, "cp");
      const file = new CheckpointFile(path, new FakeClock(), 0);
      writeFileSync(path, "{not json");
      expect(() => file.load()).toThrow(CheckpointError);
      writeFileSync(path, JSON.stringify({ version: 1, format: "ndjson", offset: -1, line: 0 }));
      expect(() => file.load()).toThrow("--restart");
      writeFileSync(path, JSON.stringify({ version: 1, format: "ndjson", offset: 3, line: 1 }));
      expect(file.load()).toMatchObject({ offset: 3, line: 1 });
      expect(JSON.parse(readFileSync(path, "utf8")).offset).toBe(3);
    }));
});

import { expect, test } from "bun:test";
import { costLines, dollarsPerMillionEvents, KEYS_PER_REQUEST } from "../../scripts/bench-cost.ts";

// A short `bun run bench --only cost`. These are counts from the keyflow_do_* counters, not timings:
// with no sinks they are exact (no alarm fires within the run: default windows close minutes later).
test(
  "no sinks: each key's commit writes 2 rows (dedupe segment, state); 100 events per key cost under $0.25 per million",
  async () => {
    const [single, ten, hundred] = await costLines([
      { perKey: 1, events: 200 },
      { perKey: 10, events: 1_000 },
      { perKey: 100, events: 5_000 },
    ]);
    // Single events: 20 keys, one request and one RPC call per event.
    expect(single!.workerRequests).toBe(200);
    expect(single!.doRequests).toBe(200);
    expect(single!.alarms).toBe(0);
    // Per key once: its name row and its first window alarm; per commit: a dedupe segment and the state row.
    // Per new object, creating the kv table writes 2 rows (SQLite's schema).
    const keys = 20;
    expect(single!.alarmsSet).toBe(keys);
    expect(single!.rowsWritten).toBe(2 * 200 + keys * (1 + 1 + 2));
    for (const [line, perKey] of [[ten!, 10], [hundred!, 100]] as const) {
      const calls = line.events / perKey;
      expect(line.workerRequests).toBe(calls / KEYS_PER_REQUEST);
      expect(line.doRequests).toBe(calls);
      expect(line.rowsWritten).toBe(2 * calls + KEYS_PER_REQUEST * (1 + 1 + 2));
      // Rows are read once per object, when it loads its actor.
      expect(line.rowsRead).toBeLessThanOrEqual(2 * KEYS_PER_REQUEST);
    }
    expect(dollarsPerMillionEvents(hundred!)).toBeLessThanOrEqual(0.25);
    expect(dollarsPerMillionEvents(single!)).toBeGreaterThan(2);
  },
  120_000,
);

test(
  "a webhook sink: every event delivered, and 100 events per key still cost under $0.25 per million",
  async () => {
    const [hundred] = await costLines([{ perKey: 100, events: 5_000 }], "webhook");
    expect(hundred!.delivered).toBeGreaterThanOrEqual(5_000);
    // Each delivery is an alarm: a request, its alarm row, and its commits (tick, delivery).
    expect(hundred!.alarms).toBeGreaterThanOrEqual(KEYS_PER_REQUEST);
    expect(hundred!.rowsWritten / hundred!.events).toBeLessThan(0.1);
    expect(dollarsPerMillionEvents(hundred!)).toBeLessThanOrEqual(0.25);
  },
  180_000,
);

import { afterAll, describe, expect, test } from "bun:test";
import { BUN_SERVER, CONTRACT_ENV, DENO_SERVER, spawnServer, tempDir, type ServerProcess } from "../support/targets.ts";

// A server killed with SIGKILL right after acknowledging, before any checkpoint: the restarted
// server replays the commit journal from SQLite and answers exactly as before.
const T0 = Date.UTC(2026, 10, 22, 9, 0, 0);

for (const [name, cmd] of [
  ["Bun", BUN_SERVER],
  ["Deno", DENO_SERVER],
] as const) {
  describe(`${name} server killed with SIGKILL`, () => {
    const dir = tempDir(`crash-${name}`);
    const env = { ...CONTRACT_ENV, PORT: "0", KEYFLOW_DATA_DIR: dir.path, KEYFLOW_CHECKPOINT_INTERVAL: "1h" };
    let server: ServerProcess | undefined;
    afterAll(async () => {
      await server?.stop();
      dir.remove();
    });

    test("loses nothing it acknowledged: the journal is replayed on restart", async () => {
      server = await spawnServer(cmd, env);
      const post = (body: unknown, type = "application/json") =>
        fetch(`${server!.url}/v1/events`, { method: "POST", headers: { "content-type": type }, body: typeof body === "string" ? body : JSON.stringify(body) });
      const events = Array.from({ length: 300 }, (_, i) => ({
        event_id: `c${i}`,
        event_type: i % 2 ? "purchase" : "page_view",
        user_id: `crash-${i % 7}`,
        timestamp: T0 + i * 1_000,
        value: i,
      }));
      expect((await post(events.slice(0, 200).map((e) => JSON.stringify(e)).join("\n"), "application/x-ndjson")).status).toBe(200);
      for (const e of events.slice(200)) expect((await post(e)).status).toBe(202);
      const keys = [...new Set(events.map((e) => e.user_id))];
      const read = async () =>
        Promise.all(keys.map(async (k) => [await (await fetch(`${server!.url}/v1/actors/${k}`)).json(), await (await fetch(`${server!.url}/v1/actors/${k}/windows?size=1m`)).json()]));
      const before = await read();
      expect((before[0]![0] as { totals: { events: number } }).totals.events).toBeGreaterThan(0);

      server.proc.kill("SIGKILL");
      await server.proc.exited;
      server = await spawnServer(cmd, env);
      expect(server.output()).toContain("recovered");
      const health = (await (await fetch(`${server.url}/health`)).json()) as { runtime: Record<string, number> };
      expect(health.runtime.journal_entries_replayed).toBeGreaterThan(0);
      expect(health.runtime.actors_pending_checkpoint).toBe(keys.length);
      expect(await read()).toEqual(before);
      const retry = await post(events[250]);
      expect(retry.status).toBe(200);
      expect(((await retry.json()) as { status: string }).status).toBe("duplicate");
    });
  });
}

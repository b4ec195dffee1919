import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, spawnServer, tempDir, WORKERD_SERVER } from "../support/targets.ts";

// The Worker bundles keyflow.config.json through wrangler's alias "keyflow-config" (wrangler.toml [alias]):
// the file reaches the Worker and its Durable Objects, and a bad one answers 500 misconfigured naming the path.
test("workerd: a bundled keyflow.config.json is read; a bad one answers 500 misconfigured naming its JSON path", async () => {
  const dir = tempDir("workers-config");
  try {
    const bad = join(dir.path, "bad.config.json");
    writeFileSync(bad, JSON.stringify({ types: { purchase: { windows: ["1m"] } }, rules: [{ name: "r", type: "purchase", window: "1h", aggregate: "count", op: ">", threshold: 1 }] }));
    for (const [file, status] of [[join(ROOT, "docs/keyflow.config.example.json"), 202], [bad, 500]] as const) {
      const worker = await spawnServer(WORKERD_SERVER, { HOST: "127.0.0.1", PORT: "0", KEYFLOW_DATA_DIR: join(dir.path, String(status)), KEYFLOW_TEST_CONFIG_FILE: file }, 60_000);
      try {
        const res = await fetch(`${worker.url}/v1/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ event_id: "e1", event_type: "purchase", user_id: "u1", value: 1500 }),
        });
        const body = await res.text();
        expect(res.status, body).toBe(status);
        if (status === 500) {
          expect(JSON.parse(body).error.code).toBe("misconfigured");
          expect(body).toContain('rules[0].window: \\"1h\\" is not a window of type \\"purchase\\" (its windows: 1m)');
        }
      } finally {
        await worker.stop();
      }
    }
  } finally {
    dir.remove();
  }
}, 180_000);

// The same pure actor on Workers: a type's sliding and session windows and a rule on them, read back
// through the Durable Object (GET windows and alerts), as on the self-hosted server.
test("workerd: a type's sliding and session windows and a rule on them run in the Durable Object", async () => {
  const dir = tempDir("workers-typed");
  try {
    const file = join(dir.path, "keyflow.config.json");
    writeFileSync(
      file,
      JSON.stringify({
        types: { purchase: { windows: ["1m", "sliding:1m", "session:2m"], distinct: { path: "properties.sku" } } },
        rules: [{ name: "rapid", type: "purchase", window: "sliding:1m", aggregate: "count", op: ">=", threshold: 3 }],
      }),
    );
    const worker = await spawnServer(WORKERD_SERVER, { HOST: "127.0.0.1", PORT: "0", KEYFLOW_DATA_DIR: join(dir.path, "data"), KEYFLOW_TEST_CONFIG_FILE: file }, 60_000);
    try {
      const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
      const events = [0, 1_000, 2_000, 100_000].map((dt, i) => ({ event_id: `p${i}`, event_type: "purchase", user_id: "u1", timestamp: t0 + dt, value: 10, properties: { sku: `s${i % 2}` } }));
      const res = await fetch(`${worker.url}/v1/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
      expect(res.status, await res.text()).toBe(200);
      const read = async (path: string) => {
        const r = await fetch(`${worker.url}${path}`);
        expect(r.status).toBe(200);
        return (await r.json()) as Record<string, any>;
      };
      const sessions = (await read("/v1/actors/u1/windows?size=session:2m")).windows;
      expect(sessions.map((w: any) => [w.shape, w.event_type, Date.parse(w.start) - t0, Date.parse(w.end) - t0, w.count, w.distinct])).toEqual([["session", "purchase", 0, 100_000, 4, 2]]);
      const sliding = (await read("/v1/actors/u1/windows?size=sliding:1m")).windows;
      expect(sliding.every((w: any) => w.shape === "sliding" && w.event_type === "purchase")).toBe(true);
      expect(Math.max(...sliding.map((w: any) => w.count))).toBe(3);
      const alerts = (await read("/v1/actors/u1/alerts")).alerts;
      expect(alerts.map((a: any) => [a.rule, a.window.shape, a.event_id, a.value])).toEqual([["rapid", "sliding:1m", "p2", 3]]);
    } finally {
      await worker.stop();
    }
  } finally {
    dir.remove();
  }
}, 180_000);

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

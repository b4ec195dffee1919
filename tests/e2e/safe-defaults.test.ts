import { expect, test } from "bun:test";
import { BUN_SERVER, DENO_SERVER, ROOT, spawnServer, tempDir } from "../support/targets.ts";
import { TEST_KEY_LINES } from "../support/api-keys.ts";

for (const [name, cmd] of [["Bun", BUN_SERVER], ["Deno", DENO_SERVER]] as const) {
  test(`${name}: without API keys the server refuses a non-loopback address, naming the variables; on loopback it warns`, async () => {
    const dir = tempDir("safe");
    try {
      const refused = Bun.spawnSync(cmd, { cwd: ROOT, env: { ...process.env, HOST: "0.0.0.0", PORT: "0", KEYFLOW_DATA_DIR: dir.path }, timeout: 60_000 });
      const said = refused.stderr.toString() + refused.stdout.toString();
      expect(refused.exitCode).toBe(2);
      expect(said).toContain("HOST=0.0.0.0: no API keys are configured");
      expect(said).toContain("KEYFLOW_API_KEYS");
      expect(said).toContain("KEYFLOW_AUTH=off");
      expect(said).not.toContain("listening");

      const open = await spawnServer(cmd, { HOST: "127.0.0.1", PORT: "0", KEYFLOW_DATA_DIR: dir.path });
      try {
        expect(open.output()).toContain("auth: OPEN (no API keys)");
        expect(open.output()).toContain("WARNING: no API keys are configured");
      } finally {
        await open.stop();
      }

      const keyed = await spawnServer(cmd, { HOST: "0.0.0.0", PORT: "0", KEYFLOW_DATA_DIR: dir.path, KEYFLOW_API_KEYS: TEST_KEY_LINES });
      try {
        expect(keyed.output()).toMatch(/auth: \d+ API keys/);
        expect(keyed.output()).not.toContain("WARNING");
        expect(keyed.output()).not.toContain("kf_test_");
        const res = await fetch(`${keyed.url.replace("0.0.0.0", "127.0.0.1")}/v1/actors/x`);
        expect(res.status).toBe(401);
      } finally {
        await keyed.stop();
      }
    } finally {
      dir.remove();
    }
  }, 120_000);
}

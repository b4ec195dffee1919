import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "../support/targets.ts";

/** Starts the server exactly as the README says (`npm start`), on a free port and a temp data dir. */
async function npmStart(dataDir: string, port: number) {
  const proc = Bun.spawn(["npm", "start"], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), KEYFLOW_DATA_DIR: dataDir },
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
  });
  const url = `http://127.0.0.1:${port}`;
  const server = {
    url,
    async stop() {
      running.delete(server);
      // npm does not forward SIGTERM to its script: signal the whole process group.
      process.kill(-proc.pid, "SIGTERM");
      await proc.exited;
      for (let i = 0; i < 50; i++) {
        try {
          await fetch(`${url}/health`);
        } catch {
          return;
        }
        await Bun.sleep(100);
      }
      throw new Error("server still answering after SIGTERM");
    },
  };
  running.add(server);
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {}
    await Bun.sleep(100);
  }
  return server;
}

/** The curl examples of the README, run as they are written (with the port swapped). */
function readmeCurls(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  return [...readme.matchAll(/^curl -.*?(?<!\\)$/gms)].map((m) => m[0].replace(/\\\n\s*/g, " "));
}

const dir = tempDir("e2e");
/** Servers still running, stopped after the tests even when an assertion failed midway. */
const running = new Set<{ stop(): Promise<void> }>();
afterAll(async () => {
  for (const server of running) await server.stop().catch(() => undefined);
  dir.remove();
});

test("README quick start: npm start serves the API; curl examples work; state survives a restart", async () => {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const curls = readmeCurls();
  expect(curls.length).toBeGreaterThanOrEqual(2);

  let server = await npmStart(dir.path, port);
  const outputs: string[] = [];
  for (const cmd of curls) {
    const run = Bun.spawnSync(["bash", "-c", cmd.replaceAll("127.0.0.1:8787", `127.0.0.1:${port}`)]);
    expect(run.exitCode).toBe(0);
    outputs.push(run.stdout.toString());
  }
  expect(JSON.parse(outputs[0]!)).toMatchObject({ status: "accepted" });
  const state = JSON.parse(outputs[1]!);
  expect(state.key).toBe("user123");
  expect(state.totals.events).toBe(1);
  await server.stop();

  server = await npmStart(dir.path, port);
  const again = Bun.spawnSync(["bash", "-c", curls[0]!.replaceAll("127.0.0.1:8787", `127.0.0.1:${port}`)]);
  expect(JSON.parse(again.stdout.toString())).toMatchObject({ status: "duplicate" });
  const after = await (await fetch(`${server.url}/v1/actors/user123`)).json();
  expect(after).toEqual({ ...state, totals: { ...state.totals, duplicates: 1 } });
  await server.stop();
});

test("npm run dev serves the same API from wrangler dev, offline, without errors", async () => {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const state = tempDir("dev");
  const proc = Bun.spawn(["npm", "run", "dev", "--", "--persist-to", state.path], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
  });
  const devServer = { stop: async () => void process.kill(-proc.pid, "SIGTERM") };
  running.add(devServer);
  const url = `http://127.0.0.1:${port}`;
  const started = Date.now();
  let healthy = false;
  for (let i = 0; i < 300 && !healthy; i++) {
    try {
      healthy = (await fetch(`${url}/health`)).ok;
    } catch {
      await Bun.sleep(100);
    }
  }
  expect(healthy).toBe(true);
  // No waiting on Cloudflare hosts: wrangler is up within seconds on a machine with no network.
  expect(Date.now() - started).toBeLessThan(20_000);
  const health = await (await fetch(`${url}/health`)).json();
  expect(health).toMatchObject({ status: "ok", host: "workers" });
  const res = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ event_id: "dev-1", event_type: "signup", user_id: "dev-user" }),
  });
  expect(res.status).toBe(202);
  running.delete(devServer);
  process.kill(-proc.pid, "SIGTERM");
  await proc.exited;
  const output = (await new Response(proc.stdout).text()) + (await new Response(proc.stderr).text());
  expect(output).toContain(`Ready on http://127.0.0.1:${port}`);
  expect(output).not.toMatch(/ENOTFOUND|Unable to fetch|\[ERROR\]|✘/);
  state.remove();
});

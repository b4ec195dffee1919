import { expect, test } from "bun:test";
import { BUN_SERVER, DENO_SERVER, spawnServer, tempDir, WORKERD_SERVER } from "../support/targets.ts";

/** The request lines a server printed (JSON objects with msg "request"). */
const requestLines = (output: string) =>
  output
    .split("\n")
    .filter((line) => line.startsWith("{") && line.includes('"msg":"request"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

for (const [name, cmd] of [["Bun", BUN_SERVER], ["Deno", DENO_SERVER]] as const) {
  test(`${name}: one JSON line per request on stdout, with route, status and correlation ID, no payload; written at shutdown too`, async () => {
    const dir = tempDir("logs");
    const server = await spawnServer(cmd, { HOST: "127.0.0.1", PORT: "0", KEYFLOW_DATA_DIR: dir.path, KEYFLOW_LOG_LEVEL: "info" });
    try {
      const post = (id: string, requestId: string) =>
        fetch(`${server.url}/v1/events`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-request-id": requestId },
          body: JSON.stringify({ event_id: id, event_type: "purchase", user_id: "secret-user", properties: { card: "4111-1111" } }),
        });
      expect((await post("l1", "log-test-1")).status).toBe(202);
      expect((await post("l2", "log-test-2")).status).toBe(202);
      const deadline = Date.now() + 10_000;
      while (requestLines(server.output()).length < 2) {
        if (Date.now() > deadline) throw new Error(`no request lines within 10 s:\n${server.output()}`);
        await Bun.sleep(20);
      }
      const [first] = requestLines(server.output());
      expect(first).toMatchObject({ level: "info", msg: "request", method: "POST", route: "/v1/events", status: 202, request_id: "log-test-1", tenant: "default" });
      expect(typeof first!.latency_ms).toBe("number");
      expect(Number.isNaN(Date.parse(first!.time as string))).toBe(false);
      expect(server.output()).not.toContain("secret-user");
      expect(server.output()).not.toContain("4111-1111");
      // The last request before a stop is still written: the batch is flushed at shutdown.
      expect((await post("l3", "log-test-last")).status).toBe(202);
      expect(await server.stop()).toBe(0);
      expect(requestLines(server.output()).map((l) => l.request_id)).toContain("log-test-last");
    } finally {
      await server.stop();
      dir.remove();
    }
  });
}

test("Workers: the same request line goes to the Worker's console (Workers Logs when deployed)", async () => {
  const dir = tempDir("logs-workerd");
  // wrangler prints a Worker's console.log only at its "log" level.
  const server = await spawnServer(WORKERD_SERVER, { HOST: "127.0.0.1", PORT: "0", KEYFLOW_DATA_DIR: dir.path, KEYFLOW_TEST_WRANGLER_LOG_LEVEL: "log" });
  try {
    const res = await fetch(`${server.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "log-test-workers" },
      body: JSON.stringify({ event_id: "w1", event_type: "purchase", user_id: "secret-user" }),
    });
    expect(res.status).toBe(202);
    const deadline = Date.now() + 10_000;
    while (!requestLines(server.output()).some((l) => l.request_id === "log-test-workers")) {
      if (Date.now() > deadline) throw new Error(`no request line within 10 s:\n${server.output()}`);
      await Bun.sleep(20);
    }
    const line = requestLines(server.output()).find((l) => l.request_id === "log-test-workers");
    expect(line).toMatchObject({ level: "info", msg: "request", method: "POST", route: "/v1/events", status: 202, tenant: "default" });
    expect(server.output()).not.toContain("secret-user");
  } finally {
    await server.stop();
    dir.remove();
  }
});

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { accessFor } from "../../src/http/access.ts";
import { createApp } from "../../src/http/app.ts";
import { Logger, requestIdOf, sinkTroubleLog } from "../../src/logging/logger.ts";
import { DurableHost } from "../../src/hosts/durable/durable-host.ts";
import { SinkChannel } from "../../src/delivery/channel.ts";
import { MemoryKvStore } from "../../src/ports/kv-store.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { readSettings } from "../../src/settings/env.ts";
import { fakeEnv, pumpedRequest } from "../support/fake-env.ts";
import { FakeSink } from "../support/fake-sink.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const KEY = "kf_logging_test_key_0123456789";

function app(level: "info" | "warn" = "info") {
  const fake = fakeEnv(T0);
  const config: Config = { ...DEFAULT_CONFIG, windows: [parseWindowSpec("1m") as WindowSpec] };
  const host = new ProcessHost({ store: new MemoryKvStore(), config, clock: fake.clock, random: fake.random, timers: fake.timers });
  const { auth } = readSettings({ KEYFLOW_API_KEYS: `acme:ingest,read:${createHash("sha256").update(KEY).digest("hex")}` });
  const lines: string[] = [];
  const logger = new Logger(level, (line) => lines.push(line), () => fake.clock.now());
  const http = createApp({ backend: host, config, env: fake.env, host: "memory", access: accessFor(auth, true), logger });
  const request = pumpedRequest(http, fake.timers);
  return { request, lines };
}

describe("request logs and correlation IDs", () => {
  test("one JSON line per request: method, route pattern, status, latency, request ID, tenant; never the body, the key or the credential", async () => {
    const { request, lines } = app();
    const res = await request("/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEY}`, "x-request-id": "req-123" },
      body: JSON.stringify({ event_id: "e1", event_type: "purchase", key: "alice", value: 7, properties: { card: "4111111111111111" }, timestamp: T0 }),
    });
    expect(res.status).toBe(202);
    expect(res.headers.get("x-request-id")).toBe("req-123");
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: "info", msg: "request", method: "POST", route: "/v1/events", status: 202, request_id: "req-123", tenant: "acme" });
    expect(line.latency_ms).toBeNumber();
    expect(line.time).toBe(new Date(T0).toISOString());
    for (const secret of ["alice", "4111", KEY, "purchase"]) expect(lines[0]).not.toContain(secret);
    const denied = await request("/v1/actors/alice", { headers: { authorization: "Bearer nope" } });
    expect(denied.status).toBe(401);
    const second = JSON.parse(lines[1]!);
    expect(second).toMatchObject({ route: "/v1/actors/:key", status: 401 });
    expect(second.tenant).toBeUndefined();
    expect(second.request_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/); // generated: a UUIDv7
    expect(denied.headers.get("x-request-id")).toBe(second.request_id);
  });

  test("a traceparent's trace id names the request when there is no x-request-id; malformed IDs are replaced", () => {
    const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    expect(requestIdOf(null, trace, () => "new")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(requestIdOf("mine", trace, () => "new")).toBe("mine");
    for (const bad of ["", "has space", "x".repeat(129), "new\nline"]) expect(requestIdOf(bad, null, () => "new"), bad).toBe("new");
    expect(requestIdOf(null, "00-00000000000000000000000000000000-00f067aa0ba902b7-01", () => "new")).toBe("new");
    expect(requestIdOf(null, "garbage", () => "new")).toBe("new");
  });

  test("KEYFLOW_LOG_LEVEL=warn: no request lines", async () => {
    const { request, lines } = app("warn");
    expect((await request("/health")).status).toBe(200);
    expect(lines).toEqual([]);
  });
});

describe("sink trouble", () => {
  test("a failed delivery and each breaker change are reported once, with the sink and its error (logged at warn)", async () => {
    const fake = fakeEnv(T0);
    const sink = new FakeSink("s");
    sink.down = 1_000_000;
    const config: Config = {
      ...DEFAULT_CONFIG,
      windows: [parseWindowSpec("1m") as WindowSpec],
      sinks: ["s"],
      delivery: { ...DEFAULT_CONFIG.delivery, backoffBaseMs: 10, backoffMaxMs: 20, breakerThreshold: 2, breakerCooldownMs: 100 },
    };
    const events: Array<{ sink: string; error?: string; breaker?: { from: string; to: string } }> = [];
    const lines: string[] = [];
    const logger = new Logger("warn", (line) => lines.push(line), () => fake.clock.now());
    const observer = {
      elapsedMs: () => fake.clock.now(),
      commit: () => {},
      delivery: () => {},
      sinkTrouble: (s: string, e: { error?: string; breaker?: { from: string; to: string } }) => {
        events.push({ sink: s, ...e });
        logger.warn(e.breaker ? "sink breaker" : "sink delivery failed", { sink: s, error: e.error, from: e.breaker?.from, to: e.breaker?.to });
      },
    };
    const host = new ProcessHost({ store: new MemoryKvStore(), config, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [sink], observer });
    const pending = host.ingest([{ id: "e1", assigned: false, type: "buy", key: "k", ts: T0 }]);
    fake.timers.advance(0);
    await pending;
    for (let t = 0; t < 400; t += 5) {
      fake.timers.advance(5);
      for (let i = 0; i < 5; i++) await Bun.sleep(0);
    }
    expect(events[0]).toMatchObject({ sink: "s", error: "s: connection refused" });
    expect(events.some((e) => e.breaker?.from === "closed" && e.breaker.to === "open")).toBe(true);
    sink.down = 0;
    for (let t = 0; t < 400; t += 5) {
      fake.timers.advance(5);
      for (let i = 0; i < 5; i++) await Bun.sleep(0);
    }
    expect(events.at(-1)?.breaker?.to).toBe("closed");
    expect(sink.eventIds("k")).toEqual(["e1"]);
    expect(lines.every((l) => JSON.parse(l).level === "warn")).toBe(true);
    expect(lines.length).toBe(events.length);
  });
});

describe("sink trouble on the Durable Object host", () => {
  test("a failed delivery and the breaker opening are each told once, as warn lines naming the sink", async () => {
    const { clock } = fakeEnv(Date.UTC(2026, 10, 21, 10, 0, 0));
    const sink = new FakeSink("webhook");
    const config = { ...DEFAULT_CONFIG, sinks: ["webhook"], delivery: { ...DEFAULT_CONFIG.delivery, breakerThreshold: 2 } };
    const lines: string[] = [];
    const logger = new Logger("info", (line) => lines.push(line), () => clock.now());
    const host = new DurableHost({
      config,
      clock,
      store: new MemoryKvStore(),
      alarms: { setAlarm: () => undefined, deleteAlarm: () => undefined },
      channels: [new SinkChannel(sink, config.delivery, { next: () => 0.5 })],
      sinkTrouble: sinkTroubleLog(logger),
    });
    await host.ingest("alice", [{ id: "e1", assigned: false, type: "purchase", key: "alice", ts: clock.now() }]).scheduled;
    sink.down = 10;
    for (let i = 0; i < 2; i++) {
      clock.time += 60_000;
      await host.alarm(0);
    }
    const logged = lines.map((l) => JSON.parse(l));
    expect(logged.map((l) => [l.level, l.msg, l.sink])).toEqual([
      ["warn", "sink delivery failed", "webhook"],
      ["warn", "sink breaker", "webhook"],
    ]);
    expect(logged[1]).toMatchObject({ from: "closed", to: "open" });
    expect(typeof logged[0].error).toBe("string");
  });
});

import { describe, expect, test } from "bun:test";
import { dirname, resolve } from "node:path";
import { readFileSync } from "node:fs";
import type { OutboxRecord } from "../../src/actor/outbox.ts";
import { SinkError } from "../../src/delivery/sink.ts";
import { ConfigError } from "../../src/settings/config.ts";
import { sinkSettings } from "../../src/settings/env.ts";
import { createSinks, postgresSink } from "../../src/sinks/index.ts";
import { nativeSinks } from "../../src/sinks/native.ts";
import { NativePostgresSink } from "../../src/sinks/postgres/native.ts";
import { PostgresSink, type OpenPostgres } from "../../src/sinks/postgres/sink.ts";
import { batchFailure, redisBatch } from "../../src/sinks/redis/commands.ts";
import { NativeRedisSink } from "../../src/sinks/redis/native.ts";
import { RedisSink } from "../../src/sinks/redis/sink.ts";

const T0 = Date.UTC(2026, 10, 21, 10);
const event = (n: number, key = "user-1"): OutboxRecord => ({ kind: "event", n, key, id: `e${n}`, type: "purchase", ts: T0 + n, value: n, receivedAt: T0, late: false });
const windowRecord = (n: number): OutboxRecord => ({
  kind: "window", n, key: "user-1", spec: "1m", start: T0, end: T0 + 60_000, revision: 1, final: true,
  all: { count: 1, valued: 1, sum: 1, min: 1, max: 1 }, types: {},
});

function problems(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error("expected a ConfigError");
}


/** A batch to a server that does not answer properly fails transiently (retried), and nothing else happens. */
async function expectTransientFailure(sink: { deliver(records: OutboxRecord[]): Promise<void>; close(): Promise<void> }): Promise<void> {
  try {
    const failure = await sink.deliver([event(0)]).then(() => undefined, (e: unknown) => e);
    expect(failure).toBeInstanceOf(SinkError);
    expect((failure as SinkError).permanent).toBe(false);
  } finally {
    await sink.close();
  }
}

describe("native sink settings", () => {
  test("KEYFLOW_REDIS_URL: redis:// and rediss:// need no token; https:// still does; another scheme is named", () => {
    expect(sinkSettings({ KEYFLOW_REDIS_URL: "redis://:pw@127.0.0.1:6379/2" }).redis).toEqual({
      url: "redis://:pw@127.0.0.1:6379/2", prefix: "kf:", ttlSeconds: 604_800, streamMaxLen: 10_000, timeoutMs: 10_000,
    });
    expect(sinkSettings({ KEYFLOW_REDIS_URL: "rediss://u:p@cache.example.com:6380" }).redis?.url).toBe("rediss://u:p@cache.example.com:6380");
    expect(sinkSettings({ KEYFLOW_REDIS_URL: "https://eu1.upstash.io", KEYFLOW_REDIS_TOKEN: "t" }).redis?.token).toBe("t");
    expect(problems(() => sinkSettings({ KEYFLOW_REDIS_URL: "https://eu1.upstash.io" }))).toContain("KEYFLOW_REDIS_TOKEN or UPSTASH_REDIS_REST_TOKEN is required");
    const wrong = problems(() => sinkSettings({ KEYFLOW_REDIS_URL: "memcached://127.0.0.1:11211" }));
    expect(wrong).toContain('KEYFLOW_REDIS_URL="memcached://127.0.0.1:11211": must be a redis://, rediss:// or https:// URL');
  });

  test("KEYFLOW_POSTGRES_CLIENT: auto picks postgres.js unless a WebSocket proxy is set or the host is Neon's; neon and native force one", () => {
    const client = (vars: Record<string, string>) => sinkSettings({ KEYFLOW_POSTGRES_URL: "postgres://postgres@127.0.0.1:5432/test", ...vars }).postgres?.client;
    expect(client({})).toBe("auto");
    expect(client({ KEYFLOW_POSTGRES_CLIENT: "auto" })).toBe("auto");
    expect(client({ KEYFLOW_NEON_WSPROXY: "127.0.0.1:6543/v1" })).toBeUndefined();
    expect(client({ KEYFLOW_POSTGRES_CLIENT: "neon" })).toBeUndefined();
    expect(client({ KEYFLOW_POSTGRES_CLIENT: "native", KEYFLOW_NEON_WSPROXY: "127.0.0.1:6543/v1" })).toBe("native");
    const neon = sinkSettings({ KEYFLOW_POSTGRES_URL: "postgres://u:p@ep-cool-1.eu-central-1.aws.neon.tech/db?sslmode=require" });
    expect(neon.postgres?.client).toBeUndefined();
    expect(problems(() => client({ KEYFLOW_POSTGRES_CLIENT: "pg" }))).toContain('KEYFLOW_POSTGRES_CLIENT="pg": must be one of auto, native, neon');
  });

  test("the self-hosted server (native clients given) builds the native sinks; without them auto falls back to the Neon driver", () => {
    const settings = sinkSettings({ KEYFLOW_REDIS_URL: "redis://127.0.0.1:6379", KEYFLOW_POSTGRES_URL: "postgres://postgres@127.0.0.1:5432/test" });
    const native = createSinks(settings, { poolPerDelivery: false, native: nativeSinks });
    expect(native.map((s) => [s.name, s.constructor.name])).toEqual([["redis", NativeRedisSink.name], ["postgres", NativePostgresSink.name]]);
    const http = sinkSettings({ KEYFLOW_REDIS_URL: "http://127.0.0.1:8079", KEYFLOW_REDIS_TOKEN: "t", KEYFLOW_POSTGRES_URL: "postgres://postgres@127.0.0.1:5432/test", KEYFLOW_POSTGRES_CLIENT: "neon" });
    expect(createSinks(http, { poolPerDelivery: false, native: nativeSinks }).map((s) => s.constructor.name)).toEqual([RedisSink.name, PostgresSink.name]);
    // Workers: no native clients; a postgres:// URL on auto keeps today's Neon driver.
    const auto = sinkSettings({ KEYFLOW_POSTGRES_URL: "postgres://postgres@127.0.0.1:5432/test" });
    expect(postgresSink(auto, true)?.constructor.name).toBe(PostgresSink.name);
    expect(postgresSink(auto, false, nativeSinks)).toBeInstanceOf(NativePostgresSink);
  });

  test("Workers (no native clients): a setting that needs one is a ConfigError naming its variable, never a crash", () => {
    const redis = problems(() => createSinks(sinkSettings({ KEYFLOW_REDIS_URL: "redis://:secret@127.0.0.1:6379" }), { poolPerDelivery: true }));
    expect(redis).toContain("KEYFLOW_REDIS_URL: redis:// needs the self-hosted server; on Workers use Upstash's https:// REST URL");
    expect(redis).not.toContain("secret");
    const pg = problems(() =>
      createSinks(sinkSettings({ KEYFLOW_POSTGRES_URL: "postgres://postgres@127.0.0.1:5432/test", KEYFLOW_POSTGRES_CLIENT: "native" }), { poolPerDelivery: true }),
    );
    expect(pg).toContain("KEYFLOW_POSTGRES_CLIENT=native needs the self-hosted server");
  });

  test("the Workers entry's static imports never reach the native clients", () => {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const transpiler = new Bun.Transpiler({ loader: "ts" });
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const { path, kind } of transpiler.scanImports(readFileSync(file, "utf8"))) {
        if (kind !== "import-statement") continue; // import() is loaded on demand, never at start
        if (path.startsWith(".")) visit(resolve(dirname(file), path));
        else packages.add(path);
      }
    };
    visit(resolve(import.meta.dir, "../../actors/key-actor.ts"));
    visit(resolve(import.meta.dir, "../../src/runtimes/workers.ts"));
    expect(seen.has(resolve(import.meta.dir, "../../src/sinks/index.ts"))).toBe(true);
    expect([...seen].filter((f) => /native/.test(f))).toEqual([]);
    expect([...packages].filter((p) => p === "ioredis" || p === "postgres")).toEqual([]);
  });
});

/** A PostgresConnection whose every statement fails with `error`. */
const failing = (error: unknown): OpenPostgres => () => ({ query: () => Promise.reject(error), end: async () => undefined });
const sqlError = (code: string, message = "refused") => Object.assign(new Error(message), { code });

describe("postgres error classification (either driver: by SQLSTATE)", () => {
  const deliver = async (error: unknown) => {
    const sink = new PostgresSink({ url: "postgres://x@127.0.0.1/db", wsProxyTls: false, poolPerDelivery: false }, failing(error));
    const failure = await sink.deliver([event(0)]).then(() => undefined, (e: unknown) => e);
    expect(failure).toBeInstanceOf(SinkError);
    return failure as SinkError;
  };

  test("data the tables refuse (classes 21, 22, 23) is permanent; missing tables say to migrate, transiently; lost connections are transient", async () => {
    for (const code of ["21000", "22P02", "23505", "23514"]) expect((await deliver(sqlError(code))).permanent, code).toBe(true);
    for (const code of ["42P01", "42703", "42P10"]) {
      const failure = await deliver(sqlError(code));
      expect([failure.permanent, failure.message.includes("run `npm run migrate`")], code).toEqual([false, true]);
    }
    // postgres.js's own codes and the server shutting a session (57P01 terminated, 57014 statement timeout).
    for (const code of ["CONNECTION_CLOSED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "ECONNREFUSED", "57P01", "57014"]) {
      expect((await deliver(sqlError(code))).permanent, code).toBe(false);
    }
    expect((await deliver(new Error("socket hang up"))).permanent).toBe(false);
    expect((await deliver(sqlError("23505"))).message).toBe("postgres: refused (SQLSTATE 23505)");
  });

  test("postgres.js: a server that never answers fails the batch transiently, and the process goes on", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      await expectTransientFailure(new NativePostgresSink({ url: `postgres://u@127.0.0.1:${silent.port}/db`, wsProxyTls: false, poolPerDelivery: false, timeoutMs: 300 }));
    } finally {
      silent.stop(true);
    }
  });
});

describe("redis commands, one list for both clients", () => {
  const layout = { prefix: "kf:", ttlSeconds: 60, streamMaxLen: 100 };
  const batch = redisBatch([event(0), windowRecord(1), event(2, "user-2"), event(3)], layout, (t) => (t === "default" ? "kf:" : `kf:t:${t}:`));

  test("a batch: each record's command in order, then one EXPIRE per stream, owned by its first record", () => {
    expect(batch.commands.map((c) => [c.op, c.key])).toEqual([
      ["xadd", "kf:events:user-1"],
      ["window", `kf:window:user-1:1m:${T0}`],
      ["xadd", "kf:events:user-2"],
      ["xadd", "kf:events:user-1"],
      ["expire", "kf:events:user-1"],
      ["expire", "kf:events:user-2"],
    ]);
    expect(batch.owner).toEqual([0, 1, 2, 3, 0, 2]);
    expect(batch.perRecord).toBe(4);
    expect(batch.commands[0]).toMatchObject({ id: "1-0", fields: { tenant: "default", event_id: "e0", value: "0" } });
  });

  test("failures: already added is success; a refusal is permanent at its record; LOADING, lost connections and a failed EXPIRE are transient", () => {
    const failure = (errors: Array<string | undefined>) => {
      const f = batchFailure(errors, batch);
      return f && { permanent: f.permanent, index: f.index };
    };
    const ok = batch.commands.map(() => undefined);
    expect(failure(ok)).toBeUndefined();
    expect(failure(["ERR The ID specified in XADD is equal or smaller than the target stream top item", ...ok.slice(1)])).toBeUndefined();
    expect(failure([undefined, undefined, "WRONGTYPE Operation against a key holding the wrong kind of value", undefined, undefined, undefined])).toEqual({ permanent: true, index: 2 });
    expect(failure([undefined, "LOADING Redis is loading the dataset in memory", undefined, undefined, undefined, undefined])).toEqual({ permanent: false, index: 1 });
    // ioredis's messages for a lost connection, a timeout, a command refused while reconnecting.
    for (const message of ["Connection is closed.", "Command timed out", "Stream isn't writeable and enableOfflineQueue options is false"]) {
      expect(failure(batch.commands.map(() => message))).toEqual({ permanent: false, index: 0 });
    }
    expect(failure([undefined, undefined, undefined, undefined, undefined, "ERR something"])).toEqual({ permanent: false, index: 2 });
  });

  test("the native Redis sink answers a transient failure while Redis cannot be reached, and the process goes on", async () => {
    await expectTransientFailure(new NativeRedisSink({ url: "redis://127.0.0.1:1", ...layout, timeoutMs: 500 }));
  });
});

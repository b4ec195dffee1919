/**
 * The Upstash REST front (scripts/fronts/upstash-redis.ts) driven by the official @upstash/redis SDK,
 * against the real redis-server on 127.0.0.1:6379 (and a throwaway one for the outage test).
 * What the SDK stored is checked through Bun's own Redis client, independently of the front.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "@upstash/redis";
import { startRedisServer, startUpstashFront, type RedisServer, type UpstashFront } from "../support/fronts.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const P = `kf-test:upstash:${process.pid}:${Date.now()}:`;

let front: UpstashFront;
let redis: Redis;
let direct: Bun.RedisClient;

/** Raw HTTP to the front, to see status codes and bodies the SDK hides. */
async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(front.url + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", authorization: `Bearer ${front.token}`, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

beforeAll(async () => {
  front = await startUpstashFront({ redisUrl: REDIS_URL });
  redis = new Redis({ url: front.url, token: front.token, enableTelemetry: false });
  direct = new Bun.RedisClient(REDIS_URL);
});

afterAll(async () => {
  if (direct) {
    const keys = (await direct.send("KEYS", [`${P}*`])) as string[];
    if (keys.length > 0) await direct.send("DEL", keys);
    direct.close();
  }
  await front?.stop();
});

describe("ready line and HTTP surface", () => {
  test("front prints its ready line with the Redis URL", () => {
    expect(front.output()).toContain(`upstash-redis front listening on ${front.url} -> ${REDIS_URL}`);
  });

  test("wrong or missing token is 401, and the SDK throws", async () => {
    const bad = new Redis({ url: front.url, token: "not-the-token", enableTelemetry: false });
    await expect(bad.get(`${P}x`)).rejects.toThrow(/Unauthorized/);
    const r = await fetch(front.url + "/", { method: "POST", body: '["PING"]' });
    expect(r.status).toBe(401);
    expect(((await r.json()) as any).error).toMatch(/Unauthorized/);
    expect((await post("/", ["PING"], { authorization: "Bearer nope" })).status).toBe(401);
  });

  test("malformed bodies are 400, unknown paths 404", async () => {
    const notJson = await fetch(front.url + "/", {
      method: "POST",
      headers: { authorization: `Bearer ${front.token}` },
      body: "{nope",
    });
    expect(notJson.status).toBe(400);
    expect((await post("/", [])).status).toBe(400);
    expect((await post("/pipeline", ["GET", "x"])).status).toBe(400);
    expect((await post("/nope", ["PING"])).status).toBe(404);
  });

  test("single command: 200 {result}, args stringified, Redis error is 400 {error}", async () => {
    expect(await post("/", ["SET", `${P}raw`, 42, "EX", 100])).toEqual({ status: 200, body: { result: "OK" } });
    expect(await post("/", ["GET", `${P}raw`])).toEqual({ status: 200, body: { result: "42" } });
    expect(await post("/", ["SET", `${P}bool`, true])).toEqual({ status: 200, body: { result: "OK" } });
    expect(await direct.get(`${P}bool`)).toBe("true");
    const err = await post("/", ["INCR", `${P}bool`]);
    expect(err.status).toBe(400);
    expect(err.body.error).toMatch(/^ERR value is not an integer/);
    expect((await post("/", ["NOSUCHCOMMAND"])).body.error).toMatch(/unknown command/);
  });

  test("base64 mode encodes every string byte-exactly, nested too, but not integers/nulls/errors", async () => {
    const bytes = Buffer.from([0xff, 0x00, 0x41, 0xc3, 0x28, 0x0a, 0xe2, 0x82]);
    await direct.set(`${P}bin`, bytes as unknown as string);
    await direct.send("RPUSH", [`${P}list`, "a", "é"]);
    const b64 = { "Upstash-Encoding": "base64" };
    const r = await post(
      "/pipeline",
      [["GET", `${P}bin`], ["SET", `${P}k`, "v"], ["STRLEN", `${P}bin`], ["GET", `${P}missing`], ["LRANGE", `${P}list`, 0, -1], ["INCR", `${P}bin`]],
      b64,
    );
    expect(r.status).toBe(200);
    expect(r.body[0].result).toBe(bytes.toString("base64"));
    expect(r.body[1].result).toBe(Buffer.from("OK").toString("base64"));
    expect(r.body[2].result).toBe(8);
    expect(r.body[3].result).toBeNull();
    expect(r.body[4].result).toEqual([Buffer.from("a").toString("base64"), Buffer.from("é").toString("base64")]);
    expect(r.body[5].error).toMatch(/^ERR value is not an integer/);
    // Without the header strings come back as text.
    expect((await post("/", ["LRANGE", `${P}list`, 0, -1])).body.result).toEqual(["a", "é"]);
  });
});

describe("@upstash/redis through the front", () => {
  test("set/get round-trips unicode and binary-ish strings (auto-pipelined)", async () => {
    const raw = new Redis({ url: front.url, token: front.token, enableTelemetry: false, automaticDeserialization: false });
    const values = [
      "héllo wörld",
      "日本語テキスト",
      "emoji 🎉🚀 and \u{1F600}",
      "nul\u0000inside",
      "ctl \u0001\u0002\u001f\t\r\n",
      "OK",
      "T0s=",
      "   spaced   ",
      "",
      "x".repeat(70_000),
    ];
    await Promise.all(values.map((v, i) => raw.set(`${P}s${i}`, v)));
    const back = await Promise.all(values.map((_, i) => raw.get<string>(`${P}s${i}`)));
    expect(back).toEqual(values);
    // What Redis holds is the UTF-8 of each value, byte for byte.
    for (const [i, v] of values.entries()) {
      expect(Buffer.from((await direct.getBuffer(`${P}s${i}`))!)).toEqual(Buffer.from(v, "utf8"));
    }
  });

  test("JSON values are serialized by the SDK and come back as objects", async () => {
    const doc = { id: 7, name: "ünïcode", tags: ["a", "b"], nested: { ok: true, n: null, f: 1.5 } };
    expect(await redis.set(`${P}json`, doc)).toBe("OK");
    expect(await redis.get<typeof doc>(`${P}json`)).toEqual(doc);
    expect(JSON.parse((await direct.get(`${P}json`))!)).toEqual(doc);
    await redis.set(`${P}num`, 12345);
    expect(await redis.get(`${P}num`)).toBe(12345);
    expect(await redis.get(`${P}never-set`)).toBeNull();
  });

  test("hset/hgetall: the RESP2 flat array becomes an object", async () => {
    expect(await redis.hset(`${P}hash`, { name: "kéy", count: 3, obj: { a: 1 } })).toBe(3);
    expect(await redis.hgetall(`${P}hash`)).toEqual({ name: "kéy", count: 3, obj: { a: 1 } });
    expect(await redis.hget(`${P}hash`, "name")).toBe("kéy");
    expect(await redis.hgetall(`${P}no-hash`)).toBeNull();
    expect(await direct.send("HGET", [`${P}hash`, "count"])).toBe("3");
  });

  test("xadd/xrange: nested stream replies decode", async () => {
    const id1 = await redis.xadd(`${P}stream`, "*", { event: "click", user: "ünï" });
    const id2 = await redis.xadd(`${P}stream`, "*", { event: "view", n: 2 });
    expect(id1).toMatch(/^\d+-\d+$/);
    expect(id2).toMatch(/^\d+-\d+$/);
    expect(id1).not.toBe(id2);
    const range = await redis.xrange(`${P}stream`, "-", "+");
    expect(range).toEqual({ [id1]: { event: "click", user: "ünï" }, [id2]: { event: "view", n: 2 } });
    expect(Object.keys(range)).toEqual([id1, id2]);
    expect(await redis.xlen(`${P}stream`)).toBe(2);
  });

  test("expire/ttl and incr", async () => {
    await redis.set(`${P}ttl`, "v");
    expect(await redis.ttl(`${P}ttl`)).toBe(-1);
    expect(await redis.expire(`${P}ttl`, 100)).toBe(1);
    const ttl = await redis.ttl(`${P}ttl`);
    expect(ttl).toBeGreaterThan(90);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await redis.ttl(`${P}ttl-missing`)).toBe(-2);
    await redis.set(`${P}ex`, "v", { ex: 50 });
    expect(await direct.ttl(`${P}ex`)).toBeGreaterThan(40);

    expect(await redis.incr(`${P}ctr`)).toBe(1);
    expect(await redis.incr(`${P}ctr`)).toBe(2);
    expect(await redis.incrby(`${P}ctr`, 40)).toBe(42);
    const many = await Promise.all(Array.from({ length: 50 }, () => redis.incr(`${P}ctr2`)));
    expect(new Set(many).size).toBe(50);
    expect(await redis.get(`${P}ctr2`)).toBe(50);
  });

  test("a Redis error surfaces as an UpstashError, auto-pipelined or not", async () => {
    await redis.set(`${P}str`, "not a number");
    const err = await redis.incr(`${P}str`).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe("UpstashError");
    expect((err as Error).message).toMatch(/ERR value is not an integer/);

    // Without auto-pipelining the command goes to POST / and the front answers 400.
    const plain = new Redis({ url: front.url, token: front.token, enableTelemetry: false, enableAutoPipelining: false });
    const err2 = await plain.incr(`${P}str`).catch((e: Error) => e);
    expect((err2 as Error).name).toBe("UpstashError");
    expect((err2 as Error).message).toMatch(/ERR value is not an integer.*command was/);
    // Other commands in the same auto-pipeline still succeed.
    const [a, b, c] = await Promise.allSettled([redis.get(`${P}str`), redis.incr(`${P}str`), redis.strlen(`${P}str`)]);
    expect(a).toEqual({ status: "fulfilled", value: "not a number" });
    expect(b.status).toBe("rejected");
    expect(c).toEqual({ status: "fulfilled", value: 12 });
  });

  test("pipeline().exec() runs in order and reports per-command errors", async () => {
    const results = await redis
      .pipeline()
      .set(`${P}p1`, "one")
      .get(`${P}p1`)
      .incr(`${P}p2`)
      .hset(`${P}p3`, { a: "x" })
      .hgetall(`${P}p3`)
      .exec();
    expect(results).toEqual(["OK", "one", 1, 1, { a: "x" }]);

    const failing = redis.pipeline().set(`${P}p4`, "abc").incr(`${P}p4`).get(`${P}p4`);
    await expect(failing.exec()).rejects.toThrow(/Command 2 \[ incr \] failed: ERR value is not an integer/);
    // The commands around the failure still ran.
    expect(await direct.get(`${P}p4`)).toBe("abc");
    const kept = await redis.pipeline().incr(`${P}p4`).get(`${P}p4`).exec({ keepErrors: true });
    expect(kept[0]!.error).toMatch(/not an integer/);
    expect(kept[1]).toEqual({ error: undefined, result: "abc" });
  });

  test("multi().exec() is atomic MULTI/EXEC", async () => {
    const results = await redis
      .multi()
      .set(`${P}m1`, 10)
      .incrby(`${P}m1`, 5)
      .get(`${P}m1`)
      .rpush(`${P}m2`, "a", "b")
      .lrange(`${P}m2`, 0, -1)
      .exec();
    expect(results).toEqual(["OK", 15, 15, 2, ["a", "b"]]);

    // A runtime error inside EXEC fails only that command; the rest is applied.
    const tx = redis.multi().set(`${P}m3`, "x").incr(`${P}m3`).set(`${P}m4`, "y");
    await expect(tx.exec()).rejects.toThrow(/Command 2 \[ incr \] failed/);
    expect(await direct.get(`${P}m4`)).toBe("y");

    // A queueing error aborts the whole transaction: 400 and nothing applied.
    const abort = await post("/multi-exec", [["SET", `${P}m5`, "z"], ["NOSUCHCOMMAND"]]);
    expect(abort.status).toBe(400);
    expect(abort.body.error).toMatch(/EXECABORT/);
    expect(await direct.exists(`${P}m5`)).toBe(false);
  });

  test("multi-exec is isolated from concurrent writers", async () => {
    await direct.set(`${P}iso`, "0");
    const txs = Array.from({ length: 20 }, () => redis.multi().incr(`${P}iso`).get(`${P}iso`).exec());
    const results = (await Promise.all(txs)) as [number, number][];
    // In each transaction GET sees exactly the value its own INCR produced.
    for (const [incr, get] of results) expect(get).toBe(incr);
    expect(results.map((r) => r[0]).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  test("responseEncoding: false gets plain JSON strings and still round-trips", async () => {
    const plain = new Redis({ url: front.url, token: front.token, enableTelemetry: false, responseEncoding: false });
    await plain.set(`${P}plain`, "plain ünïcode ✓");
    expect(await plain.get(`${P}plain`)).toBe("plain ünïcode ✓");
    await plain.hset(`${P}plainh`, { k: "välue" });
    expect(await plain.hgetall(`${P}plainh`)).toEqual({ k: "välue" });
    expect(await plain.pipeline().set(`${P}plain2`, "a").get(`${P}plain2`).exec()).toEqual(["OK", "a"]);
    expect(await plain.multi().incr(`${P}plain3`).incr(`${P}plain3`).exec()).toEqual([1, 2]);
    expect(await redis.get(`${P}plain`)).toBe("plain ünïcode ✓");
  });
});

describe("Redis outage behind the front", () => {
  let server: RedisServer | undefined;
  let outageFront: UpstashFront | undefined;

  afterAll(async () => {
    await outageFront?.stop();
    await server?.stop();
  });

  test("500 while Redis is down, then recovers once it is back", async () => {
    server = await startRedisServer();
    outageFront = await startUpstashFront({ redisUrl: server.url });
    const client = new Redis({ url: outageFront.url, token: outageFront.token, enableTelemetry: false });

    expect(await client.set("k", "before")).toBe("OK");
    expect(await client.get("k")).toBe("before");

    server.proc.kill("SIGKILL");
    await server.proc.exited;

    const err = await client.get("k").catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe("UpstashError");
    expect((err as Error).message).toMatch(/Redis/);
    const raw = await fetch(outageFront.url + "/", {
      method: "POST",
      headers: { authorization: `Bearer ${outageFront.token}` },
      body: '["PING"]',
    });
    expect(raw.status).toBe(500);
    expect(((await raw.json()) as any).error).toMatch(/cannot reach Redis|closed/);
    expect(outageFront.proc.exitCode).toBeNull();

    // Same port again (a fresh, empty server): the front reconnects on the next request.
    server = await startRedisServer(server.port);
    expect(await client.get("k")).toBeNull();
    expect(await client.set("k", "after")).toBe("OK");
    expect(await client.get("k")).toBe("after");
    expect(await client.pipeline().incr("n").incr("n").exec()).toEqual([1, 2]);
    expect(await client.multi().incr("n").get("n").exec()).toEqual([3, 3]);
  });

  test("pooled connections that died with Redis are not reused after it comes back", async () => {
    // Several overlapping requests leave several idle connections in the pool.
    const slow = Array.from({ length: 5 }, (_, i) =>
      fetch(outageFront!.url + "/", {
        method: "POST",
        headers: { authorization: `Bearer ${outageFront!.token}` },
        body: JSON.stringify(["BLPOP", `empty${i}`, "0.2"]),
      }).then((r) => r.json()),
    );
    expect(await Promise.all(slow)).toEqual(Array.from({ length: 5 }, () => ({ result: null })));

    server!.proc.kill("SIGKILL");
    await server!.proc.exited;
    server = await startRedisServer(server!.port);

    // No request during the outage: every one after the restart must succeed.
    const client = new Redis({ url: outageFront!.url, token: outageFront!.token, enableTelemetry: false });
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        fetch(outageFront!.url + "/", {
          method: "POST",
          headers: { authorization: `Bearer ${outageFront!.token}` },
          body: JSON.stringify(["SET", `after${i}`, String(i)]),
        }).then((r) => r.status),
      ),
    );
    expect(results).toEqual([200, 200, 200, 200, 200]);
    expect(await client.get("after4")).toBe(4);
  });
});

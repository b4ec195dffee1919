import { afterAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { ConfigError } from "../../src/settings/config.ts";
import { SinkError } from "../../src/delivery/sink.ts";
import type { OutboxAlert, OutboxRecord } from "../../src/actor/outbox.ts";
import { alertIdempotencyKey } from "../../src/actor/detect.ts";
import { KafkaSink, requestRanges, type KafkaSinkOptions } from "../../src/sinks/kafka/sink.ts";
import { alertRecordView, eventRecordView, idempotencyKey } from "../../src/delivery/records.ts";
import { base64 } from "../../src/sinks/http.ts";
import { batchStatement } from "../../src/sinks/postgres/sink.ts";
import { RedisSink, tenantPrefix, windowFields } from "../../src/sinks/redis/sink.ts";
import { actorName } from "../../src/actor/tenant.ts";
import { createSinks } from "../../src/sinks/index.ts";
import { sinkSettings } from "../../src/settings/env.ts";
import { signature, standardSignature, WebhookSink } from "../../src/sinks/webhook/sink.ts";

const T0 = Date.UTC(2026, 10, 21, 10);
const event = (n: number, extra: Partial<OutboxRecord> = {}): OutboxRecord =>
  ({ kind: "event", n, key: "user-1", id: `e${n}`, type: "purchase", ts: T0 + n, value: n, receivedAt: T0, late: false, ...extra }) as OutboxRecord;
const windowRecord: OutboxRecord = {
  kind: "window", n: 9, key: "user-1", spec: "1m", start: T0, end: T0 + 60_000, revision: 1, final: true,
  all: { count: 2, valued: 2, sum: 3, min: 1, max: 2 }, types: { purchase: { count: 2, valued: 2, sum: 3, min: 1, max: 2 } },
};

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("sink settings", () => {
  test("no sink variables: no sinks", () => {
    expect(sinkSettings({})).toEqual({});
    expect(createSinks({}, { poolPerDelivery: false })).toEqual([]);
  });

  test("every sink from its variables, with defaults", () => {
    const s = sinkSettings({
      KEYFLOW_REDIS_URL: "http://127.0.0.1:8079",
      KEYFLOW_REDIS_TOKEN: "t",
      KEYFLOW_POSTGRES_URL: "postgres://postgres@127.0.0.1:5432/test",
      KEYFLOW_NEON_WSPROXY: "127.0.0.1:6543/v1",
      KEYFLOW_KAFKA_REST_URL: "http://127.0.0.1:8082/",
      KEYFLOW_WEBHOOK_URL: "https://hooks.example.com/keyflow",
      KEYFLOW_WEBHOOK_SECRET: "s3cret",
    });
    expect(s.redis).toEqual({ url: "http://127.0.0.1:8079", token: "t", prefix: "kf:", ttlSeconds: 604_800, streamMaxLen: 10_000, timeoutMs: 10_000 });
    expect(s.postgres).toEqual({ url: "postgres://postgres@127.0.0.1:5432/test", wsProxy: "127.0.0.1:6543/v1", wsProxyTls: false, timeoutMs: 10_000 });
    expect(s.kafka).toMatchObject({ dialect: "v2", url: "http://127.0.0.1:8082", topic: "keyflow.events", windowsTopic: "keyflow.windows", headers: true, timeoutMs: 10_000 });
    expect(s.webhook).toEqual({ url: "https://hooks.example.com/keyflow", secret: "s3cret", timeoutMs: 10_000 });
    expect(createSinks(s, { poolPerDelivery: false }).map((x) => x.name)).toEqual(["kafka", "redis", "postgres", "webhook"]);
  });

  test("Upstash's Redis variable names work too; Upstash Kafka (discontinued) is refused, naming the variable", () => {
    const s = sinkSettings({ UPSTASH_REDIS_REST_URL: "https://eu1.upstash.io", UPSTASH_REDIS_REST_TOKEN: "tok" });
    expect(s.redis?.token).toBe("tok");
    const byUrl = configError(() => sinkSettings({ UPSTASH_KAFKA_REST_URL: "https://kafka.upstash.io", UPSTASH_KAFKA_REST_USERNAME: "u", UPSTASH_KAFKA_REST_PASSWORD: "p" }));
    expect(byUrl).toContain("UPSTASH_KAFKA_REST_URL");
    expect(byUrl).toContain("Upstash Kafka was discontinued");
    const byDialect = configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "https://kafka.example", KEYFLOW_KAFKA_DIALECT: "upstash" }));
    expect(byDialect).toContain("KEYFLOW_KAFKA_DIALECT");
    expect(byDialect).toContain("KEYFLOW_KAFKA_BROKERS");
    expect(configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "https://kafka.example", KEYFLOW_KAFKA_DIALECT: "v9" }))).toContain('must be "v2" or "v3"');
  });

  test("a bad URL or a missing credential is one clear error naming every variable", () => {
    const message = configError(() =>
      sinkSettings({
        KEYFLOW_REDIS_URL: "not a url",
        KEYFLOW_POSTGRES_URL: "mysql://x@y/z",
        KEYFLOW_KAFKA_REST_URL: "http://127.0.0.1:8082",
        KEYFLOW_KAFKA_DIALECT: "v3",
        KEYFLOW_WEBHOOK_URL: "https://example.com/h",
        KEYFLOW_SINK_TIMEOUT: "soon",
      }),
    );
    expect(message).toContain('KEYFLOW_REDIS_URL="not a url"');
    expect(message).toContain("KEYFLOW_REDIS_TOKEN or UPSTASH_REDIS_REST_TOKEN is required");
    expect(message).toContain('KEYFLOW_POSTGRES_URL="mysql://x@y/z"');
    expect(message).toContain("KEYFLOW_KAFKA_CLUSTER_ID is required");
    expect(message).toContain("KEYFLOW_WEBHOOK_SECRET is required");
    expect(message).toContain('KEYFLOW_SINK_TIMEOUT="soon"');
    expect(configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", KEYFLOW_KAFKA_DIALECT: "v9" }))).toContain("KEYFLOW_KAFKA_DIALECT");
    expect(configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", KEYFLOW_KAFKA_TOPIC: "bad topic" }))).toContain("KEYFLOW_KAFKA_TOPIC");
    expect(configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", KEYFLOW_KAFKA_MAX_REQUEST_BYTES: "1mb" }))).toContain("KEYFLOW_KAFKA_MAX_REQUEST_BYTES");
    expect(configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", KEYFLOW_KAFKA_MAX_REQUEST_BYTES: "10" }))).toContain("at least 1024");
    expect(sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k" }).kafka?.maxRequestBytes).toBe(1_048_576);
    expect(sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", KEYFLOW_KAFKA_MAX_REQUEST_BYTES: "4096" }).kafka?.maxRequestBytes).toBe(4096);
  });
});

/** A local HTTP endpoint that records requests and answers with `reply`. */
function recorder() {
  const requests: Array<{ path: string; headers: Headers; body: string }> = [];
  let reply: (path: string, body: any) => Response = () => new Response("ok");
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const body = await req.text();
      const path = new URL(req.url).pathname;
      requests.push({ path, headers: req.headers, body });
      return reply(path, body ? JSON.parse(body) : undefined);
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    answer(fn: typeof reply) {
      reply = fn;
    },
    stop: () => server.stop(true),
  };
}

describe("webhook sink", () => {
  const hook = recorder();
  afterAll(() => hook.stop());

  test("POSTs the batch with Standard Webhooks headers, and the deprecated HMAC-SHA256 over timestamp and body", async () => {
    const sink = new WebhookSink({ url: `${hook.url}/in`, secret: "s3cret", timeoutMs: 2_000 });
    await sink.deliver([event(0), windowRecord]);
    const req = hook.requests.at(-1)!;
    const ts = req.headers.get("x-keyflow-timestamp")!;
    expect(req.headers.get("x-keyflow-signature")).toBe(`sha256=${await signature("s3cret", ts, req.body)}`);
    const id = req.headers.get("webhook-id")!;
    expect(id).toMatch(/^msg_[A-Za-z0-9_-]{43}$/);
    expect(req.headers.get("webhook-timestamp")).toBe(ts);
    expect(req.headers.get("webhook-signature")).toBe(await standardSignature("s3cret", id, ts, req.body));
    const body = JSON.parse(req.body);
    expect(body.records.map((r: any) => r.idempotency_key)).toEqual([idempotencyKey(event(0) as any), idempotencyKey(windowRecord as any)]);
    expect(body.records[0]).toMatchObject({ kind: "event", tenant: "default", event_id: "e0", event_type: "purchase", key: "user-1", value: 0 });
    expect(body.records[0]).toEqual({ idempotency_key: idempotencyKey(event(0) as any), ...eventRecordView(event(0) as any) });
  });

  test("the signature matches an independent HMAC-SHA256 (node:crypto)", async () => {
    const expected = createHmac("sha256", "key").update("1700000000.{\"records\":[]}").digest("hex");
    expect(await signature("key", "1700000000", '{"records":[]}')).toBe(expected);
    expect(await signature("other", "1700000000", '{"records":[]}')).not.toBe(expected);
    const v1 = createHmac("sha256", "key").update('msg_1.1700000000.{"records":[]}').digest("base64");
    expect(await standardSignature("key", "msg_1", 1700000000, '{"records":[]}')).toBe(`v1,${v1}`);
  });

  test("5xx and 429 are transient, 410 and other 4xx permanent, a dead endpoint transient", async () => {
    const sink = new WebhookSink({ url: `${hook.url}/in`, secret: "s", timeoutMs: 2_000 });
    for (const [status, permanent] of [[503, false], [502, false], [504, false], [429, false], [408, false], [400, true], [401, true], [410, true], [422, true]] as const) {
      hook.answer(() => new Response("no", { status }));
      const error = await sink.deliver([event(1)]).catch((e) => e);
      expect(error).toBeInstanceOf(SinkError);
      expect(error.permanent).toBe(permanent);
      expect(error.status).toBe(status);
    }
    hook.answer(() => new Response("ok"));
    const dead = new WebhookSink({ url: "http://127.0.0.1:1/nothing", secret: "s", timeoutMs: 1_000 });
    const error = await dead.deliver([event(1)]).catch((e) => e);
    expect(error).toBeInstanceOf(SinkError);
    expect(error.permanent).toBe(false);
  });
});

describe("kafka sink request shapes (dialects without a local server)", () => {
  const proxy = recorder();
  afterAll(() => proxy.stop());
  const opts = (o: Partial<KafkaSinkOptions>): KafkaSinkOptions => ({
    dialect: "v2", url: proxy.url, topic: "keyflow.events", windowsTopic: "keyflow.windows", headers: true, timeoutMs: 2_000, ...o,
  });

  test("v2: one request per topic per batch, records in order, key = the client's key, event_id header in base64", async () => {
    proxy.answer((_p, body) => Response.json({ offsets: body.records.map((_: unknown, i: number) => ({ partition: 0, offset: i })) }));
    await new KafkaSink(opts({ topic: "events.{type}" })).deliver([
      event(0), event(1, { type: "refund" } as any), windowRecord, event(2), event(3, { type: "refund" } as any), event(4),
    ]);
    const reqs = proxy.requests.splice(0).sort((a, b) => a.path.localeCompare(b.path));
    expect(reqs.map((r) => r.path)).toEqual(["/topics/events.purchase", "/topics/events.refund", "/topics/keyflow.windows"]);
    const ids = (r: (typeof reqs)[number]) => JSON.parse(r.body).records.map((x: any) => JSON.parse(atob(x.value)).event_id ?? "window");
    expect(reqs.map(ids)).toEqual([["e0", "e2", "e4"], ["e1", "e3"], ["window"]]);
    expect(reqs[0]!.headers.get("content-type")).toBe("application/vnd.kafka.binary.v2+json");
    const first = JSON.parse(reqs[0]!.body).records[0];
    expect(atob(first.key)).toBe("user-1");
    expect(first.headers[0]).toEqual({ key: "event_id", value: btoa("e0") });
    expect(JSON.parse(atob(first.value))).toMatchObject({ event_id: "e0", kind: "event" });
  });

  test("v2: a failure in one topic's request names the earliest record not known to be in Kafka", async () => {
    const sink = new KafkaSink(opts({ topic: "events.{type}" }));
    const batch = [event(0), event(1, { type: "refund" } as any), event(2), event(3, { type: "refund" } as any), event(4)];
    // purchase (batch records 0, 2, 4) fails at its second record; refund lands.
    proxy.answer((path, body) =>
      Response.json({
        offsets: body.records.map((_: unknown, i: number) => (path.endsWith("purchase") && i === 1 ? { error_code: 50_001, message: "broker down" } : { partition: 0, offset: i })),
      }),
    );
    const error = await sink.deliver(batch).catch((e) => e);
    expect(error).toBeInstanceOf(SinkError);
    expect([error.index, error.permanent]).toEqual([2, false]);
    // refund (batch records 1, 3) refused as a whole with a 503: everything from record 1 is sent again.
    proxy.answer((path, body) =>
      path.endsWith("refund") ? new Response("busy", { status: 503 }) : Response.json({ offsets: body.records.map(() => ({ partition: 0, offset: 0 })) }),
    );
    const busy = await sink.deliver(batch).catch((e) => e);
    expect([busy.index, busy.permanent]).toEqual([1, false]);
    // A 4xx for a whole request names no record: the channel halves the batch to find the poison one.
    proxy.answer((path, body) =>
      path.endsWith("refund") ? new Response("bad", { status: 422 }) : Response.json({ offsets: body.records.map(() => ({ partition: 0, offset: 0 })) }),
    );
    const refused = await sink.deliver(batch).catch((e) => e);
    expect([refused.index, refused.permanent]).toEqual([undefined, true]);
    proxy.requests.splice(0);
  });

  test("v2: a per-record error names the record; records before it were delivered", async () => {
    proxy.answer(() => Response.json({ offsets: [{ partition: 0, offset: 1 }, { error_code: 40_001, message: "bad record" }] }));
    const error = await new KafkaSink(opts({})).deliver([event(0), event(1), event(2)]).catch((e) => e);
    expect(error).toBeInstanceOf(SinkError);
    expect(error.index).toBe(1);
    expect(error.permanent).toBe(true);
    proxy.answer(() => new Response("busy", { status: 503 }));
    const busy = await new KafkaSink(opts({})).deliver([event(0)]).catch((e) => e);
    expect(busy.permanent).toBe(false);
    proxy.requests.splice(0);
  });

  test("requestRanges: consecutive ranges under the byte limit; an item over it goes alone", () => {
    expect(requestRanges([], 100)).toEqual([]);
    expect(requestRanges([10, 10, 10], 100)).toEqual([[0, 3]]);
    expect(requestRanges([40, 40, 40, 40], 100)).toEqual([[0, 2], [2, 4]]);
    expect(requestRanges([40, 500, 40], 100)).toEqual([[0, 1], [1, 2], [2, 3]]);
    expect(requestRanges([49, 49, 1], 100, 1)).toEqual([[0, 2], [2, 3]]);
  });

  test("v2: a topic's records over maxRequestBytes go in several requests in order; a failure in a later one keeps the earlier ones delivered", async () => {
    proxy.answer((_p, body) => Response.json({ offsets: body.records.map((_: unknown, i: number) => ({ partition: 0, offset: i })) }));
    const sink = new KafkaSink(opts({ maxRequestBytes: 1_500 }));
    const batch = Array.from({ length: 12 }, (_, n) => event(n));
    await sink.deliver(batch);
    const reqs = proxy.requests.splice(0);
    expect(reqs.length).toBeGreaterThan(2);
    for (const r of reqs) expect(new TextEncoder().encode(r.body).length).toBeLessThanOrEqual(1_500);
    const ids = reqs.flatMap((r) => JSON.parse(r.body).records.map((x: any) => JSON.parse(atob(x.value)).event_id));
    expect(ids).toEqual(batch.map((r) => (r as { id: string }).id));

    // The second request fails as a whole: the records of the first are delivered, the rest is sent again.
    const perRequest = JSON.parse(reqs[0]!.body).records.length;
    let call = 0;
    proxy.answer((_p, body) => (call++ === 1 ? new Response("bad gateway", { status: 502 }) : Response.json({ offsets: body.records.map(() => ({ partition: 0, offset: 0 })) })));
    const busy = await sink.deliver(batch).catch((e) => e);
    expect([busy.index, busy.permanent, busy.tooLarge]).toEqual([perRequest, false, false]);
    // ... also when it is refused for good: reported transient at its first record, and halved when sent again first.
    call = 0;
    proxy.answer((_p, body) => (call++ === 1 ? new Response("bad", { status: 422 }) : Response.json({ offsets: body.records.map(() => ({ partition: 0, offset: 0 })) })));
    const refused = await sink.deliver(batch).catch((e) => e);
    expect([refused.index, refused.permanent]).toEqual([perRequest, false]);
    // A record the proxy finds too large in the second request: too large, at its place in the batch.
    call = 0;
    const tooLarge = { error_code: 500, message: "The request included a message larger than the max message size the server will accept." };
    proxy.answer((_p, body) => {
      const n = call++;
      return Response.json({ offsets: body.records.map((_: unknown, i: number) => (n === 1 && i === 1 ? tooLarge : { partition: 0, offset: i })) });
    });
    const large = await sink.deliver(batch).catch((e) => e);
    expect([large.index, large.tooLarge]).toEqual([perRequest + 1, true]);
    // HTTP 413 for a whole request is too large too.
    proxy.answer(() => new Response("Request Entity Too Large", { status: 413 }));
    const whole = await sink.deliver([event(0), event(1)]).catch((e) => e);
    expect([whole.index, whole.tooLarge]).toEqual([0, true]);
    proxy.requests.splice(0);
  });

  test("v3: records:batch with typed key/value, Basic auth, and 207 partial failures", async () => {
    proxy.answer((_p, body) => Response.json({ successes: [{ id: "0" }], failures: [{ id: "1", error_code: 400, message: "too big" }] }, { status: 207 }));
    const sink = new KafkaSink(opts({ dialect: "v3", clusterId: "lkc-1", username: "key", password: "secret" }));
    const error = await sink.deliver([event(0), event(1)]).catch((e) => e);
    const req = proxy.requests.splice(0)[0]!;
    expect(req.path).toBe("/v3/clusters/lkc-1/topics/keyflow.events/records:batch");
    expect(req.headers.get("authorization")).toBe(`Basic ${btoa("key:secret")}`);
    const entry = JSON.parse(req.body).entries[0];
    expect(entry).toMatchObject({ id: "0", key: { type: "STRING", data: "user-1" }, value: { type: "JSON" } });
    expect(entry.headers[0]).toEqual({ name: "event_id", value: btoa("e0") });
    expect(error.index).toBe(1);
    expect(error.permanent).toBe(true);
  });
});

describe("redis sink request shape (a stand-in Upstash REST endpoint)", () => {
  const upstash = recorder();
  afterAll(() => upstash.stop());
  const sink = (timeoutMs = 2_000) =>
    new RedisSink({ url: upstash.url, token: "tok", prefix: "kf:", ttlSeconds: 60, streamMaxLen: 100, timeoutMs });
  const answer = (fn: (command: string[], i: number) => { result?: unknown; error?: string }) =>
    upstash.answer((_path, body) => Response.json((body as string[][]).map((c, i) => fn(c, i))));

  test("one pipeline per batch: an XADD per event (outbox position as id), then one EXPIRE per stream", async () => {
    answer((c) => ({ result: c[0]!.toUpperCase() === "XADD" ? "1-0" : 1 }));
    const other = (n: number) => event(n, { key: "user-2" } as any);
    await sink().deliver([event(0), other(0), event(1), windowRecord, other(1), event(2)]);
    const [req] = upstash.requests.splice(0);
    expect(req!.path).toBe("/pipeline");
    expect(req!.headers.get("authorization")).toBe("Bearer tok");
    const commands = JSON.parse(req!.body) as Array<Array<string | number>>;
    expect(commands.map((c) => [String(c[0]).toUpperCase(), c[1]])).toEqual([
      ["XADD", "kf:events:user-1"], ["XADD", "kf:events:user-2"], ["XADD", "kf:events:user-1"], ["EVAL", expect.any(String)],
      ["XADD", "kf:events:user-2"], ["XADD", "kf:events:user-1"], ["EXPIRE", "kf:events:user-1"], ["EXPIRE", "kf:events:user-2"],
    ]);
    expect(commands[0]).toEqual([
      "XADD", "kf:events:user-1", "MAXLEN", "~", 100, "1-0", "tenant", "default", "event_id", "e0", "event_type", "purchase", "timestamp", String(T0),
      "late", "0", "data", JSON.stringify({ value: 0, properties: null, received_at: T0 }), "value", "0",
    ]);
    expect(commands[6]!.slice(1)).toEqual(["kf:events:user-1", 60]);
  });

  test("errors: an entry already there is delivered; the earliest failing record is named; a failed EXPIRE resends its stream", async () => {
    const batch = [event(0), event(1, { key: "user-2" } as any), event(2), event(3, { key: "user-2" } as any)];
    answer((c, i) => (i === 0 ? { error: "ERR The ID specified in XADD is equal or smaller than the target stream top item" } : { result: 1 }));
    await sink().deliver(batch);
    answer((c, i) => (i === 2 ? { error: "WRONGTYPE Operation against a key holding the wrong kind of value" } : { result: 1 }));
    const refused = await sink().deliver(batch).catch((e) => e);
    expect([refused.index, refused.permanent]).toEqual([2, true]);
    answer((c, i) => (i === 2 ? { error: "LOADING Redis is loading the dataset in memory" } : { result: 1 }));
    const loading = await sink().deliver(batch).catch((e) => e);
    expect([loading.index, loading.permanent]).toEqual([2, false]);
    // EXPIRE of user-2's stream (first record: 1) fails: transient, from record 1 on.
    answer((c) => (c[0]!.toUpperCase() === "EXPIRE" && c[1] === "kf:events:user-2" ? { error: "ERR something" } : { result: 1 }));
    const expire = await sink().deliver(batch).catch((e) => e);
    expect([expire.index, expire.permanent]).toEqual([1, false]);
    // The request as a whole: a front that fails is transient; one too large for Upstash is refused, so the channel halves the batch.
    upstash.answer(() => Response.json({ error: "ERR connection refused" }, { status: 500 }));
    const down = await sink().deliver(batch).catch((e) => e);
    expect([down.index, down.permanent, down.message]).toEqual([undefined, false, "redis: ERR connection refused"]);
    upstash.answer(() => Response.json({ error: "ERR max request size exceeded" }, { status: 400 }));
    const large = await sink().deliver(batch).catch((e) => e);
    expect([large.index, large.permanent, large.message]).toEqual([undefined, true, "redis: ERR max request size exceeded"]);
    upstash.requests.splice(0);
  });

  test("a request that does not answer in time fails transiently", async () => {
    upstash.answer(() => new Promise<Response>(() => undefined) as unknown as Response);
    const started = performance.now();
    const error = await sink(200).deliver([event(0)]).catch((e) => e);
    expect(error).toBeInstanceOf(SinkError);
    expect(error.permanent).toBe(false);
    expect(performance.now() - started).toBeLessThan(2_000);
    upstash.answer(() => new Response("ok"));
    upstash.requests.splice(0);
  });
});

describe("postgres batch statement", () => {
  test("one statement per batch; events from one JSON array of record views, keyed by (tenant, actor_key, event_id)", () => {
    const events = [event(0), event(1, { key: "user-2", properties: { a: 1 } } as any)] as any[];
    const st = batchStatement(events, [], [])!;
    expect(st.values).toEqual([JSON.stringify(events.map(eventRecordView))]);
    expect(st.text.match(/ON CONFLICT \(tenant, actor_key, event_id\) DO NOTHING/g)).toHaveLength(2);
    expect(st.text).not.toContain("window_aggregates");
    const all = batchStatement(events, [windowRecord as any], [
      { kind: "dead_letter", n: 10, key: "user-1", sink: "kafka", record: events[0], error: "refused", failedAt: T0 },
    ])!;
    expect(all.values).toHaveLength(3);
    expect(all.text).toContain("$2::jsonb");
    expect(all.text).toContain("$3::jsonb");
    expect(all.text).toContain("WHERE window_aggregates.revision < EXCLUDED.revision");
    expect(batchStatement([], [], [])).toBeUndefined();
  });
});

test("base64 of UTF-8 text matches Buffer's", () => {
  for (const text of ["", "user-1", "é€😀", "x".repeat(70_000) + "ü"]) expect(base64(text)).toBe(Buffer.from(text).toString("base64"));
});

describe("tenants in sinks", () => {
  const ACME = "acme";
  /** The same client key and event id in two tenants: two actors, whose records must never meet in a sink. */
  const tenantEvent = (tenant: string, n = 0, extra: Partial<OutboxRecord> = {}) => event(n, { key: actorName(tenant, "user-1"), ...extra } as any);
  const tenantWindow = (tenant: string): OutboxRecord => ({ ...windowRecord, key: actorName(tenant, "user-1") }) as OutboxRecord;
  /** Neither the separator of an actor name nor its JSON escape. */
  const expectNoSeparator = (text: string) => {
    expect(text.includes("\x1f")).toBe(false);
    expect(text.toLowerCase().includes("\\u001f")).toBe(false);
  };

  test("settings: KEYFLOW_KAFKA_TOPIC takes {type} and {tenant}, KEYFLOW_KAFKA_WINDOWS_TOPIC {tenant}; each name they make must be a topic name", () => {
    const kafka = (vars: Record<string, string>) => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", ...vars }).kafka;
    expect(kafka({ KEYFLOW_KAFKA_TOPIC: "kf.{tenant}.events.{type}", KEYFLOW_KAFKA_WINDOWS_TOPIC: "kf.{tenant}.windows" })).toMatchObject({
      topic: "kf.{tenant}.events.{type}",
      windowsTopic: "kf.{tenant}.windows",
    });
    expect(kafka({ KEYFLOW_KAFKA_TOPIC: "{tenant}", KEYFLOW_KAFKA_WINDOWS_TOPIC: "{tenant}-w" })).toMatchObject({ topic: "{tenant}", windowsTopic: "{tenant}-w" });
    // 186 + 63 (the longest tenant) = 249: the longest topic name Kafka takes.
    expect(kafka({ KEYFLOW_KAFKA_WINDOWS_TOPIC: `${"w".repeat(186)}{tenant}` })?.windowsTopic).toBe(`${"w".repeat(186)}{tenant}`);
    const problem = (vars: Record<string, string>) => configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", ...vars }));
    // Windows have no type.
    expect(problem({ KEYFLOW_KAFKA_WINDOWS_TOPIC: "w.{type}" })).toContain('KEYFLOW_KAFKA_WINDOWS_TOPIC="w.{type}": a Kafka topic name uses [a-zA-Z0-9._-] (and {tenant})');
    expect(problem({ KEYFLOW_KAFKA_TOPIC: "e.{tenants}" })).toContain('KEYFLOW_KAFKA_TOPIC="e.{tenants}": a Kafka topic name uses [a-zA-Z0-9._-] (and {type}, {tenant})');
    expect(problem({ KEYFLOW_KAFKA_TOPIC: "e.{key}" })).toContain("KEYFLOW_KAFKA_TOPIC");
    expect(problem({ KEYFLOW_KAFKA_TOPIC: "e:{tenant}" })).toContain("KEYFLOW_KAFKA_TOPIC");
    // Too long once the longest tenant (63) or type (64) is in place.
    expect(problem({ KEYFLOW_KAFKA_WINDOWS_TOPIC: `${"w".repeat(187)}{tenant}` })).toContain("at most 249 characters (counting {tenant} as 63");
    // 122 + 64 (the longest type) + 63 = 249.
    expect(kafka({ KEYFLOW_KAFKA_TOPIC: `${"e".repeat(122)}{type}{tenant}` })?.topic).toBe(`${"e".repeat(122)}{type}{tenant}`);
    expect(problem({ KEYFLOW_KAFKA_TOPIC: `${"e".repeat(123)}{type}{tenant}` })).toContain("at most 249 characters (counting {type} as 64 and {tenant} as 63");
    expect(problem({ KEYFLOW_KAFKA_TOPIC: "x".repeat(250) })).toContain("at most 249 characters");
  });

  test("settings: KEYFLOW_REDIS_PREFIX may hold {tenant}", () => {
    const s = sinkSettings({ KEYFLOW_REDIS_URL: "http://127.0.0.1:8079", KEYFLOW_REDIS_TOKEN: "t", KEYFLOW_REDIS_PREFIX: "kf:{tenant}:" });
    expect(s.redis?.prefix).toBe("kf:{tenant}:");
  });

  test("idempotency keys: unique across tenants, keys, ids and windows, whatever the key holds", () => {
    expect(idempotencyKey(event(0) as any)).toBe(JSON.stringify(["default", "user-1", "e0"]));
    expect(idempotencyKey(tenantEvent(ACME) as any)).toBe(JSON.stringify([ACME, "user-1", "e0"]));
    expect(idempotencyKey(tenantWindow(ACME) as any)).toBe(JSON.stringify([ACME, "user-1", "1m", T0, 1]));
    const records = [
      event(0), tenantEvent(ACME), tenantEvent("acme-2"), event(0, { key: "user-2" } as any),
      // Keys and ids that would meet if the parts were joined with '|' (a|b + c vs a + b|c).
      event(0, { key: "a|b", id: "c" } as any), event(0, { key: "a", id: "b|c" } as any), event(0, { key: 'a"', id: "b" } as any),
      event(0, { key: "a", id: '"b' } as any),
      windowRecord, tenantWindow(ACME), { ...windowRecord, revision: 2 }, { ...windowRecord, spec: "1h" }, { ...windowRecord, start: T0 + 60_000 },
      { ...windowRecord, key: "user-1|1m" },
    ];
    const keys = records.map((r) => idempotencyKey(r as any));
    expect(new Set(keys).size).toBe(records.length);
    for (const key of keys) expectNoSeparator(key);
  });

  const proxy = recorder();
  afterAll(() => proxy.stop());
  const kafkaOpts = (o: Partial<KafkaSinkOptions>): KafkaSinkOptions => ({
    dialect: "v2", url: proxy.url, topic: "ev.{tenant}.{type}", windowsTopic: "win.{tenant}", headers: true, timeoutMs: 2_000, ...o,
  });
  const batch = () => [event(0), tenantEvent(ACME), windowRecord, tenantWindow(ACME), tenantEvent(ACME, 1, { type: "refund" } as any)];

  test("kafka v2: the client's key as message key, a tenant header on every record, {tenant} topics", async () => {
    proxy.answer((_p, body) => Response.json({ offsets: body.records.map((_: unknown, i: number) => ({ partition: 0, offset: i })) }));
    await new KafkaSink(kafkaOpts({})).deliver(batch());
    const reqs = proxy.requests.splice(0).sort((a, b) => a.path.localeCompare(b.path));
    expect(reqs.map((r) => r.path)).toEqual(["/topics/ev.acme.purchase", "/topics/ev.acme.refund", "/topics/ev.default.purchase", "/topics/win.acme", "/topics/win.default"]);
    const decoded = reqs.flatMap((r) =>
      JSON.parse(r.body).records.map((x: any) => ({
        key: atob(x.key),
        value: new TextDecoder().decode(Uint8Array.from(atob(x.value), (c) => c.charCodeAt(0))),
        headers: Object.fromEntries(x.headers.map((h: any) => [h.key, atob(h.value)])),
      })),
    );
    expect(decoded.map((d: any) => [d.key, d.headers.tenant, JSON.parse(d.value).tenant, JSON.parse(d.value).key])).toEqual([
      ["user-1", ACME, ACME, "user-1"], ["user-1", ACME, ACME, "user-1"], ["user-1", "default", "default", "user-1"],
      ["user-1", ACME, ACME, "user-1"], ["user-1", "default", "default", "user-1"],
    ]);
    expect(decoded[0].headers).toEqual({ event_id: "e0", event_type: "purchase", tenant: ACME });
    expect(decoded[3].headers).toEqual({ window: `1m:${T0}:1`, tenant: ACME });
    for (const d of decoded) expectNoSeparator(JSON.stringify(d));
    // Without templates, every tenant's records share the topics as before.
    await new KafkaSink(kafkaOpts({ topic: "keyflow.events", windowsTopic: "keyflow.windows" })).deliver(batch());
    expect(proxy.requests.splice(0).map((r) => r.path).sort()).toEqual(["/topics/keyflow.events", "/topics/keyflow.windows"]);
  });

  test("kafka v3 and upstash: the same key, tenant header and topics", async () => {
    proxy.answer((_p, body) => Response.json({ successes: body.entries.map((e: any) => ({ id: e.id })), failures: [] }));
    await new KafkaSink(kafkaOpts({ dialect: "v3", clusterId: "lkc-1" })).deliver(batch());
    const v3 = proxy.requests.splice(0).sort((a, b) => a.path.localeCompare(b.path));
    expect(v3.map((r) => r.path.split("/")[5])).toEqual(["ev.acme.purchase", "ev.acme.refund", "ev.default.purchase", "win.acme", "win.default"]);
    const entries = v3.flatMap((r) => JSON.parse(r.body).entries);
    expect(entries.map((e: any) => [e.key.data, atob(e.headers.find((h: any) => h.name === "tenant").value), e.value.data.tenant, e.value.data.key])).toEqual([
      ["user-1", ACME, ACME, "user-1"], ["user-1", ACME, ACME, "user-1"], ["user-1", "default", "default", "user-1"],
      ["user-1", ACME, ACME, "user-1"], ["user-1", "default", "default", "user-1"],
    ]);
    for (const r of v3) expectNoSeparator(r.body);

  });

  test("redis: a default tenant's keys as before, another's under t:<tenant>:, or where {tenant} says", () => {
    expect(tenantPrefix("kf:", "default")).toBe("kf:");
    expect(tenantPrefix("kf:", ACME)).toBe("kf:t:acme:");
    expect(tenantPrefix("kf:{tenant}:", "default")).toBe("kf:default:");
    expect(tenantPrefix("kf:{tenant}:", ACME)).toBe("kf:acme:");
    expect(RedisSink.streamKey("kf:", "default", "alice")).toBe("kf:events:alice");
    expect(RedisSink.streamKey("kf:", ACME, "alice")).toBe("kf:t:acme:events:alice");
    expect(RedisSink.windowKey("kf:", "default", "alice", "1m", T0)).toBe(`kf:window:alice:1m:${T0}`);
    expect(RedisSink.windowKey("kf:", ACME, "alice", "1m", T0)).toBe(`kf:t:acme:window:alice:1m:${T0}`);
    expect(RedisSink.streamKey("{tenant}/", ACME, "alice")).toBe("acme/events:alice");
    // A default tenant's key named like another tenant's prefix ("t:acme:…") stays apart from it.
    expect(RedisSink.streamKey("kf:", "default", "t")).not.toBe(RedisSink.streamKey("kf:", ACME, ""));
    expect(windowFields(tenantWindow(ACME) as any).slice(0, 4)).toEqual(["tenant", ACME, "key", "user-1"]);
    expect(windowFields(windowRecord as any).slice(0, 4)).toEqual(["tenant", "default", "key", "user-1"]);
  });

  const upstash = recorder();
  afterAll(() => upstash.stop());

  test("redis: the same key in two tenants is two streams and two window hashes, each entry with its tenant", async () => {
    upstash.answer((_path, body) => Response.json((body as string[][]).map((c) => ({ result: c[0]!.toUpperCase() === "XADD" ? "1-0" : 1 }))));
    for (const prefix of ["kf:", "kf:{tenant}:"]) {
      await new RedisSink({ url: upstash.url, token: "tok", prefix, ttlSeconds: 60, streamMaxLen: 100 }).deliver(batch());
      const [req] = upstash.requests.splice(0);
      expectNoSeparator(req!.body);
      const commands = JSON.parse(req!.body) as Array<Array<string | number>>;
      const keyOf = (c: Array<string | number>) => String(c[0]).toUpperCase() === "EVAL" ? String(c[3]) : String(c[1]);
      const [d, a] = prefix === "kf:" ? ["kf:", "kf:t:acme:"] : ["kf:default:", "kf:acme:"];
      expect(commands.map((c) => [String(c[0]).toUpperCase(), keyOf(c)])).toEqual([
        ["XADD", `${d}events:user-1`], ["XADD", `${a}events:user-1`], ["EVAL", `${d}window:user-1:1m:${T0}`],
        ["EVAL", `${a}window:user-1:1m:${T0}`], ["XADD", `${a}events:user-1`], ["EXPIRE", `${d}events:user-1`], ["EXPIRE", `${a}events:user-1`],
      ]);
      const field = (c: Array<string | number>, name: string) => c[c.indexOf(name) + 1];
      expect(commands.filter((c) => String(c[0]).toUpperCase() === "XADD").map((c) => [field(c, "tenant"), field(c, "event_id")])).toEqual([
        ["default", "e0"], [ACME, "e0"], [ACME, "e1"],
      ]);
    }
  });

  test("postgres: every table's rows carry the tenant and the client's key; conflicts are per tenant", () => {
    const events = [event(0), tenantEvent(ACME)] as any[];
    const dead = [
      { kind: "dead_letter", n: 10, key: actorName(ACME, "user-1"), sink: "kafka", record: events[1], error: "refused", failedAt: T0 },
    ] as any[];
    const st = batchStatement(events, [windowRecord, tenantWindow(ACME)] as any[], dead)!;
    expect(st.text).toContain("ON CONFLICT (tenant, actor_key, event_id) DO NOTHING");
    expect(st.text).toContain("ON CONFLICT (tenant, actor_key, event_type, size, window_start) DO UPDATE");
    expect(st.text).toContain("ON CONFLICT (tenant, actor_key, sink, outbox_index) DO NOTHING");
    for (const value of st.values) expectNoSeparator(value);
    const [rawEvents, windows, failed] = st.values.map((v) => JSON.parse(v));
    expect(rawEvents.map((e: any) => [e.tenant, e.key, e.event_id])).toEqual([["default", "user-1", "e0"], [ACME, "user-1", "e0"]]);
    expect(windows.map((w: any) => [w.tenant, w.actor_key, w.event_type])).toEqual([
      ["default", "user-1", "*"], ["default", "user-1", "purchase"], [ACME, "user-1", "*"], [ACME, "user-1", "purchase"],
    ]);
    expect(failed.map((f: any) => [f.tenant, f.actor_key, f.record.tenant, f.record.key])).toEqual([[ACME, "user-1", ACME, "user-1"]]);
  });
});

describe("alerts in sinks", () => {
  const ACME = "acme";
  const alert = (tenant = "default", extra: Partial<OutboxAlert> = {}): OutboxAlert => ({
    kind: "alert", n: 5, key: actorName(tenant, "user-1"), rule: "burst", window: { shape: "1m", start: T0, end: T0 + 60_000 },
    aggregate: "count", value: 4, eventId: "e3", firedAt: T0 + 5_000, ...extra,
  });
  const zscore = alert(ACME, { n: 6, rule: "odd", aggregate: "sum", value: 90, baseline: { mean: 10, stddev: 2, windows: 24 }, eventId: "" });

  test("idempotency key: tenant, key, rule, shape and start; unique across tenants, keys, rules and windows, and apart from events and windows", () => {
    expect(idempotencyKey(alert())).toBe(JSON.stringify(["default", "user-1", "burst", "1m", T0]));
    expect(idempotencyKey(alert())).toBe(alertIdempotencyKey(alert()));
    // Another firing of the same rule and window (a replay under a new n, a later trigger) is the same alert.
    expect(idempotencyKey(alert("default", { n: 40, eventId: "e9", firedAt: T0 + 9 }))).toBe(idempotencyKey(alert()));
    const records = [
      alert(), alert(ACME), alert("default", { key: "user-2" }), alert("default", { rule: "other" }),
      alert("default", { window: { shape: "1h", start: T0, end: T0 + 3_600_000 } }), alert("default", { window: { shape: "1m", start: T0 + 60_000, end: T0 + 120_000 } }),
      alert("default", { key: "a|b", rule: "c" }), alert("default", { key: "a", rule: "b|c" }), alert("default", { key: 'a"', rule: "b" }),
      // A window named like the alert's parts: [tenant, key, "burst", "1m", start] never meets [tenant, key, "1m", start, revision].
      { ...windowRecord, spec: "burst" }, windowRecord, event(0, { id: "burst" } as any),
    ];
    expect(new Set(records.map((r) => idempotencyKey(r as any))).size).toBe(records.length);
  });

  test("settings: KEYFLOW_KAFKA_ALERTS_TOPIC, keyflow.alerts by default, takes {tenant} (not {type})", () => {
    const kafka = (vars: Record<string, string>) => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", ...vars }).kafka;
    expect(kafka({})?.alertsTopic).toBe("keyflow.alerts");
    expect(kafka({ KEYFLOW_KAFKA_ALERTS_TOPIC: "kf.{tenant}.alerts" })?.alertsTopic).toBe("kf.{tenant}.alerts");
    const problem = configError(() => sinkSettings({ KEYFLOW_KAFKA_REST_URL: "http://k", KEYFLOW_KAFKA_ALERTS_TOPIC: "a.{type}" }));
    expect(problem).toContain('KEYFLOW_KAFKA_ALERTS_TOPIC="a.{type}": a Kafka topic name uses [a-zA-Z0-9._-] (and {tenant})');
  });

  const proxy = recorder();
  afterAll(() => proxy.stop());
  const kafkaOpts = (o: Partial<KafkaSinkOptions>): KafkaSinkOptions => ({
    dialect: "v2", url: proxy.url, topic: "keyflow.events", windowsTopic: "keyflow.windows", headers: true, timeoutMs: 2_000, ...o,
  });

  test("kafka v2: the alerts topic ({tenant} in it), the client's key as message key, rule/window/event_id/tenant headers, the alert view as value", async () => {
    proxy.answer((_p, body) => Response.json({ offsets: body.records.map((_: unknown, i: number) => ({ partition: 0, offset: i })) }));
    await new KafkaSink(kafkaOpts({})).deliver([event(0), alert(), zscore]);
    expect(proxy.requests.splice(0).map((r) => r.path).sort()).toEqual(["/topics/keyflow.alerts", "/topics/keyflow.events"]);
    await new KafkaSink(kafkaOpts({ alertsTopic: "al.{tenant}" })).deliver([alert(), zscore]);
    const reqs = proxy.requests.splice(0).sort((a, b) => a.path.localeCompare(b.path));
    expect(reqs.map((r) => r.path)).toEqual(["/topics/al.acme", "/topics/al.default"]);
    const decoded = reqs.flatMap((r) =>
      JSON.parse(r.body).records.map((x: any) => ({
        key: atob(x.key),
        value: JSON.parse(atob(x.value)),
        headers: Object.fromEntries(x.headers.map((h: any) => [h.key, atob(h.value)])),
      })),
    );
    expect(decoded[1]).toEqual({ key: "user-1", value: alertRecordView(alert()), headers: { rule: "burst", window: `1m:${T0}`, event_id: "e3", tenant: "default" } });
    expect(decoded[0]).toEqual({ key: "user-1", value: alertRecordView(zscore), headers: { rule: "odd", window: `1m:${T0}`, tenant: ACME } });
    expect(decoded[0].value).toMatchObject({ tenant: ACME, key: "user-1", event_id: null, baseline: { mean: 10, stddev: 2, windows: 24 } });
  });

  test("kafka v3: the same topic, key and headers", async () => {
    proxy.answer((_p, body) => Response.json({ successes: body.entries.map((e: any) => ({ id: e.id })), failures: [] }));
    await new KafkaSink(kafkaOpts({ dialect: "v3", clusterId: "lkc-1", alertsTopic: "al.{tenant}" })).deliver([alert()]);
    const [v3] = proxy.requests.splice(0);
    expect(v3!.path).toBe("/v3/clusters/lkc-1/topics/al.default/records:batch");
    const entry = JSON.parse(v3!.body).entries[0];
    expect(entry).toMatchObject({ key: { type: "STRING", data: "user-1" }, value: { type: "JSON", data: alertRecordView(alert()) } });
    expect(entry.headers.map((h: any) => [h.name, atob(h.value)])).toEqual([["rule", "burst"], ["window", `1m:${T0}`], ["event_id", "e3"], ["tenant", "default"]]);
  });

  const upstash = recorder();
  afterAll(() => upstash.stop());

  test("redis: each key's alerts stream (per tenant as its events), the outbox position as entry id, then EXPIRE", async () => {
    expect(RedisSink.alertStreamKey("kf:", "default", "alice")).toBe("kf:alerts:alice");
    expect(RedisSink.alertStreamKey("kf:", ACME, "alice")).toBe("kf:t:acme:alerts:alice");
    expect(RedisSink.alertStreamKey("{tenant}/", ACME, "alice")).toBe("acme/alerts:alice");
    // Never an events stream or a window hash, whatever the key holds.
    expect(RedisSink.alertStreamKey("kf:", "default", "x")).not.toBe(RedisSink.streamKey("kf:", "default", "x"));
    upstash.answer((_path, body) => Response.json((body as string[][]).map((c) => ({ result: c[0]!.toUpperCase() === "XADD" ? "1-0" : 1 }))));
    await new RedisSink({ url: upstash.url, token: "tok", prefix: "kf:", ttlSeconds: 60, streamMaxLen: 100 }).deliver([event(0), alert(), zscore]);
    const commands = JSON.parse(upstash.requests.splice(0)[0]!.body) as Array<Array<string | number>>;
    expect(commands.map((c) => [String(c[0]).toUpperCase(), c[1]])).toEqual([
      ["XADD", "kf:events:user-1"], ["XADD", "kf:alerts:user-1"], ["XADD", "kf:t:acme:alerts:user-1"],
      ["EXPIRE", "kf:events:user-1"], ["EXPIRE", "kf:alerts:user-1"], ["EXPIRE", "kf:t:acme:alerts:user-1"],
    ]);
    expect(commands[1]).toEqual([
      "XADD", "kf:alerts:user-1", "MAXLEN", "~", 100, "6-0", "tenant", "default", "rule", "burst", "shape", "1m", "start", String(T0),
      "end", String(T0 + 60_000), "aggregate", "count", "value", "4", "event_id", "e3", "fired_at", String(T0 + 5_000),
    ]);
    expect(commands[2]!.slice(5)).toEqual([
      "7-0", "tenant", ACME, "rule", "odd", "shape", "1m", "start", String(T0), "end", String(T0 + 60_000), "aggregate", "sum", "value", "90",
      "event_id", "", "fired_at", String(T0 + 5_000), "baseline", JSON.stringify({ mean: 10, stddev: 2, windows: 24 }),
    ]);
    // A redelivered alert is already in its stream: delivered.
    upstash.answer((_path, body) => Response.json((body as string[][]).map(() => ({ error: "ERR The ID specified in XADD is equal or smaller than the target stream top item" }))));
    await new RedisSink({ url: upstash.url, token: "tok", prefix: "kf:", ttlSeconds: 0, streamMaxLen: 100 }).deliver([alert()]);
    upstash.requests.splice(0);
  });

  test("postgres: alerts from one JSON array of alert views, inserted once per (tenant, actor_key, rule, shape, window_start); an alert's dead letter", () => {
    const st = batchStatement([event(0)] as any[], [], [], [alert(), zscore])!;
    expect(st.values).toHaveLength(2);
    expect(JSON.parse(st.values[1]!)).toEqual([alertRecordView(alert()), alertRecordView(zscore)].map((v) => JSON.parse(JSON.stringify(v))));
    expect(st.text).toContain("INSERT INTO alerts (tenant, actor_key, rule, shape, window_start, window_end, aggregate, value, baseline, event_id, fired_at)");
    expect(st.text).toContain("jsonb_to_recordset($2::jsonb)");
    expect(st.text).toContain("ON CONFLICT (tenant, actor_key, rule, shape, window_start) DO NOTHING");
    const alone = batchStatement([], [], [], [alert()])!;
    expect(alone.values).toHaveLength(1);
    expect(alone.text).not.toContain("raw_events");
    const dead = batchStatement([], [], [{ kind: "dead_letter", n: 10, key: "user-1", sink: "redis", record: alert(), error: "WRONGTYPE", failedAt: T0 }])!;
    const [failed] = JSON.parse(dead.values[0]!);
    expect(failed).toMatchObject({ tenant: "default", actor_key: "user-1", sink: "redis", outbox_index: 5, kind: "alert", event_id: null, record: JSON.parse(JSON.stringify(alertRecordView(alert()))) });
  });

  test("webhook: alert records in the body with their idempotency_key, beside events", async () => {
    const hook = recorder();
    try {
      await new WebhookSink({ url: `${hook.url}/in`, secret: "s3cret", timeoutMs: 2_000 }).deliver([event(0, { requestId: "r1" } as any), alert(), zscore]);
      const req = hook.requests[0]!;
      expect(req.headers.get("x-request-id")).toBeNull(); // alerts carry no correlation ID
      const body = JSON.parse(req.body);
      expect(body.records.slice(1)).toEqual(
        [alert(), zscore].map((a) => ({ idempotency_key: idempotencyKey(a), ...JSON.parse(JSON.stringify(alertRecordView(a))) })),
      );
    } finally {
      hook.stop();
    }
  });
});

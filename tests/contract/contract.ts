import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Target } from "../support/targets.ts";
import { SeededRandom } from "../support/fake-env.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.ts";
import { bearer, QUOTA_ENV, TEST_KEY_LINES } from "../support/api-keys.ts";
import { authorizationTests } from "./authorization.ts";
import { sseReader, type SseMessage } from "../support/sse.ts";

/**
 * The HTTP contract every host serves identically. Written once; each host's test file runs it.
 * Hosts run with CONTRACT_ENV (windows 1s,1m,1h,5m/1m; allowed lateness 2s; idle timeout 1s) and
 * `env`: a webhook sink pointing at a receiver in this process that can be told to refuse records.
 */
export function contractSuite(name: string, makeTarget: (env: Record<string, string>) => Promise<Target>) {
  describe(`HTTP contract: ${name}`, () => {
    let target: Target;
    let receiver: WebhookReceiver;
    let keySeq = 0;
    const run = Math.random().toString(36).slice(2, 8);
    const newKey = (label: string) => `${label}-${run}-${++keySeq}`;
    // Three hours ago, on an hour boundary: far enough back that windows close only when the test says so.
    const base = Math.floor((Date.now() - 3 * 3_600_000) / 3_600_000) * 3_600_000;
    const at = (offsetMs: number) => new Date(base + offsetMs).toISOString();

    /** A request with tenant-a's key of every scope: the tests below are about behaviour, authorization.ts about keys. */
    const send = (path: string, init: RequestInit = {}) => target.fetch(path, { ...init, headers: { ...bearer("all"), ...(init.headers as Record<string, string>) } });
    const post = (body: unknown, contentType = "application/json") =>
      send("/v1/events", {
        method: "POST",
        headers: { "content-type": contentType },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
    const get = (path: string) => send(path);
    const json = async (res: Response) => (await res.json()) as any;
    const expectError = async (res: Response, status: number, code: string) => {
      expect(res.status).toBe(status);
      expect(res.headers.get("content-type")).toContain("application/json");
      const body = await json(res);
      expect(body.error.code).toBe(code);
      expect(typeof body.error.message).toBe("string");
      return body.error;
    };
    /** One JSON convention in every response: snake_case field names (map keys such as event types aside). */
    const expectSnakeCase = (body: unknown, path = "body"): void => {
      if (Array.isArray(body)) return body.forEach((item, i) => expectSnakeCase(item, `${path}[${i}]`));
      if (typeof body !== "object" || body === null) return;
      for (const [k, v] of Object.entries(body)) {
        expect(k, `${path}.${k}`).toMatch(/^[a-z][a-z0-9_]*$/);
        if (!["by_type", "backlog", "properties"].includes(k)) expectSnakeCase(v, `${path}.${k}`);
      }
    };
    const event = (key: string, id: string, offsetMs: number, extra: Record<string, unknown> = {}) => ({
      event_id: id,
      event_type: "purchase",
      user_id: key,
      timestamp: at(offsetMs),
      ...extra,
    });

    /** Polls `read` until `done` holds (bounded: a sink that never delivers fails the test, it does not hang it). */
    const eventually = async <T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, limitMs = 30_000): Promise<T> => {
      const deadline = Date.now() + limitMs;
      for (;;) {
        const value = await read();
        if (done(value)) return value;
        if (Date.now() > deadline) throw new Error(`${what}: not reached within ${limitMs} ms; last seen ${JSON.stringify(value)}`);
        await Bun.sleep(50);
      }
    };

    beforeAll(async () => {
      receiver = startWebhookReceiver();
      target = await makeTarget({
        KEYFLOW_WEBHOOK_URL: receiver.url,
        KEYFLOW_WEBHOOK_SECRET: receiver.secret,
        KEYFLOW_SINK_MAX_DELAY: "5ms",
        KEYFLOW_API_KEYS: TEST_KEY_LINES,
        ...QUOTA_ENV,
      });
    });
    afterAll(async () => {
      await target?.stop();
      receiver?.stop();
    });

    authorizationTests(() => target, newKey, () => receiver);

    test("GET /health reports status, version and uptime", async () => {
      const res = await get("/health");
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.status).toBe("ok");
      expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(typeof body.uptime_s).toBe("number");
    });

    test("the README payload is accepted once, then reported as a duplicate", async () => {
      const key = newKey("user");
      const payload = {
        event_id: `evt-${key}`,
        event_type: "purchase",
        user_id: key,
        timestamp: at(10_000),
        properties: { amount: 99.99, product: "Widget" },
      };
      const first = await post(payload);
      expect(first.status).toBe(202);
      expect(await json(first)).toEqual({ status: "accepted", event_id: `evt-${key}` });
      const again = await post(payload);
      expect(again.status).toBe(200);
      expect(await json(again)).toEqual({ status: "duplicate", event_id: `evt-${key}` });

      const state = await json(await get(`/v1/actors/${key}`));
      expect(state.key).toBe(key);
      expect(state.totals).toEqual({ events: 1, duplicates: 1, late: 0, by_type: { purchase: 1 } });
      expect(state.first_event_at).toBe(at(10_000));
      expect(state.last_event_at).toBe(at(10_000));
      expect(state.watermark).toBe(at(10_000));
      const minute = state.open_windows.find((w: any) => w.size === "1m");
      expect(minute).toMatchObject({ start: at(0), end: at(60_000), count: 1, sum: 99.99, min: 99.99, max: 99.99, avg: 99.99, closed: false });
      expect(minute.by_type.purchase.count).toBe(1);
    });

    test("aggregates per window and per type: count, sum, min, max, avg", async () => {
      const key = newKey("agg");
      const res = await post([
        event(key, "a1", 1_000, { value: 10 }),
        event(key, "a2", 2_000, { properties: { amount: 30 } }),
        event(key, "a3", 3_000, { event_type: "page_view" }),
        event(key, "a4", 4_000, { value: -5, event_type: "refund" }),
      ]);
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual({ accepted: 4, duplicates: 0, late: 0, rejected: [] });
      const { windows } = await json(await get(`/v1/actors/${key}/windows?size=1m`));
      expect(windows).toHaveLength(1);
      expect(windows[0]).toMatchObject({ size: "1m", start: at(0), end: at(60_000), count: 4, sum: 35, min: -5, max: 30, closed: false });
      expect(windows[0].avg).toBeCloseTo(35 / 3, 10);
      expect(windows[0].by_type.page_view).toEqual({ count: 1, sum: 0, min: null, max: null, avg: null });
      const purchases = await json(await get(`/v1/actors/${key}/windows?size=1m&type=purchase`));
      expect(purchases.windows).toEqual([
        { size: "1m", start: at(0), end: at(60_000), shape: "tumbling", count: 2, sum: 40, min: 10, max: 30, avg: 20, closed: false, type: "purchase" },
      ]);
      const hopping = await json(await get(`/v1/actors/${key}/windows?size=5m&hop=1m`));
      // Five 5-minute windows, one starting each minute, contain [00:00:01, 00:00:04].
      expect(hopping.windows.map((w: any) => [w.start, w.end, w.count, w.shape])).toEqual(
        [-4, -3, -2, -1, 0].map((m) => [at(m * 60_000), at((m + 5) * 60_000), 4, "hopping"]),
      );
      const slash = await json(await get(`/v1/actors/${key}/windows?size=${encodeURIComponent("5m/1m")}`));
      expect(slash.windows).toEqual(hopping.windows);
    });

    test("a batch with invalid neighbours keeps every valid event and names each bad field", async () => {
      const key = newKey("batch");
      const res = await post([
        event(key, "b1", 1_000),
        { event_id: "b2", user_id: key, event_type: "Not Valid", timestamp: at(2_000) },
        event(key, "b3", 3_000),
        { event_id: "b4", event_type: "purchase", timestamp: at(4_000) },
        { event_id: "", event_type: "purchase", user_id: key, value: "12" },
        "not an object",
        event(key, "b1", 1_000),
      ]);
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.accepted).toBe(2);
      expect(body.duplicates).toBe(1);
      expect(body.rejected.map((r: any) => r.index)).toEqual([1, 3, 4, 5]);
      expect(body.rejected[0].error.details.map((d: any) => d.field)).toEqual(["event_type"]);
      expect(body.rejected[1].error.details.map((d: any) => d.field)).toEqual(["key"]);
      expect(body.rejected[2].error.details.map((d: any) => d.field).sort()).toEqual(["event_id", "value"]);
      expect(body.rejected[3].error.code).toBe("invalid_event");
      const state = await json(await get(`/v1/actors/${key}`));
      expect(state.totals.events).toBe(2);
    });

    test("NDJSON batches: a malformed line is rejected alone, with its line number", async () => {
      const key = newKey("ndjson");
      const lines = [JSON.stringify(event(key, "n1", 1_000)), "{broken", "", JSON.stringify(event(key, "n2", 2_000))].join("\n");
      const res = await post(lines, "application/x-ndjson");
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.accepted).toBe(2);
      expect(body.rejected).toHaveLength(1);
      expect(body.rejected[0].index).toBe(1);
      expect(body.rejected[0].error.code).toBe("malformed_json");
      expect(body.rejected[0].error.details.line).toBe(2);
    });

    test("an event without event_id gets a server-assigned UUIDv7", async () => {
      const key = newKey("noid");
      const res = await post({ event_type: "signup", user_id: key, timestamp: at(5_000) });
      expect(res.status).toBe(202);
      const body = await json(res);
      expect(body.status).toBe("accepted");
      expect(body.id_assigned).toBe(true);
      expect(body.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const batch = await json(await post([event(key, "x1", 6_000), { event_type: "signup", user_id: key }]));
      expect(batch.assigned_ids).toHaveLength(1);
      expect(batch.assigned_ids[0].index).toBe(1);
    });

    test("the actor key is `key` when given, else `user_id`, and may hold any printable character", async () => {
      const key = `${newKey("slash")}/a b:ü`;
      const res = await post({ event_id: "k1", event_type: "purchase", key, user_id: "ignored", timestamp: at(1_000) });
      expect(res.status).toBe(202);
      const state = await json(await get(`/v1/actors/${encodeURIComponent(key)}`));
      expect(state.key).toBe(key);
      expect((await get(`/v1/actors/ignored-${run}`)).status).toBe(404);
    });

    test("bad requests get 4xx JSON errors naming the problem", async () => {
      const malformed = await expectError(await post('{"event_type": "x",, }'), 400, "malformed_json");
      expect(malformed.details).toMatchObject({ position: 19, line: 1, column: 20 });

      const schema = await expectError(await post({ event_type: "UPPER", user_id: "", timestamp: "yesterday" }), 400, "invalid_event");
      expect(schema.details.map((d: any) => d.field).sort()).toEqual(["event_type", "timestamp", "user_id"]);

      const future = await expectError(
        await post({ event_type: "purchase", user_id: "u", timestamp: new Date(Date.now() + 3_600_000).toISOString() }),
        400,
        "invalid_event",
      );
      expect(future.details[0].field).toBe("timestamp");

      const proto = await expectError(
        await post('{"event_type":"purchase","user_id":"u","properties":{"a":{"__proto__":{"x":1}}}}'),
        400,
        "invalid_event",
      );
      expect(proto.details[0].field).toBe("properties");

      await expectError(await post("x=1", "application/x-www-form-urlencoded"), 415, "unsupported_media_type");
      await expectError(await post("[]"), 400, "empty_batch");
      await expectError(await post("42"), 400, "invalid_event");
      await expectError(await get("/v1/nothing-here"), 404, "not_found");
      await expectError(await get(`/v1/actors/never-seen-${run}`), 404, "actor_not_found");
      const wrong = await send("/v1/events", { method: "DELETE" });
      await expectError(wrong, 405, "method_not_allowed");
      expect(wrong.headers.get("allow")).toContain("POST");
      await expectError(await send("/health", { method: "POST" }), 405, "method_not_allowed");
    });

    test("requests over the limits get 413: more than 10,000 events, or more than 5 MiB", async () => {
      const tooMany = Array.from({ length: 10_001 }, () => ({}));
      await expectError(await post(tooMany), 413, "too_many_events");
      const big = JSON.stringify({ event_type: "purchase", user_id: "big", properties: { blob: "x".repeat(5 * 1024 * 1024) } });
      await expectError(await post(big), 413, "payload_too_large");
    });

    test("window queries filter by size, type, from and to, and reject unknown sizes", async () => {
      const key = newKey("query");
      await post([event(key, "q1", 10_000, { value: 1 }), event(key, "q2", 70_000, { value: 2 }), event(key, "q3", 130_000, { value: 3 })]);
      const all = await json(await get(`/v1/actors/${key}/windows?size=1m`));
      expect(all.windows.map((w: any) => w.sum)).toEqual([1, 2, 3]);
      const ranged = await json(await get(`/v1/actors/${key}/windows?size=1m&from=${at(60_000)}&to=${base + 120_000}`));
      expect(ranged.windows.map((w: any) => w.sum)).toEqual([2]);
      const none = await json(await get(`/v1/actors/${key}/windows?size=1m&type=refund`));
      expect(none.windows).toEqual([]);
      const bad = await expectError(await get(`/v1/actors/${key}/windows?size=7m`), 400, "invalid_query");
      expect(bad.details[0].field).toBe("size");
      await expectError(await get(`/v1/actors/${key}/windows?from=soon`), 400, "invalid_query");
      await expectError(await get(`/v1/actors/${key}/windows?from=${base + 5}&to=${base}`), 400, "invalid_query");
      await expectError(await get(`/v1/actors/${key}/windows?type=UP`), 400, "invalid_query");
    });

    test("a window closes when the watermark passes its end plus allowed lateness; later events for it are late", async () => {
      const key = newKey("late");
      await post([event(key, "l1", 10_000, { value: 1 }), event(key, "l2", 20_000, { value: 2 })]);
      // Watermark 00:05:00 closes [00:00, 00:01) (end + 2 s lateness <= watermark) but not the 1h or 5m windows.
      await post(event(key, "l3", 300_000, { value: 4 }));
      const late = await post(event(key, "l4", 30_000, { value: 8 }));
      expect(late.status).toBe(202);
      expect(await json(late)).toEqual({ status: "accepted", event_id: "l4", late: true });

      const state = await json(await get(`/v1/actors/${key}`));
      expect(state.totals).toMatchObject({ events: 4, late: 1 });
      const closedMinute = state.recently_closed_windows.find((w: any) => w.size === "1m" && w.start === at(0));
      expect(closedMinute).toMatchObject({ count: 2, sum: 3, closed: true, closed_by: "watermark" });

      const minutes = await json(await get(`/v1/actors/${key}/windows?size=1m`));
      expect(minutes.windows.map((w: any) => [w.start, w.sum, w.closed])).toEqual([
        [at(0), 3, true],
        [at(300_000), 4, false],
      ]);
      // Still open windows take the late event: the hour sums all four values.
      const hour = await json(await get(`/v1/actors/${key}/windows?size=1h`));
      expect(hour.windows[0]).toMatchObject({ count: 4, sum: 15, closed: false });

      const log = await json(await get(`/v1/actors/${key}/late`));
      expect(log.late).toHaveLength(1);
      expect(log.late[0]).toMatchObject({ event_id: "l4", event_type: "purchase", timestamp: at(30_000), value: 8 });
      expect(log.late[0].missed_windows).toContain("1m");
      expect(log.late[0].missed_windows).not.toContain("1h");
    });

    test("a quiet key still closes its windows on the wall clock (idle timeout)", async () => {
      const key = newKey("idle");
      await post({ event_id: "i1", event_type: "purchase", user_id: key, value: 5 });
      let closed: any;
      for (let i = 0; i < 100 && !closed; i++) {
        await Bun.sleep(100);
        const state = await json(await get(`/v1/actors/${key}`));
        closed = state.recently_closed_windows.find((w: any) => w.size === "1s");
      }
      expect(closed).toMatchObject({ count: 1, sum: 5, closed: true, closed_by: "idle" });
    });

    test("many keys in one batch: each key's state is its own", async () => {
      const keys = Array.from({ length: 50 }, (_, i) => newKey(`many${i}`));
      const events = keys.flatMap((k, i) => Array.from({ length: 4 }, (_, j) => event(k, `m${j}`, 1_000 * (j + 1), { value: i + j })));
      const body = await json(await post(events));
      expect(body).toMatchObject({ accepted: 200, duplicates: 0, rejected: [] });
      for (const [i, k] of keys.entries()) {
        const { windows } = await json(await get(`/v1/actors/${k}/windows?size=1m`));
        expect(windows[0]).toMatchObject({ count: 4, sum: 4 * i + 6 });
      }
    });

    test("dead letters: listed, counted in the outbox view, replayed by id, by sink and all, on this host", async () => {
      const key = newKey("dlq");
      receiver.refusing = true;
      const refuse = { properties: { refuse: true } };
      const sent = await post([event(key, "d1", 1_000), event(key, "d2", 2_000, refuse), event(key, "d3", 3_000, refuse), event(key, "d4", 4_000, refuse)]);
      expect(await json(sent)).toMatchObject({ accepted: 4, rejected: [] });
      await eventually("the good event delivered", async () => receiver.received.has("d1"), (v) => v);
      const { dead_letters: dead } = await eventually(
        "three dead letters",
        async () => json(await get(`/v1/actors/${key}/dlq`)),
        (body: any) => body.dead_letters.length === 3,
      );
      expect(dead.map((d: any) => d.record.event_id).sort()).toEqual(["d2", "d3", "d4"]);
      for (const d of dead) {
        expect(d).toMatchObject({ sink: "webhook", attempts: 1, record: { kind: "event", key, event_type: "purchase" } });
        expect(d.error).toContain("400");
        expect(typeof d.id).toBe("number");
        expect(Date.parse(d.failed_at)).toBeGreaterThan(0);
      }
      const outbox = await json(await get(`/v1/actors/${key}/outbox`));
      expect(outbox).toMatchObject({ key, backlog: { webhook: 0 }, dead_letters: 3 });
      expect(outbox.sinks).toHaveLength(1);
      expect(Object.keys(outbox.sinks[0]).sort()).toEqual(
        ["attempts", "breaker", "breaker_closed", "breaker_opened", "consecutive_failures", "dead_lettered", "delivered", "last_error", "retry_at", "sink", "transient_failures"],
      );
      expect(outbox.sinks[0]).toMatchObject({ sink: "webhook", breaker: "closed" });
      expect(outbox.sinks[0].dead_lettered).toBeGreaterThanOrEqual(3);
      expectSnakeCase(outbox);
      expectSnakeCase(dead);

      // The sink takes them now: replay one by id, one by sink, and the rest with no filter.
      receiver.refusing = false;
      const byId = dead.find((d: any) => d.record.event_id === "d2");
      expect(await json(await send(`/v1/actors/${key}/dlq/replay?ids=${byId.id}`, { method: "POST" }))).toEqual({ key, replayed: 1 });
      await eventually("d2 replayed to the sink", async () => receiver.received.has("d2"), (v) => v);
      expect((await json(await get(`/v1/actors/${key}/dlq`))).dead_letters.map((d: any) => d.record.event_id).sort()).toEqual(["d3", "d4"]);
      const bySink = dead.find((d: any) => d.record.event_id === "d3");
      expect(await json(await send(`/v1/actors/${key}/dlq/replay?sink=webhook&ids=${bySink.id}`, { method: "POST" }))).toEqual({ key, replayed: 1 });
      expect(await json(await send(`/v1/actors/${key}/dlq/replay?sink=webhook`, { method: "POST" }))).toEqual({ key, replayed: 1 });
      await eventually("d3 and d4 replayed to the sink", async () => receiver.received.has("d3") && receiver.received.has("d4"), (v) => v);
      expect((await json(await get(`/v1/actors/${key}/dlq`))).dead_letters).toEqual([]);
      expect(await json(await send(`/v1/actors/${key}/dlq/replay`, { method: "POST" }))).toEqual({ key, replayed: 0 });
      const after = await eventually("the outbox drained", async () => json(await get(`/v1/actors/${key}/outbox`)), (o: any) => o.backlog.webhook === 0);
      expect(after.dead_letters).toBe(0);

      const unknownSink = await expectError(await send(`/v1/actors/${key}/dlq/replay?sink=nope`, { method: "POST" }), 400, "invalid_query");
      expect(unknownSink.details[0].field).toBe("sink");
      expect(unknownSink.message).toContain("webhook");
      await expectError(await send(`/v1/actors/${key}/dlq/replay?ids=1,x`, { method: "POST" }), 400, "invalid_query");
      await expectError(await send(`/v1/actors/never-${run}/dlq/replay`, { method: "POST" }), 404, "actor_not_found");
      await expectError(await get(`/v1/actors/never-${run}/dlq`), 404, "actor_not_found");
      await expectError(await get(`/v1/actors/never-${run}/outbox`), 404, "actor_not_found");
    });

    test("no client input produces a 5xx", async () => {
      const random = new SeededRandom(7);
      const pieces = ['{"', '"}', "[", "]", ",", ":", "null", "1e999", '"event_type"', '"purchase"', '"user_id"', "\\u0000", "{", "}", '"__proto__"', "-0", "tru"];
      for (let i = 0; i < 150; i++) {
        let body = "";
        for (let n = random.int(12); n >= 0; n--) body += pieces[random.int(pieces.length)];
        const type = ["application/json", "application/x-ndjson", "text/plain"][random.int(3)]!;
        const res = await post(body, type);
        expect(res.status).toBeLessThan(500);
        expect(res.headers.get("content-type")).toContain("application/json");
      }
    });

    test("live view: accepted events and window updates and closes as server-sent events; a reconnect with Last-Event-ID resumes", async () => {
      const key = newKey("live");
      const data = (m: SseMessage) => JSON.parse(m.data);
      const isEvent = (id: string) => (m: SseMessage) => m.event === "event" && data(m).event_id === id;
      const res = await get(`/v1/actors/${encodeURIComponent(key)}/live`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      const first = sseReader(res);
      try {
        await post([event(key, "l1", 1_000, { value: 5 }), event(key, "l2", 1_500, { value: 7 })]);
        const l2 = await first.until(isEvent("l2"));
        expect(data(l2)).toMatchObject({ kind: "event", key, event_id: "l2", event_type: "purchase", value: 7, late: false });
        // The 1s window [1000, 2000) was updated by each event; the second update holds both.
        const update = await first.until((m) => m.event === "window" && data(m).size === "1s" && data(m).count === 2);
        expect(data(update)).toMatchObject({ kind: "window", key, start: at(1_000), end: at(2_000), final: false, sum: 12 });
        // An event far ahead moves the watermark past the window's end plus lateness: it closes.
        await post(event(key, "l3", 6_000, { value: 1 }));
        const closed = await first.until((m) => m.event === "window" && data(m).size === "1s" && data(m).final === true);
        expect(data(closed)).toMatchObject({ start: at(1_000), count: 2, sum: 12 });
        // Duplicates are not news: after a duplicate and a new event, the stream shows only the new one.
        await post(event(key, "l1", 1_000, { value: 5 }));
        await post(event(key, "l3b", 6_100, { value: 1 }));
        await first.until(isEvent("l3b"));
        expect(first.messages.filter(isEvent("l1")).length).toBe(1);
        const ids = first.messages.map((m) => m.id).filter((id) => id !== undefined);
        expect(new Set(ids).size).toBe(ids.length);
      } finally {
        await first.cancel();
      }
      const lastSeen = first.messages.findLast((m) => m.id !== undefined)!.id!;
      // Missed while disconnected, then resumed: everything after the last ID seen, nothing before it.
      await post(event(key, "l4", 6_500, { value: 2 }));
      const again = sseReader(await send(`/v1/actors/${encodeURIComponent(key)}/live`, { headers: { "last-event-id": lastSeen } }));
      try {
        await again.until(isEvent("l4"));
        expect(again.messages.some((m) => m.event === "gap")).toBe(false);
        expect(again.messages.filter((m) => m.event === "event").map((m) => data(m).event_id)).toEqual(["l4"]);
      } finally {
        await again.cancel();
      }
      // An ID from another incarnation (or too old): the client is told it may have missed some.
      const foreign = sseReader(await get(`/v1/actors/${encodeURIComponent(key)}/live?last_event_id=zz-0.5`));
      try {
        await foreign.until((m) => m.event === "gap");
      } finally {
        await foreign.cancel();
      }
      await expectError(await get(`/v1/actors/${encodeURIComponent(key)}/live?last_event_id=${encodeURIComponent("<script>")}`), 400, "invalid_query");
    });

    test("after a restart duplicates are still rejected and state and windows are identical", async () => {
      const key = newKey("restart");
      await post([event(key, "r1", 1_000, { value: 3 }), event(key, "r2", 61_000, { value: 4 }), event(key, "r3", 200_000, { value: 5 })]);
      await post(event(key, "r0", 2_000, { value: 100 }));
      // The wall clock keeps running through the restart, and this quiet key's windows close by idle
      // timeout whenever it comes: what must survive is every aggregate, not which windows are closed yet.
      const durable = async () => {
        const state = await json(await get(`/v1/actors/${key}`));
        const { windows } = await json(await get(`/v1/actors/${key}/windows`));
        const { late } = await json(await get(`/v1/actors/${key}/late`));
        const { watermark, open_windows, recently_closed_windows, closed_windows_retained, ...facts } = state;
        const aggregates = windows.map(({ closed, closed_at, closed_by, ...w }: any) => w);
        return { facts, aggregates, late, watermark: Date.parse(watermark) };
      };
      const before = await durable();
      expect(before.aggregates.length).toBeGreaterThan(5);
      await target.restart();
      const after = await durable();
      expect(after.facts).toEqual(before.facts);
      expect(after.aggregates).toEqual(before.aggregates);
      expect(after.late).toEqual(before.late);
      expect(after.watermark).toBeGreaterThanOrEqual(before.watermark);
      const retry = await post(event(key, "r2", 61_000, { value: 4 }));
      expect(retry.status).toBe(200);
      expect((await json(retry)).status).toBe("duplicate");
      await post(event(key, "r4", 201_000, { value: 6 }));
      const { windows } = await json(await get(`/v1/actors/${key}/windows?size=1h`));
      expect(windows[0]).toMatchObject({ count: 5, sum: 118 });
    });
  });
}

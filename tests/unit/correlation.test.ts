import { afterAll, describe, expect, test } from "bun:test";
import { Actor } from "../../src/actor/actor.ts";
import type { Event } from "../../src/actor/event.ts";
import { Outbox, type EventRecord, type OutboxRecord } from "../../src/actor/outbox.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { eventRecordView, recordView } from "../../src/delivery/records.ts";
import { DurableGateway, type ActorNamespace } from "../../src/hosts/durable/gateway.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { decodeJournal, encodeJournal, RetainedJournal, type Command } from "../../src/hosts/process/journal.ts";
import { OPEN_ACCESS } from "../../src/http/access.ts";
import { createApp } from "../../src/http/app.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { KafkaSink } from "../../src/sinks/kafka/sink.ts";
import { batchStatement } from "../../src/sinks/postgres/sink.ts";
import { RedisSink } from "../../src/sinks/redis/sink.ts";
import { WebhookSink } from "../../src/sinks/webhook/sink.ts";
import { fakeEnv } from "../support/fake-env.ts";
import { FakeSink } from "../support/fake-sink.ts";
import { FlakyStore } from "../support/flaky-store.ts";

// Issue 11: each event carries the correlation ID of the request that brought it to every sink.

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const ev = (key: string, id: string, requestId?: string): Event => ({ id, assigned: false, type: "buy", key, ts: T0, value: 1, ...(requestId === undefined ? {} : { requestId }) });
const record = (n: number, requestId?: string): EventRecord => ({
  kind: "event", n, key: "user-1", id: `e${n}`, type: "buy", ts: T0, receivedAt: T0, late: false, ...(requestId === undefined ? {} : { requestId }),
});
const windowRecord: OutboxRecord = {
  kind: "window", n: 9, key: "user-1", spec: "1m", start: T0, end: T0 + 60_000, revision: 1, final: true,
  all: { count: 1, valued: 1, sum: 1, min: 1, max: 1 }, types: {},
};

describe("journal", () => {
  test("an event's request ID round-trips as an optional trailing element; rows written before it still read", () => {
    const commands: Command[] = [{ kind: "ingest", key: "k", now: T0, events: [ev("k", "a", "req-1"), ev("k", "b")] }];
    const text = encodeJournal(commands);
    expect(JSON.parse(text)[0][3].map((e: unknown[]) => e.length)).toEqual([7, 6]);
    expect(decodeJournal(text)).toEqual(commands);
    const old = JSON.stringify([["i", "k", T0, [["a", "buy", T0, 1, null, 0]]]]);
    const [read] = decodeJournal(old) as Array<Extract<Command, { kind: "ingest" }>>;
    expect(read!.events).toEqual([ev("k", "a")]);
    expect("requestId" in read!.events[0]!).toBe(false);
  });

  test("one request's events share its ID: written once per command, not once per event", () => {
    const commands: Command[] = [{ kind: "ingest", key: "k", now: T0, events: [ev("k", "a", "req-1"), ev("k", "b", "req-1"), ev("k", "c", "req-1")] }];
    const text = encodeJournal(commands);
    expect(text.split("req-1").length - 1).toBe(1);
    expect(JSON.parse(text)[0][3].map((e: unknown[]) => e.length)).toEqual([6, 6, 6]);
    expect(decodeJournal(text)).toEqual(commands);
  });

  test("a journal reference resolves to the event with its request ID", () => {
    const journal = new RetainedJournal();
    journal.append(3, decodeJournal(encodeJournal([{ kind: "ingest", key: "k", now: T0, events: [ev("k", "a", "req-1"), ev("k", "b")] }])));
    expect(journal.resolve([3, 0, 0])).toMatchObject({ id: "a", requestId: "req-1" });
    expect(journal.resolve([3, 0, 1])!.requestId).toBeUndefined();
  });
});

describe("records", () => {
  const config: Config = { ...DEFAULT_CONFIG, windows: [parseWindowSpec("1m") as WindowSpec], sinks: ["s"] };

  test("the actor's event record carries the request ID; an event without one gives a record without the field", () => {
    const actor = new Actor("k", config);
    actor.ingest([ev("k", "a", "req-1"), ev("k", "b")], T0);
    actor.outbox.markDurable();
    const [a, b] = actor.outbox.pending("s", 10) as EventRecord[];
    expect(a!.requestId).toBe("req-1");
    expect("requestId" in b!).toBe(false);
  });

  test("the wire view shows it as request_id, omitted when absent; a window record has none", () => {
    expect(eventRecordView(record(0, "req-1")).request_id).toBe("req-1");
    expect("request_id" in eventRecordView(record(0))).toBe(false);
    expect("request_id" in recordView(windowRecord as never)).toBe(false);
  });

  test("it survives a journal reference, a dead letter, its restore and its replay", () => {
    const ob = new Outbox(["s"]);
    const stored = ob.append({ ...record(0, "req-1"), ref: [7, 0, 0] } as never) as EventRecord;
    ob.markDurable();
    const rows = new Map(ob.drain().puts);
    const back = Outbox.restore(["s"], undefined, ob.getMeta(), rows, () => ({ key: "user-1", id: "e0", type: "buy", ts: T0, receivedAt: T0, requestId: "req-1" }));
    const [resolved] = back.pending("s", 10) as EventRecord[];
    expect(resolved).toEqual(stored);
    back.deadLetter("s", resolved!, "refused", 1, T0);
    back.ack("s", 1);
    const dead = Outbox.restore(["s"], undefined, back.getMeta(), back.drain().puts);
    expect((dead.deadLetters()[0]!.record as EventRecord).requestId).toBe("req-1");
    expect(dead.replay({})).toBe(1);
    dead.markDurable();
    expect((dead.pending("s", 10)[0] as EventRecord).requestId).toBe("req-1");
  });
});

describe("process host", () => {
  const config: Config = {
    ...DEFAULT_CONFIG,
    windows: [parseWindowSpec("1m") as WindowSpec],
    sinks: ["s"],
    checkpointIntervalMs: 1_000,
    delivery: { ...DEFAULT_CONFIG.delivery, backoffBaseMs: 20, backoffMaxMs: 100 },
  };

  for (const [when, ms] of [["from the journal alone", 100], ["after a checkpoint stored its records as journal references", 1_500]] as const) {
    test(`a restart rebuilds the records with their request IDs ${when}`, async () => {
      const store = new FlakyStore();
      const sink = new FakeSink("s");
      sink.down = 1_000_000;
      const start = (at: number) => {
        const fake = fakeEnv(at);
        return { runtime: new ProcessHost({ store, config, clock: fake.clock, random: fake.random, timers: fake.timers, sinks: [sink] }), ...fake };
      };
      const run = async (h: ReturnType<typeof start>, total: number) => {
        for (let t = 0; t < total; t += 10) {
          h.timers.advance(10);
          for (let i = 0; i < 4; i++) await Bun.sleep(0);
        }
      };
      let host = start(T0);
      const result = host.runtime.ingest([ev("k", "a", "req-1"), ev("k", "b"), ev("k", "c", "req-2")]);
      host.timers.advance(0);
      expect((await result).map((o) => o.status)).toEqual(["accepted", "accepted", "accepted"]);
      await run(host, ms);
      const references = store.list("").filter(([k, v]) => k.includes("ob/") && v.includes('"ref":'));
      expect(references.length).toBe(ms > config.checkpointIntervalMs ? 1 : 0);
      host = start(host.clock.now() + 1); // a crash: memory and timers gone
      sink.down = 0;
      await run(host, 2_000);
      expect(sink.order.map((r) => [(r as EventRecord).id, (r as EventRecord).requestId])).toEqual([
        ["a", "req-1"],
        ["b", undefined],
        ["c", "req-2"],
      ]);
    });
  }
});

describe("HTTP app", () => {
  /** Durable Objects that accept every event; events cross as RPC arguments do (structured clone). */
  const received: Event[] = [];
  const ns: ActorNamespace = {
    getByName: () => ({
      async ingest(_key: string, events: Event[]) {
        received.push(...structuredClone(events));
        return { outcomes: events.map(() => ({ status: "accepted" as const })) };
      },
    }) as never,
  };
  const http = createApp({ backend: new DurableGateway(ns), config: DEFAULT_CONFIG, env: fakeEnv(T0).env, host: "workers", access: OPEN_ACCESS });
  const post = (body: string, headers: Record<string, string>) => http.request("/v1/events", { method: "POST", headers, body });
  const wire = (id: string, key = "k") => ({ event_id: id, event_type: "buy", key, timestamp: T0 });

  test("every event of a request carries its ID: x-request-id, else the traceparent's trace id, else a new one", async () => {
    const one = await post(JSON.stringify(wire("a")), { "content-type": "application/json", "x-request-id": "client-req.1" });
    expect(one.status).toBe(202);
    const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const batch = await post(JSON.stringify([wire("b"), wire("c", "other")]), { "content-type": "application/json", traceparent: `00-${trace}-00f067aa0ba902b7-01` });
    const lines = await post(`${JSON.stringify(wire("d"))}\n${JSON.stringify(wire("e"))}`, { "content-type": "application/x-ndjson", "x-request-id": "bad id" });
    const fresh = lines.headers.get("x-request-id")!;
    expect(fresh).not.toBe("bad id");
    expect(batch.headers.get("x-request-id")).toBe(trace);
    expect(received.map((e) => [e.id, e.requestId])).toEqual([
      ["a", "client-req.1"],
      ["b", trace],
      ["c", trace],
      ["d", fresh],
      ["e", fresh],
    ]);
  });
});

/** A stand-in HTTP endpoint that keeps each request and answers as told. */
function recorder() {
  const requests: Array<{ headers: Headers; body: string }> = [];
  let reply: (body: string) => Response = () => new Response(null, { status: 204 });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const body = await req.text();
      requests.push({ headers: req.headers, body });
      return reply(body);
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, requests, answer: (fn: typeof reply) => void (reply = fn), stop: () => server.stop(true) };
}

describe("sinks", () => {
  const endpoint = recorder();
  afterAll(() => endpoint.stop());

  test("kafka: a request-id header on an event that has one, and request_id in its value", async () => {
    endpoint.answer((body) => Response.json({ offsets: JSON.parse(body).records.map(() => ({ partition: 0, offset: 0 })) }));
    const sink = new KafkaSink({ dialect: "v2", url: endpoint.url, topic: "events", windowsTopic: "windows", headers: true, timeoutMs: 2_000 });
    await sink.deliver([record(0, "req-1"), record(1)]);
    const [a, b] = JSON.parse(endpoint.requests.splice(0)[0]!.body).records;
    const headers = (r: any) => r.headers.map((h: any) => [h.key, atob(h.value)]);
    expect(headers(a)).toContainEqual(["request-id", "req-1"]);
    expect(headers(b).map(([k]: string[]) => k)).not.toContain("request-id");
    expect(JSON.parse(atob(a.value)).request_id).toBe("req-1");
  });

  test("redis: a request_id field in the stream entry of an event that has one", async () => {
    endpoint.answer((body) => Response.json(JSON.parse(body).map(() => ({ result: "1-0" }))));
    const sink = new RedisSink({ url: endpoint.url, token: "t", prefix: "kf:", ttlSeconds: 0, streamMaxLen: 100 });
    await sink.deliver([record(0, "req-1"), record(1)]);
    const [a, b] = JSON.parse(endpoint.requests.splice(0)[0]!.body) as string[][];
    expect(a!.slice(a!.indexOf("request_id"), a!.indexOf("request_id") + 2)).toEqual(["request_id", "req-1"]);
    expect(b).not.toContain("request_id");
  });

  test("postgres: request_id goes into processed_events from the JSON parameter, never into the SQL text", () => {
    const st = batchStatement([record(0, "req-'1"), record(1)], [], [])!;
    expect(st.text).toMatch(/INSERT INTO processed_events \([^)]*, request_id, enriched\)/);
    expect(st.text).not.toContain("req-'1");
    expect(JSON.parse(st.values[0]!).map((r: any) => r.request_id)).toEqual(["req-'1", undefined]);
  });

  test("webhook: request_id in each record; an x-request-id header only when every record shares one", async () => {
    endpoint.answer(() => new Response(null, { status: 204 }));
    const sink = new WebhookSink({ url: endpoint.url, secret: "s", timeoutMs: 2_000 });
    const sent = async (records: OutboxRecord[]) => {
      await sink.deliver(records);
      const { headers, body } = endpoint.requests.splice(0)[0]!;
      return { header: headers.get("x-request-id"), ids: JSON.parse(body).records.map((r: any) => r.request_id ?? null) };
    };
    expect(await sent([record(0, "req-1"), record(1, "req-1")])).toEqual({ header: "req-1", ids: ["req-1", "req-1"] });
    expect(await sent([record(0, "req-1"), record(1, "req-2")])).toEqual({ header: null, ids: ["req-1", "req-2"] });
    expect(await sent([record(0, "req-1"), record(1)])).toEqual({ header: null, ids: ["req-1", null] });
    expect(await sent([record(0, "req-1"), windowRecord])).toEqual({ header: null, ids: ["req-1", null] });
  });
});

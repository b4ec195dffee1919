import { describe, expect, test } from "bun:test";
import type { IngestOutcome } from "../../src/actor/actor.ts";
import type { Event } from "../../src/actor/event.ts";
import { DurableGateway, type ActorNamespace, type ActorStub } from "../../src/hosts/durable/gateway.ts";
import { createApp } from "../../src/http/app.ts";
import { OPEN_ACCESS } from "../../src/http/access.ts";
import { DEFAULT_CONFIG } from "../../src/settings/config.ts";
import { fakeEnv } from "../support/fake-env.ts";

// Defect 9 of issue 9: on Workers each key's Durable Object succeeds or fails on its own. An object
// can fail after it stored the events (the reply is what got lost), so a 503 must not claim that
// nothing was acknowledged, and the keys that succeeded must be reported as such.

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);

/** Objects that store every event, then fail to answer for the keys in `failing`. */
function namespace(failing: Set<string>, behind = new Set<string>()) {
  const stored = new Map<string, string[]>();
  const ns: ActorNamespace = {
    getByName(name: string): ActorStub {
      const unused = () => Promise.reject(new Error("not used in this test"));
      return {
        async ingest(key: string, events: Event[]) {
          if (behind.has(key)) return { backpressure: { retryAfterSeconds: 1 } };
          const ids = stored.get(key) ?? stored.set(key, []).get(key)!;
          const outcomes: IngestOutcome[] = events.map((e) => (ids.includes(e.id) ? { status: "duplicate" } : (ids.push(e.id), { status: "accepted" })));
          if (failing.has(name)) throw new Error("Durable Object reset because its code was updated");
          return { outcomes };
        },
        state: unused,
        windows: unused,
        late: unused,
        deadLetters: unused,
        replay: unused,
        outbox: unused,
        live: unused,
        fetch: unused,
        alerts: unused,
      };
    },
  };
  return { ns, stored };
}

function app(ns: ActorNamespace) {
  const fake = fakeEnv(T0 + 60_000);
  const http = createApp({ backend: new DurableGateway(ns), config: DEFAULT_CONFIG, env: fake.env, host: "workers", access: OPEN_ACCESS });
  return (body: unknown) => http.request("/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

const event = (key: string, id: string) => ({ event_id: id, event_type: "purchase", key, timestamp: T0 });

describe("DurableGateway: what a failed key's answer says is true", () => {
  test("a batch reports the keys that succeeded, and the failed key's events as possibly stored, to retry", async () => {
    const { ns, stored } = namespace(new Set(["bad"]));
    const post = app(ns);
    const res = await post([event("ok", "a"), event("bad", "b"), event("ok", "c"), event("bad", "d")]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { accepted: number; rejected: Array<{ index: number; error: { code: string; message: string; details: unknown } }> };
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r) => [r.index, r.error.code])).toEqual([
      [1, "actor_unavailable"],
      [3, "actor_unavailable"],
    ]);
    for (const { error } of body.rejected) {
      expect(error.message).toContain("may have been stored");
      expect(error.message).toContain("retry");
      expect(error.message).not.toContain("nothing");
      expect(error.details).toEqual({ retryable: true });
    }
    // The failed key did store them: a retry answers them as duplicates, which is what the message promises.
    expect(stored.get("bad")).toEqual(["b", "d"]);
    const retry = await post([event("bad", "b"), event("bad", "d")]);
    expect(retry.status).toBe(503);
  });

  test("a single event whose object failed answers 503 saying it may have been stored", async () => {
    const post = app(namespace(new Set(["bad"])).ns);
    const res = await post(event("bad", "x"));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("actor_unavailable");
    expect(error.message).toContain("may have been stored");
    expect(error.message).not.toContain("nothing");
  });

  test("a key behind its sinks refuses its own events only; alone it answers 429", async () => {
    const post = app(namespace(new Set(), new Set(["slow"])).ns);
    const mixed = await post([event("slow", "s1"), event("fast", "f1")]);
    expect(mixed.status).toBe(200);
    const body = (await mixed.json()) as { accepted: number; rejected: Array<{ index: number; error: { code: string; details: unknown } }> };
    expect(body.accepted).toBe(1);
    expect(body.rejected).toEqual([{ index: 0, error: expect.objectContaining({ code: "backpressure", details: { key: "slow", retry_after_s: 1 } }) }]);
    const alone = await post(event("slow", "s2"));
    expect(alone.status).toBe(429);
    expect(alone.headers.get("retry-after")).toBe("1");
  });
});

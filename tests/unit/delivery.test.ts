import { describe, expect, test } from "bun:test";
import { CircuitBreaker, SinkChannel, type Outcome } from "../../src/delivery/channel.ts";
import { applySettlement, settlements } from "../../src/delivery/settle.ts";
import { Outbox } from "../../src/actor/outbox.ts";
import { SinkError } from "../../src/delivery/sink.ts";
import { type DeliveryPolicy } from "../../src/delivery/policy.ts";
import type { OutboxRecord } from "../../src/actor/outbox.ts";
import { SeededRandom } from "../support/fake-env.ts";
import { FakeSink } from "../support/fake-sink.ts";

const policy: DeliveryPolicy = {
  batchSize: 100,
  maxBatchSize: 100,
  maxInFlight: 1,
  retryBudgetMs: 60_000,
  backoffBaseMs: 100,
  backoffMaxMs: 5_000,
  breakerThreshold: 3,
  breakerCooldownMs: 2_000,
};

const rec = (n: number, key = "k"): OutboxRecord => ({ kind: "event", n, key, id: `e${n}`, type: "t", ts: n, receivedAt: 0, late: false });
const recs = (count: number) => Array.from({ length: count }, (_, n) => rec(n));

function channel(sink: FakeSink, overrides: Partial<DeliveryPolicy> = {}) {
  return new SinkChannel(sink, { ...policy, ...overrides }, new SeededRandom(3));
}

describe("SinkChannel", () => {
  test("a healthy sink takes the batch in one call", async () => {
    const sink = new FakeSink("s");
    const outcomes = await channel(sink).deliver(recs(5), () => 0);
    expect(outcomes.map((o) => o.status)).toEqual(Array(5).fill("delivered"));
    expect(sink.calls).toHaveLength(1);
  });

  test("transient failures back off exponentially with full jitter, capped", async () => {
    const sink = new FakeSink("s");
    sink.down = 100;
    const ch = channel(sink, { breakerThreshold: 1_000 });
    let now = 0;
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 8; attempt++) {
      const outcomes = await ch.deliver(recs(2), () => now);
      expect(outcomes.every((o) => o.status === "pending")).toBe(true);
      const delay = ch.readyAt() - now;
      const ceiling = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (attempt - 1));
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(ceiling);
      delays.push(delay);
      // Before readyAt nothing is sent.
      const calls = sink.calls.length;
      if (delay > 0) {
        await ch.deliver(recs(2), () => now + delay - 1);
        expect(sink.calls.length).toBe(calls);
      }
      now += delay;
    }
    // Jitter: not all the same; later ceilings reach the cap.
    expect(new Set(delays).size).toBeGreaterThan(4);
    expect(Math.max(...delays)).toBeGreaterThan(policy.backoffBaseMs);
  });

  test("the circuit breaker opens after consecutive failures, probes after the cooldown, and closes", async () => {
    const sink = new FakeSink("s");
    sink.down = 4; // three to open it, one more for the first probe
    const ch = channel(sink);
    let now = 0;
    for (let i = 0; i < 3; i++) {
      await ch.deliver(recs(1), () => now);
      now = Math.max(now, ch.readyAt());
    }
    expect(ch.breaker.state).toBe("open");
    expect(ch.readyAt()).toBeGreaterThanOrEqual(policy.breakerCooldownMs);
    const callsWhileOpen = sink.calls.length;
    await ch.deliver(recs(1), () => 10); // open: not even tried
    expect(sink.calls.length).toBe(callsWhileOpen);

    now = ch.readyAt();
    await ch.deliver(recs(1), () => now); // half-open probe fails: open again
    expect(ch.breaker.state).toBe("open");
    now = ch.readyAt();
    const outcomes = await ch.deliver(recs(1), () => now); // probe succeeds: closed
    expect(outcomes[0]!.status).toBe("delivered");
    expect(ch.breaker.state).toBe("closed");
    expect(ch.breaker.stats).toEqual({ opened: 1, closed: 1 });
    expect(ch.status()).toMatchObject({ breaker: "closed", breakerOpened: 1, breakerClosed: 1 });
  });

  test("a batch refused as a whole is bisected until the poison records stand alone", async () => {
    const sink = new FakeSink("s");
    sink.poison = (r) => r.n === 5 || r.n === 11;
    const outcomes = await channel(sink).deliver(recs(16), () => 0);
    expect(outcomes.map((o, n) => (o.status === "dead" ? n : -1)).filter((n) => n >= 0)).toEqual([5, 11]);
    expect(outcomes.filter((o) => o.status === "delivered")).toHaveLength(14);
    expect([...sink.applied.keys()].sort()).toEqual(recs(16).filter((r) => r.n !== 5 && r.n !== 11).map((r) => `event|k|${(r as any).id}`).sort());
    // A permanent refusal is the record's fault, not the sink's: the breaker stays closed.
    const dead = outcomes[5]!;
    expect(dead.status === "dead" && dead.error).toContain("payload refused");
  });

  test("a failure that names its record: the ones before it are delivered, a permanent one is dead-lettered", async () => {
    const transient = new FakeSink("s");
    transient.deliver = async (records) => {
      transient.calls.push(records);
      throw new SinkError("partition leader moved", false, 3);
    };
    const t = await channel(transient).deliver(recs(6), () => 0);
    expect(t.map((o) => o.status)).toEqual(["delivered", "delivered", "delivered", "pending", "pending", "pending"]);

    const permanent = new FakeSink("s");
    let call = 0;
    permanent.deliver = async (records) => {
      permanent.calls.push(records);
      if (call++ === 0) throw new SinkError("record too large", true, 2);
    };
    const p = await channel(permanent).deliver(recs(6), () => 0);
    expect(p.map((o) => o.status)).toEqual(["delivered", "delivered", "dead", "delivered", "delivered", "delivered"]);
    expect(permanent.calls.map((c) => c.map((r) => r.n))).toEqual([[0, 1, 2, 3, 4, 5], [3, 4, 5]]);
  });

  test("a batch the sink finds too large is split until the parts fit: all delivered, no failure counted", async () => {
    const sink = new FakeSink("s");
    sink.maxRecords = 3;
    const ch = channel(sink);
    const outcomes = await ch.deliver(recs(10), () => 0);
    expect(outcomes.map((o) => o.status)).toEqual(Array(10).fill("delivered"));
    expect(sink.eventIds()).toEqual(recs(10).map((r) => (r as { id: string }).id));
    expect(sink.calls.map((c) => c.length)).toEqual([10, 5, 3, 2, 5, 3, 2]);
    expect(ch.status()).toMatchObject({ transientFailures: 0, deadLettered: 0, consecutiveFailures: 0, breaker: "closed" });
    expect(ch.readyAt()).toBe(0);
  });

  test("a record too large on its own is dead-lettered alone; what the sink took before it stays taken", async () => {
    const sink = new FakeSink("s");
    sink.huge = (r) => r.n === 6;
    const outcomes = await channel(sink).deliver(recs(9), () => 0);
    expect(outcomes.map((o) => o.status)).toEqual(["delivered", "delivered", "delivered", "delivered", "delivered", "delivered", "dead", "delivered", "delivered"]);
    const dead = outcomes[6]!;
    expect(dead.status === "dead" && dead.error).toContain("413");

    // A sink that says where it stopped (a later request of several): the records before it are not sent again.
    const partial = new FakeSink("p");
    let call = 0;
    partial.deliver = async (records) => {
      partial.calls.push(records);
      if (call++ === 0) throw new SinkError("kafka t: record 0: 413 larger than max.request.size", false, 4, true);
    };
    const p = await channel(partial).deliver(recs(8), () => 0);
    expect(p.map((o) => o.status)).toEqual(Array(8).fill("delivered"));
    expect(partial.calls.map((c) => c.map((r) => r.n))).toEqual([[0, 1, 2, 3, 4, 5, 6, 7], [4, 5], [6, 7]]);
  });

  test("dead letters are counted once: a poison record found by bisection, then the rest at the end of the budget", async () => {
    const sink = new FakeSink("s");
    sink.deliver = async (records) => {
      if (records.some((r) => r.n === 1)) throw new SinkError("payload refused", true);
      if (records.some((r) => r.n === 3)) throw new SinkError("connection reset", false);
    };
    const ch = channel(sink, { retryBudgetMs: 0 });
    const outcomes = await ch.deliver(recs(4), () => 0);
    expect(outcomes.map((o) => o.status)).toEqual(["delivered", "dead", "dead", "dead"]);
    expect(ch.status()).toMatchObject({ delivered: 1, deadLettered: 3 });
  });

  test("after the retry budget the pending records are dead-lettered, naming the last error", async () => {
    const sink = new FakeSink("s");
    sink.down = 1_000;
    const ch = channel(sink, { retryBudgetMs: 10_000, breakerThreshold: 1_000 });
    let now = 0;
    let outcomes = await ch.deliver(recs(3), () => now);
    while (outcomes.every((o) => o.status === "pending")) {
      now = Math.max(ch.readyAt(), now + 1);
      outcomes = await ch.deliver(recs(3), () => now);
    }
    expect(now).toBeGreaterThanOrEqual(10_000);
    for (const o of outcomes) {
      expect(o.status).toBe("dead");
      expect(o.status === "dead" && o.error).toMatch(/retry budget of 10000 ms exhausted after \d+ attempts: s: connection refused/);
    }
  });

  test("unknown errors count as transient", async () => {
    const sink = new FakeSink("s");
    sink.deliver = async () => {
      throw new TypeError("fetch failed");
    };
    const outcomes = await channel(sink).deliver(recs(2), () => 0);
    expect(outcomes.map((o) => o.status)).toEqual(["pending", "pending"]);
    expect(channel(sink).status().lastError).toBeNull();
  });
});

describe("CircuitBreaker", () => {
  test("successes reset the count of consecutive failures", () => {
    const b = new CircuitBreaker(3, 1_000);
    b.failure(0);
    b.failure(0);
    b.success();
    b.failure(0);
    b.failure(0);
    expect(b.state).toBe("closed");
    b.failure(5);
    expect(b.state).toBe("open");
    expect(b.readyAt()).toBe(1_005);
    expect(b.beforeAttempt(1_004)).toBe(false);
    expect(b.beforeAttempt(1_005)).toBe(true);
    expect(b.state).toBe("half_open");
  });
});

describe("settlements", () => {
  const rec = (key: string, n: number): OutboxRecord => ({ kind: "event", n, key, id: `${key}${n}`, type: "t", ts: n, receivedAt: 0, late: false });

  test("per key, in batch order, up to each key's first record still pending", () => {
    const batch = [rec("a", 3), rec("b", 0), rec("a", 4), rec("b", 1), rec("a", 5)];
    const outcomes: Outcome[] = [
      { status: "delivered" },
      { status: "dead", error: "refused", attempts: 1 },
      { status: "pending" },
      { status: "delivered" },
      { status: "delivered" },
    ];
    expect(settlements(batch, outcomes)).toEqual([
      { key: "a", from: 3, upTo: 4, dead: [] },
      { key: "b", from: 0, upTo: 2, dead: [{ n: 0, error: "refused", attempts: 1 }] },
    ]);
  });

  test("a settlement made against an actor that was rebuilt since (cursor behind it) is dropped: the gap goes out again", () => {
    const outbox = new Outbox(["s"]);
    for (let n = 0; n < 6; n++) outbox.append({ kind: "event", key: "a", id: `a${n}`, type: "t", ts: n, receivedAt: 0, late: false });
    outbox.markDurable();
    applySettlement(outbox, "s", { key: "a", from: 4, upTo: 6, dead: [] }, 0);
    expect(outbox.position("s")).toBe(0);
    applySettlement(outbox, "s", { key: "a", from: 0, upTo: 2, dead: [{ n: 1, error: "refused", attempts: 1 }] }, 0);
    expect(outbox.position("s")).toBe(2);
    expect(outbox.deadLetters().map((d) => d.record.n)).toEqual([1]);
    // Applying it again changes nothing.
    applySettlement(outbox, "s", { key: "a", from: 0, upTo: 2, dead: [{ n: 1, error: "refused", attempts: 1 }] }, 0);
    expect(outbox.deadLetters()).toHaveLength(1);
  });
});

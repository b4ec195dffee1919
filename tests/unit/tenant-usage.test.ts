import { describe, expect, test } from "bun:test";
import type { Event } from "../../src/actor/event.ts";
import { PROCESS_ROW } from "../../src/actor/layout.ts";
import { actorName, splitActorName } from "../../src/actor/tenant.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { ProcessHost } from "../../src/hosts/process/host.ts";
import { QuotaError } from "../../src/http/gateway.ts";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { fakeEnv, SeededRandom } from "../support/fake-env.ts";
import { FlakyStore } from "../support/flaky-store.ts";

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
// Short horizons, so that checkpoints also delete rows (expired dedupe segments, purged closed windows).
const config: Config = {
  ...DEFAULT_CONFIG,
  windows: [parseWindowSpec("1m") as WindowSpec],
  maxActorsInMemory: 5,
  checkpointIntervalMs: 500,
  dedupeHorizonMs: 30_000,
  closedRetentionMs: 30_000,
  idleTimeoutMs: 5_000,
};
const TENANTS = ["default", "acme", "zeta"];

function host(store: FlakyStore, overrides: Partial<Config> = {}, at = T0) {
  const fake = fakeEnv(at);
  const runtime = new ProcessHost({ store, config: { ...config, ...overrides }, clock: fake.clock, random: fake.random, timers: fake.timers });
  const ingest = async (events: Event[]) => {
    const pending = runtime.ingest(events);
    fake.timers.advance(0);
    return pending;
  };
  return { runtime, ingest, fake };
}

const ev = (tenant: string, key: string, id: string, ts = T0): Event => ({ id, assigned: false, type: "click", key: actorName(tenant, key), ts, value: 1 });

/** What the store holds, counted from its rows: keys (progress rows) and the bytes of each tenant's actor rows. */
function counted(store: FlakyStore) {
  const usage = new Map<string, { keys: number; bytes: number }>(TENANTS.map((t) => [t, { keys: 0, bytes: 0 }]));
  for (const [row] of store.list(PROCESS_ROW.progressPrefix)) usage.get(splitActorName(decodeURIComponent(row.slice(2))).tenant)!.keys++;
  for (const [row, value] of store.list(PROCESS_ROW.actorsPrefix)) {
    const name = decodeURIComponent(row.slice(2, row.indexOf("/", 2)));
    usage.get(splitActorName(name).tenant)!.bytes += row.length + value.length;
  }
  return usage;
}

describe("tenant usage (process host)", () => {
  test("keys and bytes stay equal to what the store holds, through evictions, failed commits and restarts", async () => {
    const store = new FlakyStore();
    let deletes = 0;
    const write = store.write.bind(store);
    store.write = (puts, dels) => {
      deletes += dels.filter((d) => d.startsWith(PROCESS_ROW.actorsPrefix)).length;
      write(puts, dels);
    };
    const random = new SeededRandom(7);
    let { runtime, ingest, fake } = host(store);
    let seq = 0;
    for (let round = 0; round < 300; round++) {
      const tenant = TENANTS[random.int(TENANTS.length)]!;
      const now = fake.clock.now();
      const events = Array.from({ length: 1 + random.int(20) }, () => ev(tenant, `k${random.int(12)}`, `e${seq++}`, now - random.int(5_000)));
      if (random.chance(0.05)) store.failures = 1;
      await ingest(events).catch((e) => expect((e as Error).name).toBe("StorageError"));
      fake.timers.advance(random.int(3_000));
      if (random.chance(0.03)) {
        await runtime.close();
        ({ runtime, ingest, fake } = host(store, {}, fake.clock.now()));
      }
    }
    await runtime.close();
    const truth = counted(store);
    for (const tenant of TENANTS) {
      expect(runtime.usage.get(tenant), tenant).toEqual(truth.get(tenant)!);
      expect(JSON.parse(store.get(PROCESS_ROW.usage(tenant))!), tenant).toEqual(truth.get(tenant)!);
    }
    expect(truth.get("acme")!.keys).toBeGreaterThan(5);
    expect(deletes).toBeGreaterThan(0);
    // A restarted host reads the same; one on a store from before usage rows counts it once, the same.
    expect(host(store).runtime.usage.get("acme")).toEqual(truth.get("acme")!);
    store.write([], [PROCESS_ROW.usageVersion, ...TENANTS.map((t) => PROCESS_ROW.usage(t))]);
    const rebuilt = host(store).runtime;
    for (const tenant of TENANTS) expect(rebuilt.usage.get(tenant), tenant).toEqual(truth.get(tenant)!);
  });

  test("a key created before a crash counts once: its usage row commits with its journal row", async () => {
    const store = new FlakyStore();
    const { ingest } = host(store, { checkpointIntervalMs: 60_000 });
    await ingest([ev("acme", "a", "1"), ev("acme", "b", "2")]);
    // No close(): the process dies with both actors only in the journal.
    const again = host(store, { checkpointIntervalMs: 60_000 });
    expect(again.runtime.usage.get("acme").keys).toBe(2);
    await again.ingest([ev("acme", "a", "3")]);
    expect(again.runtime.usage.get("acme").keys).toBe(2);
  });

  test("at the quota of keys a request that names a new key is refused whole; one with known keys is not", async () => {
    const store = new FlakyStore();
    const limits = { tenantMaxKeys: { byTenant: new Map([["acme", 2]]) } };
    const { runtime, ingest } = host(store, limits);
    await ingest([ev("acme", "a", "1"), ev("acme", "b", "2")]);
    const refused = await ingest([ev("acme", "a", "3"), ev("acme", "c", "4")]).catch((e) => e);
    expect(refused).toBeInstanceOf(QuotaError);
    expect(refused).toMatchObject({ quota: "keys", limit: 2, used: 2 });
    expect(await runtime.state(actorName("acme", "a"))).toMatchObject({ totals: { events: 1 } });
    expect(await runtime.state(actorName("acme", "c"))).toBeNull();
    expect((await ingest([ev("acme", "a", "5")]))[0]!.status).toBe("accepted");
    expect((await ingest([ev("zeta", "c", "6")]))[0]!.status).toBe("accepted"); // other tenants: no quota
    expect(runtime.usage.get("acme").keys).toBe(2);
  });

  test("over the quota of bytes, once a checkpoint counted them, every request of the tenant is refused", async () => {
    const store = new FlakyStore();
    const { runtime, ingest, fake } = host(store, { tenantMaxBytes: { all: 2_000, byTenant: new Map() } });
    let n = 0;
    const batch = () => Array.from({ length: 50 }, () => ev("acme", "a", `id-${n++}-${"x".repeat(40)}`));
    for (let i = 0; i < 3; i++) await ingest(batch());
    fake.timers.advance(1_000); // the checkpoint
    expect(runtime.usage.get("acme").bytes).toBeGreaterThan(2_000);
    const refused = await ingest(batch()).catch((e) => e);
    expect(refused).toMatchObject({ quota: "bytes", limit: 2_000 });
    expect((await ingest([ev("zeta", "z", "1")]))[0]!.status).toBe("accepted");
  });
});

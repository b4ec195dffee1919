/**
 * Forged credentials (issue 10) against the Bun server as its own process: 10,000 requests on every
 * guarded route with truncated, extended, overlong, mixed-case, substituted and wrong-scheme keys,
 * plus real keys without the route's scope or origin. Every answer must be 401 or 403, and nothing
 * may be applied. Replay with CRED_SEED=<seed>.
 */
import { expect, test } from "bun:test";
import { BUN_SERVER, processTarget } from "../support/targets.ts";
import { bearer, TEST_KEY_LINES, TEST_KEYS, type KeyName } from "../support/api-keys.ts";
import { Rng } from "./rng.ts";

const SEED = Number(process.env.CRED_SEED ?? 0x6b66100a);
const RUNS = 10_000;
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const REAL = Object.values(TEST_KEYS);

/** A credential that is not a valid key: derived from a real one, or made up. */
function forged(rng: Rng): { header: string; kind: string } {
  const key = rng.pick(REAL);
  const chars = (n: number) => Array.from({ length: n }, () => rng.pick([...B64])).join("");
  const kind = rng.pick(["truncated", "extended", "mixed-case", "substituted", "overlong", "random", "scheme", "no-scheme", "hash"]);
  let token: string;
  switch (kind) {
    case "truncated":
      token = key.slice(0, rng.int(key.length));
      break;
    case "extended":
      token = key + chars(1 + rng.int(8));
      break;
    case "mixed-case": {
      const at = [...key].map((c, i) => [c, i] as const).filter(([c]) => c.toLowerCase() !== c.toUpperCase());
      const [c, i] = rng.pick(at);
      token = key.slice(0, i) + (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) + key.slice(i + 1);
      break;
    }
    case "substituted": {
      const i = rng.int(key.length);
      const c = rng.pick([...B64].filter((x) => x !== key[i]));
      token = key.slice(0, i) + c + key.slice(i + 1);
      break;
    }
    case "overlong":
      token = key.repeat(2 + rng.int(120));
      break;
    case "hash":
      token = new Bun.CryptoHasher("sha256").update(key).digest("hex");
      break;
    case "random":
      token = chars(rng.int(80));
      break;
    default:
      token = key;
  }
  if (kind === "scheme") return { header: `${rng.pick(["Basic", "Token", "Bearer:", "Bearerx", "ApiKey"])} ${token}`, kind };
  if (kind === "no-scheme") return { header: token, kind };
  return { header: `${rng.pick(["Bearer", "bearer", "BEARER"])} ${token}`, kind };
}

test(
  `forged credentials: 10,000 requests answered 401/403, nothing applied (seed ${SEED})`,
  async () => {
    const target = processTarget(BUN_SERVER, { KEYFLOW_API_KEYS: TEST_KEY_LINES });
    await target.start();
    try {
      const rng = new Rng(SEED);
      const victim = `victim-${SEED}`;
      const seed = await target.fetch("/v1/events", {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer("all") },
        body: JSON.stringify({ event_id: "v1", event_type: "purchase", key: victim, value: 1, timestamp: Date.now() - 3_600_000 }),
      });
      expect(seed.status).toBe(202);
      const stateOf = async (key: string) => {
        const res = await target.fetch(`/v1/actors/${encodeURIComponent(key)}`, { headers: bearer("all") });
        return { status: res.status, body: res.status === 200 ? ((await res.json()) as any) : null };
      };
      const before = await stateOf(victim);
      const fresh = Array.from({ length: 40 }, (_, i) => `forged-${SEED}-${i}`);
      const routes = [
        { scope: "ingest", method: "POST", path: () => "/v1/events" },
        { scope: "read", method: "GET", path: (k: string) => `/v1/actors/${k}` },
        { scope: "read", method: "GET", path: (k: string) => `/v1/actors/${k}/windows` },
        { scope: "admin", method: "GET", path: (k: string) => `/v1/actors/${k}/dlq` },
        { scope: "admin", method: "POST", path: (k: string) => `/v1/actors/${k}/dlq/replay` },
        { scope: "admin", method: "GET", path: (k: string) => `/v1/actors/${k}/outbox` },
      ];
      const wrongScope: Record<string, KeyName[]> = { ingest: ["read", "admin", "public"], read: ["ingest", "admin", "public"], admin: ["ingest", "read", "public"] };
      const requests = Array.from({ length: RUNS }, (_, n) => {
        const route = rng.pick(routes);
        const key = rng.chance(0.5) ? victim : rng.pick(fresh);
        // One in ten: a real key without this route's scope (or the public key without its origin).
        const real = rng.chance(0.1) ? rng.pick(wrongScope[route.scope]!) : undefined;
        const { header, kind } = real ? { header: `Bearer ${TEST_KEYS[real]}`, kind: `real ${real} key` } : forged(rng);
        const body = route.method === "POST" && route.scope === "ingest"
          ? JSON.stringify({ event_id: `f${n}`, event_type: "purchase", key, value: 1000, timestamp: Date.now() - 3_600_000 })
          : undefined;
        return { n, route, key, header, kind, body, expected: real ? 403 : 401 };
      });
      const failures: string[] = [];
      let next = 0;
      const worker = async () => {
        while (next < requests.length) {
          const r = requests[next++]!;
          const res = await target.fetch(r.route.path(r.key), {
            method: r.route.method,
            headers: { "content-type": "application/json", authorization: r.header },
            body: r.body,
          });
          const text = await res.text();
          if (res.status !== r.expected || !text.includes('"error"')) {
            failures.push(`#${r.n} ${r.route.method} ${r.route.path(r.key)} with ${r.kind} (${JSON.stringify(r.header.slice(0, 60))}): ${res.status} ${text.slice(0, 200)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      if (failures.length) throw new Error(`${failures.length} of ${RUNS} answers were wrong (replay: CRED_SEED=${SEED} bun test tests/fuzz/credentials.test.ts):\n${failures.slice(0, 20).join("\n")}`);
      for (const key of fresh) expect((await stateOf(key)).status, key).toBe(404);
      const after = await stateOf(victim);
      expect(after.body.totals).toEqual(before.body.totals);
      const dlq = await target.fetch(`/v1/actors/${victim}/outbox`, { headers: bearer("all") });
      expect(dlq.status).toBe(200);
      const kinds = new Set(requests.map((r) => r.kind.split(" ")[0]));
      expect(kinds.size).toBeGreaterThanOrEqual(10);
      console.log(`forged credentials: ${RUNS} requests (${[...kinds].join(", ")}), every answer 401/403, nothing applied (seed ${SEED})`);
    } finally {
      await target.stop();
    }
  },
  300_000,
);

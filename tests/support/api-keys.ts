import { createHash } from "node:crypto";

/**
 * The API keys every contract host runs with (KEYFLOW_API_KEYS): two tenants, one key per scope,
 * a key with every scope, and a public key bound to one origin. Test keys only: never deployed.
 */
export const SHOP_ORIGIN = "https://shop.example";

const keys = {
  all: { tenant: "tenant-a", scopes: "ingest,read,admin" },
  ingest: { tenant: "tenant-a", scopes: "ingest" },
  read: { tenant: "tenant-a", scopes: "read" },
  admin: { tenant: "tenant-a", scopes: "admin" },
  public: { tenant: "tenant-a", scopes: "ingest", origins: SHOP_ORIGIN },
  otherTenant: { tenant: "tenant-b", scopes: "ingest,read,admin" },
  /** Tenants with quotas (QUOTA_ENV): 3 keys; 1 byte, so the first checkpoint puts it over. */
  fewKeys: { tenant: "tenant-q", scopes: "ingest,read" },
  fewBytes: { tenant: "tenant-r", scopes: "ingest,read" },
  /** An operator's key for GET /metrics (all tenants). */
  metrics: { tenant: "default", scopes: "metrics" },
} as const;

export type KeyName = keyof typeof keys;

/** The key text of each test key. */
export const TEST_KEYS = Object.fromEntries(Object.keys(keys).map((name) => [name, `kf_test_${name}_0123456789abcdefghij`])) as Record<KeyName, string>;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

export const TEST_KEY_LINES = Object.entries(keys)
  .map(([name, k]) => [k.tenant, k.scopes, sha256(TEST_KEYS[name as KeyName]), ...("origins" in k ? [k.origins] : [])].join(":"))
  .join("\n");

/** The quotas every contract host runs with: only the quota tenants have any. */
export const QUOTA_ENV = { KEYFLOW_TENANT_MAX_KEYS: "tenant-q=3", KEYFLOW_TENANT_MAX_BYTES: "tenant-r=1" };

export const bearer = (name: KeyName) => ({ authorization: `Bearer ${TEST_KEYS[name]}` });

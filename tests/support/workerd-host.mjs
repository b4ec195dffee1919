// Runs the keyflow Worker in workerd through wrangler's programmatic API (unstable_startWorker),
// for tests. Node, not Bun: wrangler's local proxy needs undici's dispatcher, which Bun's fetch ignores.
// Env: HOST, PORT (0 = any free port), KEYFLOW_DATA_DIR (persisted Durable Object state), other KEYFLOW_* (Worker vars).
import { unstable_startWorker } from "wrangler";

// Offline: do not try to fetch the Request.cf template from Cloudflare.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
const root = new URL("../..", import.meta.url).pathname;
const bindings = {};
for (const [name, value] of Object.entries(process.env)) {
  if (name.startsWith("KEYFLOW_") && name !== "KEYFLOW_DATA_DIR") bindings[name] = { type: "plain_text", value };
}
// Tests of the rate limiting binding: KEYFLOW_TEST_RATE_LIMIT=<n> declares KEYFLOW_RATE_LIMITER with n requests per 10 s.
if (process.env.KEYFLOW_TEST_RATE_LIMIT) {
  delete bindings.KEYFLOW_TEST_RATE_LIMIT;
  bindings.KEYFLOW_RATE_LIMITER = { type: "ratelimit", namespace_id: "1001", simple: { limit: Number(process.env.KEYFLOW_TEST_RATE_LIMIT), period: 10 } };
}
// KEYFLOW_TEST_ANALYTICS=<dataset> declares the Analytics Engine binding KEYFLOW_ANALYTICS (local writes are accepted, not queryable).
if (process.env.KEYFLOW_TEST_ANALYTICS) {
  delete bindings.KEYFLOW_TEST_ANALYTICS;
  bindings.KEYFLOW_ANALYTICS = { type: "analytics_engine", dataset: process.env.KEYFLOW_TEST_ANALYTICS };
}
// KEYFLOW_TEST_CONFIG_FILE=<path> bundles that keyflow.config.json, as wrangler.toml's [alias] "keyflow-config" would.
const configFile = process.env.KEYFLOW_TEST_CONFIG_FILE;
delete bindings.KEYFLOW_TEST_CONFIG_FILE;
const worker = await unstable_startWorker({
  config: `${root}wrangler.toml`,
  ...(configFile ? { build: { alias: { "keyflow-config": configFile } } } : {}),
  bindings,
  dev: {
    server: { hostname: process.env.HOST ?? "127.0.0.1", port: Number(process.env.PORT ?? 8787) },
    inspector: false,
    persist: process.env.KEYFLOW_DATA_DIR ?? `${root}.wrangler/state`,
    logLevel: process.env.KEYFLOW_TEST_WRANGLER_LOG_LEVEL ?? "warn",
    watch: false,
  },
});
await worker.ready;
const url = await worker.url;
console.log(`keyflow workers (workerd) listening on ${url.origin}`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await worker.dispose();
    process.exit(0);
  });
}

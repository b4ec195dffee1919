// Runs tests/support/client-worker/worker.ts in workerd (wrangler's unstable_startWorker), on Node
// for the same reason as workerd-host.mjs. Env: PORT, KEYFLOW_URL, KEYFLOW_API_KEY (Worker vars).
import { unstable_startWorker } from "wrangler";

process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
const worker = await unstable_startWorker({
  config: new URL("./wrangler.toml", import.meta.url).pathname,
  bindings: {
    KEYFLOW_URL: { type: "plain_text", value: process.env.KEYFLOW_URL ?? "" },
    KEYFLOW_API_KEY: { type: "plain_text", value: process.env.KEYFLOW_API_KEY ?? "" },
  },
  dev: { server: { hostname: "127.0.0.1", port: Number(process.env.PORT ?? 0) }, inspector: false, logLevel: "warn", watch: false, persist: false },
});
await worker.ready;
console.log(`client worker (workerd) listening on ${(await worker.url).origin}`);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await worker.dispose();
    process.exit(0);
  });
}

import { selfHosted, serverSettingsOrExit } from "./self-hosted.ts";
import { openBunSqlite } from "./bun-sqlite.ts";
import { bunServeOptions } from "./bun-serve.ts";

const settings = serverSettingsOrExit(process.env);
const sha256 = { into: (text: string, out: Uint8Array) => void Bun.CryptoHasher.hash("sha256", text, out) };
const host = selfHosted(settings, openBunSqlite, "bun", sha256);
for (const warning of host.warnings) console.warn(warning);
const server = Bun.serve(bunServeOptions(settings.host, settings.port, host.app.fetch));
console.log(`keyflow ${host.describe} listening on http://${server.hostname}:${server.port}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    server.stop(true);
    await host.shutdown();
    process.exit(0);
  });
}

import { exitOnConfigError, selfHosted } from "./self-hosted.ts";
import { serverSettings } from "../settings/env.ts";
import { openBunSqlite } from "./bun-sqlite.ts";
import { bunServeOptions } from "./bun-serve.ts";

let settings;
try {
  settings = serverSettings(process.env);
} catch (error) {
  exitOnConfigError(error);
}
const host = selfHosted(settings, openBunSqlite, "bun");
const server = Bun.serve(bunServeOptions(settings.host, settings.port, host.app.fetch));
console.log(`keyflow ${host.describe} listening on http://${server.hostname}:${server.port}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    server.stop(true);
    await host.shutdown();
    process.exit(0);
  });
}

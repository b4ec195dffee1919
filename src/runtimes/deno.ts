import process from "node:process";
import { createHash } from "node:crypto";
import { selfHosted, serverSettingsOrExit } from "./self-hosted.ts";
import { openNodeSqlite } from "./deno-sqlite.ts";
import { internalErrorResponse } from "../http/errors.ts";

declare const Deno: {
  serve(
    options: {
      hostname: string;
      port: number;
      onListen?: (addr: { hostname: string; port: number }) => void;
      onError?: (error: unknown) => Response | Promise<Response>;
    },
    handler: (request: Request) => Response | Promise<Response>,
  ): { shutdown(): Promise<void> };
  addSignalListener(signal: "SIGINT" | "SIGTERM", handler: () => void): void;
};

const settings = serverSettingsOrExit(process.env);
const sha256 = { into: (text: string, out: Uint8Array) => out.set(createHash("sha256").update(text).digest()) };
const host = selfHosted(settings, openNodeSqlite, "deno", sha256);
for (const warning of host.warnings) console.warn(warning);
const server = Deno.serve(
  {
    hostname: settings.host,
    port: settings.port,
    onListen: (addr) => console.log(`keyflow ${host.describe} listening on http://${addr.hostname}:${addr.port}`),
    onError: internalErrorResponse,
  },
  host.app.fetch,
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    await server.shutdown();
    await host.shutdown();
    process.exit(0);
  });
}

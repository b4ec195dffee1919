import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "../support/process.ts";

// The tree is the architecture: each layer imports only the layers below it, and no module imports
// itself back through others. Type-only imports count: they are dependencies too.

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? tsFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

const files = [...tsFiles(join(ROOT, "src")), ...tsFiles(join(ROOT, "actors"))];
const rel = (file: string) => relative(ROOT, file);
const SPECIFIER = /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|(?:^|\n)\s*import\s+["']([^"']+)["']/g;

/** Every file's imports: repository-relative paths for local modules, bare specifiers for packages. */
const imports = new Map<string, string[]>();
for (const file of files) {
  const specs: string[] = [];
  for (const m of readFileSync(file, "utf8").matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    specs.push(spec.startsWith(".") ? rel(resolve(dirname(file), spec)) : spec);
  }
  imports.set(rel(file), specs);
}

const layerOf = (path: string) => /^src\/(actor|ports|delivery|auth|metrics|logging|reporting|live|hosts|http|settings|sinks|runtimes|sim|client|cli)\//.exec(path)?.[1] ?? path.split("/")[0]!;

/** Which layers each layer may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  ports: [],
  actor: ["ports"],
  delivery: ["actor", "ports"],
  // API keys, tenants' limits: read from the environment like the sinks' settings are.
  auth: ["actor", "ports", "settings"],
  // The Prometheus registry and keyflow's metrics: plain data, fed by the HTTP layer and the hosts.
  metrics: [],
  logging: [],
  // Unexpected errors to Sentry: the one place toucan-js is used.
  reporting: [],
  // Live views: a key's records as server-sent events, fed by the hosts.
  live: ["actor", "ports", "delivery"],
  http: ["actor", "ports", "delivery", "auth", "metrics", "logging", "reporting", "settings", "src/version.ts"],
  settings: ["actor", "delivery", "ports", "auth", "logging", "sinks", "hosts"],
  // metrics: the Durable Object host's reporters and the metrics hub (Workers) sum keyflow's metrics.
  hosts: ["actor", "ports", "delivery", "live", "metrics", "http", "settings"],
  sinks: ["actor", "ports", "delivery", "settings"],
  runtimes: ["actor", "ports", "delivery", "auth", "metrics", "logging", "reporting", "http", "settings", "sinks", "hosts", "actors", "src/version.ts"],
  actors: ["actor", "ports", "delivery", "live", "logging", "http", "settings", "sinks", "hosts"],
  sim: ["actor", "ports", "delivery", "http", "settings", "hosts", "sim"],
  // keyflow/client: a package of its own (browsers, Workers, …), so it imports nothing of the server.
  client: [],
  // The keyflow command: the server (serve), the sinks (migrate), API keys, and the client for the rest.
  cli: ["actor", "auth", "delivery", "settings", "sinks", "runtimes", "client", "src/version.ts"],
};

/** Packages a layer may use. Runtime APIs (bun:, node:, cloudflare:) and sink clients stay out of the core. */
const PACKAGES: Record<string, RegExp> = {
  ports: /^$/,
  actor: /^zod$/,
  delivery: /^$/,
  auth: /^$/,
  metrics: /^$/,
  logging: /^$/,
  reporting: /^toucan-js$/,
  live: /^$/,
  // zod for the response schemas; @hono/zod-openapi turns them and the routes into GET /openapi.json.
  http: /^(hono|hono\/.+|zod|@hono\/zod-openapi)$/,
  settings: /^zod$/,
  hosts: /^$/,
  // Native clients (ioredis, postgres.js, kafkajs) only for the self-hosted server: src/sinks/native.ts.
  sinks: /^(zod|@upstash\/redis|@neondatabase\/serverless|ioredis|postgres|kafkajs(\/src\/network\/requestQueue\/index\.js)?)$/,
  runtimes: /^(hono|bun:sqlite|node:(fs|fs\/promises|path|process|sqlite|crypto))$/,
  // keyflow-config: the keyflow.config.json wrangler bundles (wrangler.toml [alias]; actors/config-file.ts).
  actors: /^(cloudflare:workers|keyflow-config)$/,
  sim: /^$/,
  client: /^$/,
  cli: /^node:(util|fs|path|crypto|stream|zlib)$/,
};

describe("the tree's layering", () => {
  test("no import cycles, type-only imports included", () => {
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "open") {
        cycles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
        return;
      }
      state.set(file, "open");
      for (const dep of imports.get(file) ?? []) if (imports.has(dep)) visit(dep, [...path, file]);
      state.set(file, "done");
    };
    for (const file of imports.keys()) visit(file, []);
    expect(cycles).toEqual([]);
    expect(imports.size).toBeGreaterThan(50);
  });

  test("each layer imports only the layers below it", () => {
    const wrong: string[] = [];
    for (const [file, deps] of imports) {
      const layer = layerOf(file);
      for (const dep of deps.filter((d) => imports.has(d) || d.startsWith("src/"))) {
        const target = layerOf(dep);
        if (target !== layer && !ALLOWED[layer]?.includes(target) && !ALLOWED[layer]?.includes(dep)) wrong.push(`${file} imports ${dep}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test("Hono only in src/http; runtime APIs only in src/runtimes and actors/; each sink's client only in its folder", () => {
    const wrong: string[] = [];
    for (const [file, deps] of imports) {
      const layer = layerOf(file);
      for (const dep of deps.filter((d) => !imports.has(d) && !d.startsWith("src/") && !d.startsWith("actors/"))) {
        if (!PACKAGES[layer]?.test(dep)) wrong.push(`${file} imports ${dep}`);
        const sinkOf = {
          "@upstash/redis": "src/sinks/redis/",
          ioredis: "src/sinks/redis/",
          "@neondatabase/serverless": "src/sinks/postgres/",
          postgres: "src/sinks/postgres/",
          kafkajs: "src/sinks/kafka/",
          "kafkajs/src/network/requestQueue/index.js": "src/sinks/kafka/",
        }[dep];
        if (sinkOf && !file.startsWith(sinkOf)) wrong.push(`${file} imports ${dep}, the client of ${sinkOf}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test("the actor, ports, delivery, auth and metrics layers read no runtime global (Bun, Deno, process, caches)", () => {
    const offenders = [...imports.keys()]
      .filter((file) => ["actor", "ports", "delivery", "auth", "metrics", "logging", "live"].includes(layerOf(file)) && file !== "src/ports/system.ts")
      .filter((file) => {
        const code = readFileSync(join(ROOT, file), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
        return /\b(Bun|Deno|process)\.|\bcaches\b/.test(code);
      });
    expect(offenders).toEqual([]);
  });
});

// API keys: `npm run keys -- create --tenant acme --scopes ingest,read [--origins https://shop.example]`.
// Prints the new key once (keyflow keeps only its SHA-256) and the line to add to KEYFLOW_API_KEYS.
import { createHash, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { keyLine, newKeyText, parseApiKeys, SCOPES, type Scope } from "../src/auth/api-keys.ts";
import { DEFAULT_TENANT } from "../src/actor/tenant.ts";

const USAGE = `usage: npm run keys -- create [--tenant NAME] --scopes ${SCOPES.join(",")} [--origins https://a.example,https://*.b.example]

  --tenant   the tenant the key acts for (default "${DEFAULT_TENANT}"); [a-z0-9][a-z0-9_-]{0,62}
  --scopes   what the key may do: ingest (POST /v1/events), read (state, windows, late log),
             admin (outbox, dead letters, replays); comma-separated
  --origins  makes a public key for web pages: bound to these origins, scope ingest only

Prints the key once and its line; add the line to KEYFLOW_API_KEYS (lines separated by spaces or
newlines): in .env or the environment self-hosted, \`npx wrangler secret put KEYFLOW_API_KEYS\` on Workers.`;

function fail(message: string): never {
  console.error(`keyflow keys: ${message}\n\n${USAGE}`);
  process.exit(2);
}

const { positionals, values } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: { tenant: { type: "string", default: DEFAULT_TENANT }, scopes: { type: "string" }, origins: { type: "string" }, help: { type: "boolean" } },
    });
  } catch (error) {
    fail((error as Error).message);
  }
})();

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (positionals[0] !== "create" || positionals.length !== 1) fail(positionals.length ? `unknown command "${positionals.join(" ")}"` : "a command is required");
if (!values.scopes) fail("--scopes is required");

const origins = values.origins ? values.origins.split(",").map((o) => o.trim()) : null;
const key = newKeyText(new Uint8Array(randomBytes(32)), origins !== null);
const line = keyLine({
  tenant: values.tenant,
  scopes: values.scopes.split(",").map((s) => s.trim()) as Scope[],
  sha256Hex: createHash("sha256").update(key).digest("hex"),
  origins,
});
// The server's own parser checks the line, so the command never prints one the server refuses.
const { problems } = parseApiKeys(line);
if (problems.length) fail(problems.map((p) => p.replace(/^key 1: /, "")).join("; "));

console.log(`key (shown once; keyflow keeps only its hash):\n  ${key}\n`);
console.log(`line for KEYFLOW_API_KEYS:\n  ${line}`);
if (origins) console.log(`\nThis is a public key: it may only ingest, from ${origins.join(", ")}; it is safe to put in a web page.`);

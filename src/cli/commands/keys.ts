// API keys: `keyflow keys create --tenant acme --scopes ingest,read [--origins https://shop.example]`
// (and `npm run keys -- create …`, scripts/keys.ts). Prints the new key once (keyflow keeps only its
// SHA-256) and the line to add to KEYFLOW_API_KEYS.
import { createHash, randomBytes } from "node:crypto";
import { DEFAULT_TENANT } from "../../actor/tenant.ts";
import { keyLine, newKeyText, parseApiKeys, SCOPES, type Scope } from "../../auth/api-keys.ts";
import { parse, UsageError, writeLine, type Command } from "../io.ts";

/** The keys command; `invocation` is how its usage names it ("keyflow keys", "npm run keys --"). */
export function keysCommand(invocation = "keyflow keys"): Command {
  return {
    name: "keys",
    summary: "create an API key (printed once) and its KEYFLOW_API_KEYS line",
    usage: `usage: ${invocation} create [--tenant NAME] --scopes ${SCOPES.join(",")} [--origins https://a.example,https://*.b.example]

  --tenant   the tenant the key acts for (default "${DEFAULT_TENANT}"); [a-z0-9][a-z0-9_-]{0,62}
  --scopes   what the key may do: ingest (POST /v1/events), read (state, windows, late log),
             admin (outbox, dead letters, replays); comma-separated
  --origins  makes a public key for web pages: bound to these origins, scope ingest only

Prints the key once and its line; add the line to KEYFLOW_API_KEYS (lines separated by spaces or
newlines): in .env or the environment self-hosted, \`npx wrangler secret put KEYFLOW_API_KEYS\` on Workers.`,
    async run(argv, io) {
      const { positionals, values } = parse(argv, { tenant: { type: "string", default: DEFAULT_TENANT }, scopes: { type: "string" }, origins: { type: "string" } });
      if (positionals[0] !== "create" || positionals.length !== 1) throw new UsageError(positionals.length ? `unknown command "${positionals.join(" ")}"` : "a command is required");
      if (!values.scopes) throw new UsageError("--scopes is required");
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
      if (problems.length) throw new UsageError(problems.map((p) => p.replace(/^key 1: /, "")).join("; "));
      writeLine(io.stdout, `key (shown once; keyflow keeps only its hash):\n  ${key}\n`);
      writeLine(io.stdout, `line for KEYFLOW_API_KEYS:\n  ${line}`);
      if (origins) writeLine(io.stdout, `\nThis is a public key: it may only ingest, from ${origins.join(", ")}; it is safe to put in a web page.`);
      return 0;
    },
  };
}

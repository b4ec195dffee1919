// API keys: `npm run keys -- create --tenant acme --scopes ingest,read [--origins https://shop.example]`.
// The same command as `keyflow keys` (src/cli/commands/keys.ts), with its usage naming npm run keys.
import { keysCommand } from "../src/cli/commands/keys.ts";
import { exitWith, processIo, runCommand } from "../src/cli/main.ts";

await exitWith(await runCommand(keysCommand("npm run keys --"), process.argv.slice(2), processIo(false)));

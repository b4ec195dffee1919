// `npm start`: the self-hosted server on Bun (`keyflow serve` starts the same one).
import { startBunServer } from "./bun-server.ts";

await startBunServer(process.env).stopped;
process.exit(0);

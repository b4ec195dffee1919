import { neonConfig, Pool } from "@neondatabase/serverless";
import { PostgresSink } from "../../src/sinks/postgres/sink.ts";

/** The PostgreSQL of scripts/services.sh, reached as the sink reaches it: Neon driver through the WebSocket proxy. */
export const PG_URL = "postgres://postgres@127.0.0.1:5432/test";
export const WSPROXY = "127.0.0.1:6543/v1";

/** Creates the sink's tables (npm run migrate does the same) and returns a pool for checking them. */
export async function preparePostgres(): Promise<Pool> {
  neonConfig.wsProxy = (host, port) => `${WSPROXY}?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineConnect = false;
  const migrator = new PostgresSink({ url: PG_URL, wsProxy: WSPROXY, wsProxyTls: false, poolPerDelivery: false });
  await migrator.migrate();
  await migrator.close();
  return new Pool({ connectionString: PG_URL });
}

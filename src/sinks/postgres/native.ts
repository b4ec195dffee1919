import postgres from "postgres";
import { SinkError } from "../../delivery/sink.ts";
import { POOL_MAX, PostgresSink, type OpenPostgres, type PostgresSinkOptions } from "./sink.ts";

const TEXT_OID = 25;
/** Seconds an idle connection stays open. */
const IDLE_SECONDS = 60;

/**
 * postgres.js over TCP (or TLS, by the URL's sslmode): any PostgreSQL, no proxy, on the self-hosted
 * server (Bun, Deno, Node). The batch is the same one statement as through the Neon driver, sent as
 * it is (`unsafe`: the text is ours, the data goes in the values).
 *
 * Types are not fetched on connect (fetch_types: false): the values are JSON text and the statement
 * returns nothing to parse, and a backend killed while they were fetched rejected a promise nobody
 * held (porsager/postgres#1223). postgres.js reconnects by itself; a broken connection fails the
 * statement on it, and the delivery channel retries the batch.
 */
export const openPostgresJs: OpenPostgres = (opts, statementTimeoutMs) => {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const sql = postgres(opts.url, {
    max: statementTimeoutMs ? POOL_MAX : 1,
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    idle_timeout: IDLE_SECONDS,
    fetch_types: false,
    onnotice: () => undefined,
    // The server's bound on each statement (it cancels it, SQLSTATE 57014: transient); the timer below
    // also covers a connection that no longer answers at all.
    connection: statementTimeoutMs ? { statement_timeout: statementTimeoutMs } : {},
  });
  return {
    async query(text, values) {
      // As text (OID 25): the statement casts each to jsonb itself; as an unknown type postgres.js would
      // learn jsonb from the server and JSON-encode the JSON text once more.
      const pending = sql.unsafe(text, (values ?? []).map((value) => sql.typed(value, TEXT_OID)));
      if (!statementTimeoutMs) return await pending;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          pending.cancel();
          reject(new SinkError(`postgres: the batch took longer than ${statementTimeoutMs} ms (KEYFLOW_SINK_TIMEOUT)`, false));
        }, statementTimeoutMs);
      });
      try {
        return await Promise.race([pending, timedOut]);
      } finally {
        clearTimeout(timer);
      }
    },
    end: () => sql.end({ timeout: 1 }),
  };
};

/** The Postgres sink with postgres.js: KEYFLOW_POSTGRES_CLIENT=native, or a postgres:// URL that is not Neon's. */
export class NativePostgresSink extends PostgresSink {
  constructor(opts: PostgresSinkOptions) {
    super(opts, openPostgresJs);
  }
}

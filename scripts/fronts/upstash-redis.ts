/**
 * Upstash-REST-compatible front for a real redis-server (like serverless-redis-http), for local tests
 * of code that uses @upstash/redis.
 *
 *   bun scripts/fronts/upstash-redis.ts
 *
 * Env: UPSTASH_FRONT_PORT (8079; 0 picks a free port), UPSTASH_FRONT_HOST (127.0.0.1),
 * UPSTASH_FRONT_TOKEN ("keyflow-local-token"), REDIS_URL (redis://127.0.0.1:6379),
 * UPSTASH_FRONT_POOL (8 connections).
 *
 * Contract (shared/reference/sink-protocols.md §1.4):
 * - POST /            body ["SET","k","v"]            -> 200 {"result":...} | 400 {"error":...}
 * - POST /pipeline    body [["SET","a","1"],["GET","a"]] -> 200 [{"result":...}|{"error":...}, ...]
 * - POST /multi-exec  same body, run in MULTI/EXEC on one connection; EXECABORT -> 400 {"error"}
 * - Authorization: Bearer <token> (or ?_token=) else 401; Redis unreachable -> 500 {"error"}.
 * - Replies in RESP2 shapes; with `Upstash-Encoding: base64` every string (nested too, "OK" included)
 *   is the base64 of the raw reply bytes; integers, nulls and errors are not encoded.
 */
import { parseRedisUrl, RespError, RespPool, type Reply } from "./resp.ts";

const HOST = process.env.UPSTASH_FRONT_HOST || "127.0.0.1";
const PORT = Number(process.env.UPSTASH_FRONT_PORT ?? 8079);
const TOKEN = process.env.UPSTASH_FRONT_TOKEN || "keyflow-local-token";
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const POOL_SIZE = Number(process.env.UPSTASH_FRONT_POOL ?? 8);

const pool = new RespPool(parseRedisUrl(REDIS_URL), POOL_SIZE);

/** Commands whose replies do not fit request/response (they would hang a connection). */
const UNSUPPORTED = new Set(["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SYNC", "PSYNC"]);
/** Commands that change connection state: the connection is closed after the request, not pooled. */
const STATEFUL = new Set([
  "SELECT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "HELLO", "AUTH", "CLIENT", "RESET", "QUIT",
  "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "READONLY", "READWRITE",
]);
/** Not allowed inside /multi-exec: the front runs MULTI/EXEC itself. */
const TRANSACTION_CONTROL = new Set(["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"]);

class BadRequest extends Error {}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** One command from the body: a non-empty array of scalars, each turned into the string Redis gets. */
function toCommand(raw: unknown): string[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new BadRequest("ERR a command must be a non-empty JSON array");
  const args = raw.map((arg) => {
    if (typeof arg === "string") return arg;
    if (typeof arg === "number" || typeof arg === "boolean") return String(arg);
    if (arg === null) return "";
    return JSON.stringify(arg);
  });
  const name = args[0]!.toUpperCase();
  if (UNSUPPORTED.has(name)) throw new BadRequest(`ERR command '${args[0]}' is not supported by this front`);
  return args;
}

function toCommands(raw: unknown): string[][] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new BadRequest("ERR the body must be a non-empty JSON array of commands");
  }
  return raw.map(toCommand);
}

const utf8 = new TextDecoder();

/** RESP2 reply -> JSON value: strings (base64 if asked), integers, null, arrays; nested errors as text. */
function toJson(reply: Reply, base64: boolean): unknown {
  if (reply instanceof Uint8Array) {
    return base64 ? Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength).toString("base64") : utf8.decode(reply);
  }
  if (Array.isArray(reply)) return reply.map((item) => toJson(item, base64));
  if (reply instanceof RespError) return reply.message;
  return reply;
}

function toEntry(reply: Reply, base64: boolean): { result: unknown } | { error: string } {
  return reply instanceof RespError ? { error: reply.message } : { result: toJson(reply, base64) };
}

/** Borrows a pooled connection, sends the commands in order, returns the replies. */
async function run(commands: string[][]): Promise<Reply[]> {
  const conn = await pool.acquire();
  let reusable = !commands.some((c) => STATEFUL.has(c[0]!.toUpperCase()));
  try {
    return await conn.send(commands);
  } catch (err) {
    reusable = false;
    throw err;
  } finally {
    pool.release(conn, reusable);
  }
}

async function single(body: unknown, base64: boolean): Promise<Response> {
  const [reply] = await run([toCommand(body)]);
  if (reply instanceof RespError) return json({ error: reply.message }, 400);
  return json({ result: toJson(reply!, base64) });
}

async function pipeline(body: unknown, base64: boolean): Promise<Response> {
  const replies = await run(toCommands(body));
  return json(replies.map((reply) => toEntry(reply, base64)));
}

async function multiExec(body: unknown, base64: boolean): Promise<Response> {
  const commands = toCommands(body);
  for (const c of commands) {
    if (TRANSACTION_CONTROL.has(c[0]!.toUpperCase())) {
      throw new BadRequest(`ERR '${c[0]}' is not allowed inside /multi-exec`);
    }
  }
  // MULTI, the commands and EXEC go out in one write on one borrowed connection.
  const replies = await run([["MULTI"], ...commands, ["EXEC"]]);
  const exec = replies[replies.length - 1]!;
  if (replies[0] instanceof RespError) return json({ error: replies[0].message }, 400);
  if (exec instanceof RespError || exec === null) {
    const queued = replies.slice(1, -1).find((r): r is RespError => r instanceof RespError);
    const reason = exec instanceof RespError ? exec.message : "EXECABORT transaction aborted";
    return json({ error: queued ? `${reason} ${queued.message}` : reason }, 400);
  }
  if (!Array.isArray(exec)) return json({ error: "ERR unexpected EXEC reply" }, 500);
  return json(exec.map((reply) => toEntry(reply, base64)));
}

function authorized(req: Request, url: URL): boolean {
  const header = req.headers.get("authorization");
  const bearer = header ? /^Bearer\s+(.+)$/i.exec(header.trim())?.[1] : undefined;
  const token = bearer ?? url.searchParams.get("_token");
  return token === TOKEN;
}

const ROUTES: Record<string, (body: unknown, base64: boolean) => Promise<Response>> = {
  "/": single,
  "/pipeline": pipeline,
  "/multi-exec": multiExec,
};

async function handle(req: Request): Promise<Response> {
  const url = new URL(req.url);
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
  const route = ROUTES[path];
  if (!route) return json({ error: `ERR endpoint ${url.pathname} not found` }, 404);
  if (req.method === "GET" && path === "/") return new Response("keyflow upstash-redis front\n");
  if (req.method !== "POST") return json({ error: `ERR method ${req.method} not allowed` }, 405);
  if (!authorized(req, url)) return json({ error: "Unauthorized: invalid or missing auth token" }, 401);

  let body: unknown;
  try {
    body = JSON.parse(await req.text());
  } catch {
    return json({ error: "ERR the body is not valid JSON" }, 400);
  }
  const base64 = req.headers.get("upstash-encoding")?.trim().toLowerCase() === "base64";
  try {
    return await route(body, base64);
  } catch (err) {
    if (err instanceof BadRequest) return json({ error: err.message }, 400);
    // Redis unreachable, connection lost mid-request, ...: the front stays up and says so.
    return json({ error: `ERR ${(err as Error).message}` }, 500);
  }
}

const server = Bun.serve({
  hostname: HOST,
  port: PORT,
  idleTimeout: 0, // blocking commands (BLPOP ...) may legitimately take long
  fetch: handle,
  error: (err) => json({ error: `ERR ${err.message}` }, 500),
});

console.log(`upstash-redis front listening on http://${HOST}:${server.port} -> ${REDIS_URL.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")}`);

// Say early if Redis is not there yet; the front keeps serving (500s) and connects once it is.
run([["PING"]]).catch((err) => console.error(`warning: ${(err as Error).message} (will retry per request)`));

function shutdown(): void {
  server.stop(true);
  pool.closeAll();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

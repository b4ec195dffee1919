/**
 * WebSocket-to-TCP proxy like Neon's wsproxy, so @neondatabase/serverless (Pool/Client over WebSocket)
 * can talk to a local PostgreSQL.
 *
 *   bun scripts/fronts/neon-wsproxy.ts
 *
 * Env: NEON_PROXY_HOST (127.0.0.1), NEON_PROXY_PORT (6543; 0 picks a free port),
 * NEON_PROXY_ALLOW (regex for the destination, default ^(127\.0\.0\.1|localhost):5432$).
 *
 * Contract (shared/reference/sink-protocols.md §2.3): only path /v1 upgrades; the destination is the
 * `address` query param ("host:port"), rejected with 400 unless it matches the allow regex; then raw
 * bytes are piped both ways (binary frames <-> TCP), and each side is closed when the other closes.
 */
import { connect, type Socket } from "node:net";
import type { ServerWebSocket } from "bun";

const HOST = process.env.NEON_PROXY_HOST || "127.0.0.1";
const PORT = Number(process.env.NEON_PROXY_PORT ?? 6543);
const ALLOW = new RegExp(process.env.NEON_PROXY_ALLOW || String.raw`^(127\.0\.0\.1|localhost):5432$`);

interface Session {
  address: string;
  host: string;
  port: number;
  tcp?: Socket;
  /** WebSocket frames that arrived before the TCP connection was up. */
  early: Buffer[];
  closed: boolean;
}

/** "host:port" or "[v6]:port" -> parts; undefined when malformed. */
function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

function toBuffer(message: string | Buffer): Buffer {
  return typeof message === "string" ? Buffer.from(message, "utf8") : message;
}

const server = Bun.serve<Session, never>({
  hostname: HOST,
  port: PORT,
  idleTimeout: 0,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname !== "/v1") return new Response("not found\n", { status: 404 });
    const address = url.searchParams.get("address") ?? "";
    const parts = splitAddress(address);
    if (!parts || !ALLOW.test(address)) {
      return new Response("proxying to specified address not allowed\n", { status: 400 });
    }
    const session: Session = { address, ...parts, early: [], closed: false };
    if (srv.upgrade(req, { data: session })) return undefined;
    return new Response("expected a WebSocket upgrade\n", { status: 400 });
  },
  websocket: {
    // Postgres replies can be large; let Bun buffer rather than drop, and pause TCP on backpressure.
    backpressureLimit: 4 * 1024 * 1024,
    closeOnBackpressureLimit: false,
    maxPayloadLength: 64 * 1024 * 1024,
    idleTimeout: 0,
    open(ws: ServerWebSocket<Session>) {
      const s = ws.data;
      const tcp = connect({ host: s.host, port: s.port });
      tcp.setNoDelay(true);
      s.tcp = tcp;
      tcp.on("connect", () => {
        for (const chunk of s.early.splice(0)) tcp.write(chunk);
      });
      tcp.on("data", (chunk: Buffer) => {
        if (s.closed) return;
        // -1: queued under backpressure; stop reading Postgres until the WebSocket drains.
        if (ws.sendBinary(chunk) === -1) tcp.pause();
      });
      tcp.on("error", (err) => {
        if (!s.closed) {
          s.closed = true;
          ws.close(1011, `TCP error: ${err.message}`.slice(0, 120));
        }
      });
      tcp.on("close", () => {
        if (!s.closed) {
          s.closed = true;
          ws.close(1000, "TCP connection is closed");
        }
      });
    },
    message(ws: ServerWebSocket<Session>, message: string | Buffer) {
      const s = ws.data;
      const bytes = toBuffer(message);
      if (s.tcp && !s.tcp.connecting) s.tcp.write(bytes);
      else s.early.push(Buffer.from(bytes));
    },
    drain(ws: ServerWebSocket<Session>) {
      ws.data.tcp?.resume();
    },
    close(ws: ServerWebSocket<Session>) {
      const s = ws.data;
      s.closed = true;
      s.tcp?.end();
      // Don't wait for a FIN handshake with a silent peer.
      setTimeout(() => s.tcp?.destroy(), 1000).unref();
    },
  },
});

console.log(`neon wsproxy listening on ws://${HOST}:${server.port}/v1`);

function shutdown(): void {
  server.stop(true);
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

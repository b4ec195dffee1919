/**
 * A TCP proxy of a test's own in front of a shared service (Redis, PostgreSQL), to fault the native
 * sink clients without touching the service others use: `cut()` breaks every connection through it
 * (the server side stays up: a killed connection), `stop()` closes it too (the service is gone),
 * `start()` listens again on the same port (it is back).
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  /** Connections made through the proxy so far. */
  readonly connections: number;
  /** The local ports of the proxy's open connections to the service (how the service names them: CLIENT KILL ADDR). */
  upstreamPorts(): number[];
  cut(): void;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startTcpProxy(upstreamPort: number, upstreamHost = "127.0.0.1"): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let connections = 0;
  let server: Server | undefined;
  let port = 0;
  const cut = () => {
    for (const socket of open) socket.destroy();
    open.clear();
  };
  const start = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        connections++;
        const upstream = connect(upstreamPort, upstreamHost);
        open.add(client);
        open.add(upstream);
        upstreams.add(upstream);
        const close = () => {
          upstreams.delete(upstream);
          client.destroy();
          upstream.destroy();
          open.delete(client);
          open.delete(upstream);
        };
        for (const socket of [client, upstream]) {
          socket.on("error", close);
          socket.on("close", close);
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  await start();
  return {
    get port() {
      return port;
    },
    get connections() {
      return connections;
    },
    upstreamPorts: () => [...upstreams].map((s) => s.localPort).filter((p): p is number => p !== undefined),
    cut,
    async stop() {
      const s = server;
      server = undefined;
      cut();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    start,
  };
}

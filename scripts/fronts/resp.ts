/**
 * A small RESP2 client for the local fronts: an encoder, an incremental parser that keeps every bulk
 * and simple string as raw bytes, and one TCP connection that answers commands in order.
 *
 * Only what an HTTP bridge needs: no RESP3, no pub/sub, no cluster.
 */
import { connect, type Socket } from "node:net";

/** A Redis error reply (`-ERR ...`). Kept as a value, not thrown: pipelines carry errors per command. */
export class RespError {
  constructor(readonly message: string) {}
}

/** One RESP2 reply. Strings stay as bytes so the bridge can base64 them exactly. */
export type Reply = Uint8Array | number | null | RespError | Reply[];

const CRLF = Buffer.from("\r\n");

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? Buffer.from(arg, "utf8") : Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength);
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

const NEED_MORE = Symbol("need more");

/** Incremental RESP2 parser: feed it socket chunks, it hands back every complete reply. */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  /** Appends a chunk and returns the replies it completes, in order. */
  feed(chunk: Uint8Array): Reply[] {
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : Buffer.from(chunk);
    this.pos = 0;
    const out: Reply[] = [];
    for (;;) {
      const start = this.pos;
      const reply = this.parse();
      if (reply === NEED_MORE) {
        this.pos = start;
        break;
      }
      out.push(reply);
    }
    return out;
  }

  private line(): string | typeof NEED_MORE {
    const end = this.buf.indexOf(CRLF, this.pos);
    if (end < 0) return NEED_MORE;
    const text = this.buf.toString("utf8", this.pos, end);
    this.pos = end + 2;
    return text;
  }

  private parse(): Reply | typeof NEED_MORE {
    if (this.pos >= this.buf.length) return NEED_MORE;
    const type = this.buf[this.pos]!;
    this.pos += 1;
    switch (type) {
      case 0x2b: {
        // '+' simple string: bytes, like a bulk string
        const end = this.buf.indexOf(CRLF, this.pos);
        if (end < 0) return NEED_MORE;
        const bytes = Buffer.from(this.buf.subarray(this.pos, end));
        this.pos = end + 2;
        return bytes;
      }
      case 0x2d: {
        // '-' error
        const text = this.line();
        return text === NEED_MORE ? NEED_MORE : new RespError(text);
      }
      case 0x3a: {
        // ':' integer (JSON numbers lose precision past 2^53, as they do for Upstash)
        const text = this.line();
        return text === NEED_MORE ? NEED_MORE : Number(text);
      }
      case 0x24: {
        // '$' bulk string
        const text = this.line();
        if (text === NEED_MORE) return NEED_MORE;
        const len = Number(text);
        if (len < 0) return null;
        if (this.buf.length < this.pos + len + 2) return NEED_MORE;
        const bytes = Buffer.from(this.buf.subarray(this.pos, this.pos + len));
        this.pos += len + 2;
        return bytes;
      }
      case 0x2a: {
        // '*' array
        const text = this.line();
        if (text === NEED_MORE) return NEED_MORE;
        const len = Number(text);
        if (len < 0) return null;
        const items: Reply[] = [];
        for (let i = 0; i < len; i++) {
          const item = this.parse();
          if (item === NEED_MORE) return NEED_MORE;
          items.push(item);
        }
        return items;
      }
      default:
        throw new Error(`RESP protocol error: unexpected type byte 0x${type.toString(16)}`);
    }
  }
}

interface Pending {
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

/** Where and how to reach Redis, from a `redis://[user:pass@]host:port[/db]` URL. */
export interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
}

export function parseRedisUrl(url: string): RedisTarget {
  const u = new URL(url);
  if (u.protocol !== "redis:") throw new Error(`unsupported Redis URL ${url} (only redis://)`);
  const db = u.pathname.replace(/^\//, "");
  return {
    host: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: db ? Number(db) : undefined,
  };
}

/** One TCP connection to Redis. Commands are answered strictly in the order they were written. */
export class RespConnection {
  private readonly parser = new RespParser();
  private readonly pending: Pending[] = [];
  private closedWith: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      let replies: Reply[];
      try {
        replies = this.parser.feed(chunk);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      for (const reply of replies) this.pending.shift()?.resolve(reply);
    });
    socket.on("error", (err) => this.fail(err));
    socket.on("close", () => this.fail(new Error("connection to Redis closed")));
  }

  /** Opens a connection, authenticates and selects the db; rejects if Redis is unreachable. */
  static open(target: RedisTarget, timeoutMs = 5000): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: target.host, port: target.port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connecting to Redis at ${target.host}:${target.port} timed out`));
      }, timeoutMs);
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot reach Redis at ${target.host}:${target.port}: ${err.message}`));
      });
      socket.once("connect", async () => {
        clearTimeout(timer);
        const conn = new RespConnection(socket);
        try {
          const setup: string[][] = [];
          if (target.password !== undefined) {
            setup.push(target.username ? ["AUTH", target.username, target.password] : ["AUTH", target.password]);
          }
          if (target.db) setup.push(["SELECT", String(target.db)]);
          for (const reply of await conn.send(setup)) {
            if (reply instanceof RespError) throw new Error(`Redis setup failed: ${reply.message}`);
          }
          resolve(conn);
        } catch (err) {
          conn.close();
          reject(err);
        }
      });
    });
  }

  get alive(): boolean {
    return this.closedWith === undefined && !this.socket.destroyed;
  }

  /** Writes all commands in one go and resolves with their replies, in order. */
  send(commands: readonly (readonly (string | Uint8Array)[])[]): Promise<Reply[]> {
    if (commands.length === 0) return Promise.resolve([]);
    if (!this.alive) return Promise.reject(this.closedWith ?? new Error("connection to Redis closed"));
    const replies = commands.map(
      () =>
        new Promise<Reply>((resolve, reject) => {
          this.pending.push({ resolve, reject });
        }),
    );
    this.socket.write(Buffer.concat(commands.map(encodeCommand)));
    return Promise.all(replies);
  }

  close(): void {
    this.fail(new Error("connection to Redis closed"));
  }

  private fail(err: Error): void {
    if (this.closedWith === undefined) this.closedWith = err;
    this.socket.destroy();
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}

/**
 * A small pool of exclusive connections: a request borrows one, sends its commands, gives it back.
 * Dead connections are dropped, so a Redis restart heals on the next borrow.
 */
export class RespPool {
  private readonly idle: RespConnection[] = [];
  private readonly waiters: ((conn: RespConnection | undefined) => void)[] = [];
  private open = 0;

  constructor(
    private readonly target: RedisTarget,
    private readonly max = 8,
  ) {}

  async acquire(): Promise<RespConnection> {
    for (;;) {
      const conn = this.idle.pop();
      if (!conn) break;
      if (conn.alive) return conn;
      this.open -= 1;
    }
    if (this.open >= this.max) {
      // Wait for a release; `undefined` means a slot was freed (and counted for us): open a new connection.
      const handed = await new Promise<RespConnection | undefined>((resolve) => this.waiters.push(resolve));
      if (handed) return handed;
    } else {
      this.open += 1;
    }
    try {
      return await RespConnection.open(this.target);
    } catch (err) {
      this.freeSlot();
      throw err;
    }
  }

  /** Returns a connection; pass `reusable=false` for one whose state may have changed or that failed. */
  release(conn: RespConnection, reusable = true): void {
    if (!reusable || !conn.alive) {
      conn.close();
      this.freeSlot();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter(conn);
    else this.idle.push(conn);
  }

  closeAll(): void {
    for (const conn of this.idle.splice(0)) conn.close();
  }

  private freeSlot(): void {
    this.open -= 1;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.open += 1;
      // The waiter opens its own connection in the slot it was handed.
      waiter(undefined);
    }
  }
}

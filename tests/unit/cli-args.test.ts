/** Each command's argument checks: a bad argument exits 2 with a message naming it and the command's usage; no network. */
import { describe, expect, test } from "bun:test";
import { main } from "../../src/cli/main.ts";
import { actorPath, remote } from "../../src/cli/remote.ts";
import { UsageError } from "../../src/cli/io.ts";
import { runCli } from "../support/cli-io.ts";

/** Runs argv, expects exit 2, a message naming `named`, and the command's usage. */
async function usageError(argv: string[], named: string, env: Record<string, string> = {}) {
  const r = await runCli(main, argv, env);
  expect(r.code).toBe(2);
  expect(r.stdout).toBe("");
  const [first] = r.stderr.split("\n");
  expect(first).toStartWith(`keyflow ${argv[0]}: `);
  expect(first).toContain(named);
  expect(r.stderr).toContain(`usage: keyflow ${argv[0]}`);
}

describe("serve", () => {
  test("--port must be a port number", async () => {
    await usageError(["serve", "--port", "http"], "--port");
    await usageError(["serve", "--port", "65536"], "--port");
    await usageError(["serve", "--port", "-1"], "--port");
  });
  test("an unknown flag is named", () => usageError(["serve", "--prot", "1"], "--prot"));
  test("a flag without its value is named", () => usageError(["serve", "--data-dir"], "--data-dir"));
  test("an empty --data-dir is refused", () => usageError(["serve", "--data-dir", ""], "--data-dir"));
  test("positional arguments are refused", () => usageError(["serve", "8080"], '"8080"'));
});

describe("migrate", () => {
  test("takes no arguments", () => usageError(["migrate", "now"], '"now"'));
});

describe("inspect", () => {
  test("KEY is required", () => usageError(["inspect"], "KEY is required"));
  test("an empty KEY is refused", () => usageError(["inspect", ""], "KEY must not be empty"));
  test("one KEY only", () => usageError(["inspect", "a", "b"], '"b"'));
  test('"." and ".." are not keys (a URL path would resolve them away)', async () => {
    await usageError(["inspect", ".."], 'KEY must not be ".."');
    await usageError(["dlq", "list", "."], 'KEY must not be "."');
  });
  test("--url must be http(s)", async () => {
    await usageError(["inspect", "k", "--url", "ftp://x"], "--url");
    await usageError(["inspect", "k", "--url", "not a url"], "--url");
  });
  test("a bad KEYFLOW_URL is named as such", () => usageError(["inspect", "k"], "KEYFLOW_URL", { KEYFLOW_URL: "localhost:8787" }));
  test("an API key with spaces is refused, naming where it came from", async () => {
    await usageError(["inspect", "k", "--api-key", "kf a"], "--api-key");
    await usageError(["inspect", "k"], "KEYFLOW_API_KEY", { KEYFLOW_API_KEY: "kf\nx" });
  });
});

describe("tail", () => {
  test("KEY is required", () => usageError(["tail"], "KEY is required"));
  test("--json is not one of its flags", () => usageError(["tail", "k", "--json"], "--json"));
});

describe("dlq", () => {
  test("a subcommand is required", () => usageError(["dlq"], "list or replay"));
  test("an unknown subcommand is named", () => usageError(["dlq", "purge", "k"], '"purge"'));
  test("KEY is required", () => usageError(["dlq", "list"], "KEY is required"));
  test("--ids must be a list of ids", async () => {
    await usageError(["dlq", "replay", "k", "--ids", "1,x"], "--ids");
    await usageError(["dlq", "replay", "k", "--ids", "1;DROP TABLE"], "--ids");
  });
  test("--sink and --ids are for replay only", async () => {
    await usageError(["dlq", "list", "k", "--sink", "kafka"], "--sink");
    await usageError(["dlq", "list", "k", "--ids", "1"], "--ids");
  });
});

describe("keys", () => {
  test("a command is required", () => usageError(["keys"], "a command is required"));
  test("--scopes is required", () => usageError(["keys", "create"], "--scopes is required"));
  test("an unknown scope is refused by the server's own parser", () => usageError(["keys", "create", "--scopes", "root"], "root"));
  test("create prints a key and its KEYFLOW_API_KEYS line, which the server accepts", async () => {
    const r = await runCli(main, ["keys", "create", "--tenant", "acme", "--scopes", "ingest,read"]);
    expect(r.code).toBe(0);
    const key = /\n {2}(kf_\S+)\n/.exec(r.stdout)?.[1];
    const line = /line for KEYFLOW_API_KEYS:\n {2}(\S+)/.exec(r.stdout)?.[1];
    expect(key).toBeDefined();
    expect(line).toStartWith("acme:ingest,read:");
    expect(line).not.toContain(key!);
  });
});

describe("the server's address and keys", () => {
  test("defaults: KEYFLOW_URL, else 127.0.0.1:8787; KEYFLOW_API_KEY as the bearer", () => {
    const io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
    expect(remote({}, { ...io, env: {} }).base).toBe("http://127.0.0.1:8787");
    const fromEnv = remote({}, { ...io, env: { KEYFLOW_URL: "https://events.example/", KEYFLOW_API_KEY: "kf_env" } });
    expect(fromEnv.base).toBe("https://events.example");
    expect(fromEnv.headers).toEqual({ authorization: "Bearer kf_env" });
    const flags = remote({ url: "http://h:1", "api-key": "kf_flag" }, { ...io, env: { KEYFLOW_URL: "https://events.example", KEYFLOW_API_KEY: "kf_env" } });
    expect([flags.base, flags.headers.authorization]).toEqual(["http://h:1", "Bearer kf_flag"]);
    expect(() => remote({ url: "javascript:alert(1)" }, { ...io, env: {} })).toThrow(UsageError);
  });

  test("a key is data: every character that means something in a URL is encoded", () => {
    expect(actorPath("a/b?c#d%e f")).toBe("/v1/actors/a%2Fb%3Fc%23d%25e%20f");
    expect(actorPath("../../health")).toBe("/v1/actors/..%2F..%2Fhealth");
  });
});

describe("backfill", () => {
  test("is routed to the backfill engine, which reads its own --help and names a missing FILE", async () => {
    const help = await runCli(main, ["backfill", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("usage: keyflow backfill FILE");
    const missing = await runCli(main, ["backfill"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("FILE");
  });
});

/** The dispatcher: help, version, unknown commands, and each command's --help; no network. */
import { describe, expect, test } from "bun:test";
import { migrateCommand } from "../../src/cli/commands/migrate.ts";
import { COMMANDS, main, runCommand, USAGE } from "../../src/cli/main.ts";
import { VERSION } from "../../src/version.ts";
import { runCli } from "../support/cli-io.ts";

describe("keyflow", () => {
  test("--help prints every command on stdout and exits 0", async () => {
    const r = await runCli(main, ["--help"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    for (const name of ["serve", "migrate", "backfill", "tail", "inspect", "dlq", "keys"]) expect(r.stdout).toContain(`  ${name} `);
  });

  test("--version prints src/version.ts's version", async () => {
    const r = await runCli(main, ["--version"]);
    expect(r).toEqual({ code: 0, stdout: `keyflow ${VERSION}\n`, stderr: "" });
  });

  test("an unknown command prints the usage on stderr and exits 2, naming it", async () => {
    const r = await runCli(main, ["frobnicate", "--x"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect(r.stderr).toContain(USAGE);
  });

  test("no command at all is a usage error", async () => {
    const r = await runCli(main, []);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("a command is required");
  });

  test("a hostile command name is shown escaped, never as terminal control characters", async () => {
    const r = await runCli(main, ["\u001b[31mred\u009b"]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain("\u001b");
    expect(r.stderr).not.toContain("\u009b");
    expect(r.stderr).toContain("\\u001b[31mred\\u009b");
  });

  for (const command of COMMANDS.filter((c) => !c.ownHelp)) {
    test(`${command.name} --help prints its usage on stdout and exits 0`, async () => {
      const r = await runCli(main, [command.name, "--help"]);
      expect(r).toEqual({ code: 0, stdout: `${command.usage}\n`, stderr: "" });
      expect(command.usage).toStartWith(`usage: keyflow ${command.name}`);
    });
  }

  test("--help after -- is an argument, not a request for help", async () => {
    const r = await runCli(main, ["inspect", "--", "--help", "extra"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unexpected argument "extra"');
  });
});

describe("migrate's failures (no Postgres needed)", () => {
  const migrate = (env: Record<string, string>) => runCli((argv, io) => runCommand(migrateCommand, argv, io), [], env);

  test("a bad setting exits 2, one named variable per line", async () => {
    const r = await migrate({ KEYFLOW_POSTGRES_URL: "mysql://x", KEYFLOW_POSTGRES_CLIENT: "odbc" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('\n  KEYFLOW_POSTGRES_URL="mysql://x"');
    expect(r.stderr).toContain("KEYFLOW_POSTGRES_CLIENT");
  });

  test("a server that is not there exits 1 with the driver's error, not a stack trace", async () => {
    const r = await migrate({ KEYFLOW_POSTGRES_URL: "postgres://postgres@127.0.0.1:1/test", KEYFLOW_POSTGRES_CLIENT: "native", KEYFLOW_SINK_TIMEOUT: "2s" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^keyflow migrate: postgres: .*ECONNREFUSED/);
    expect(r.stderr).not.toContain("    at ");
  });
});

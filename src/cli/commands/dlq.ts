import { parse, positionalArgs, quoted, UsageError, writeLine, type Command } from "../io.ts";
import { actorPath, remote, REMOTE_OPTIONS, REMOTE_USAGE } from "../remote.ts";
import { deadLetterLine, type DeadLetter } from "./inspect.ts";

export const dlqCommand: Command = {
  name: "dlq",
  summary: "list a key's dead letters, or replay them to their sinks",
  usage: `usage: keyflow dlq list KEY [--json] [--url URL] [--api-key KEY]
       keyflow dlq replay KEY [--sink SINK] [--ids 1,2] [--json] [--url URL] [--api-key KEY]

  list             the records sinks gave up on (GET /v1/actors/KEY/dlq)
  replay           sends them again (POST /v1/actors/KEY/dlq/replay): all, one sink's, or these ids
  KEY              the actor key (any text; it is URL-encoded)
  --sink SINK      replay only this sink's dead letters (an enabled sink: postgres, redis, kafka, …)
  --ids 1,2        replay only these dead letters (ids from dlq list)
  --json           print the server's JSON answer
${REMOTE_USAGE}

Needs a key with the admin scope.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { ...REMOTE_OPTIONS, json: { type: "boolean" }, sink: { type: "string" }, ids: { type: "string" } });
    const action = positionals[0];
    if (action === undefined) throw new UsageError("a subcommand is required: list or replay");
    if (action !== "list" && action !== "replay") throw new UsageError(`unknown subcommand ${quoted(action)}: use list or replay`);
    const [, key] = positionalArgs(positionals, ["list|replay", "KEY"]) as [string, string];
    if (action === "list" && (values.sink !== undefined || values.ids !== undefined)) throw new UsageError(`--${values.sink !== undefined ? "sink" : "ids"} is for dlq replay`);
    if (values.ids !== undefined && !/^\d+(,\d+)*$/.test(values.ids)) throw new UsageError(`--ids must be comma-separated dead-letter ids like 1,2, got ${quoted(values.ids)}`);
    if (values.sink === "") throw new UsageError("--sink must not be empty");
    const server = remote(values, io);
    if (action === "list") {
      const body = await server.json<{ key: string; dead_letters: DeadLetter[] }>("GET", `${actorPath(key)}/dlq`);
      if (values.json) writeLine(io.stdout, JSON.stringify(body, null, 2));
      else {
        writeLine(io.stdout, `dead letters of ${quoted(key)} (${body.dead_letters.length}):`);
        for (const d of body.dead_letters) writeLine(io.stdout, deadLetterLine(d));
      }
      return 0;
    }
    const query = new URLSearchParams();
    if (values.sink !== undefined) query.set("sink", values.sink);
    if (values.ids !== undefined) query.set("ids", values.ids);
    const search = query.size ? `?${query}` : "";
    const body = await server.json<{ key: string; replayed: number }>("POST", `${actorPath(key)}/dlq/replay${search}`);
    if (values.json) writeLine(io.stdout, JSON.stringify(body));
    else writeLine(io.stdout, `replayed ${body.replayed} dead letter${body.replayed === 1 ? "" : "s"} of ${quoted(key)}`);
    return 0;
  },
};

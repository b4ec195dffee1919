import { KeyflowError } from "../../client/index.ts";
import type { ActorView, AlertRecord, LateEntry, WindowView } from "../../client/types.ts";
import { parse, positionalArgs, quoted, safe, writeLine, type Command } from "../io.ts";
import { actorPath, remote, REMOTE_OPTIONS, REMOTE_USAGE, type Remote } from "../remote.ts";

interface DeadLetter {
  id: number;
  sink: string;
  error: string;
  attempts: number;
  failed_at: string;
  record: { kind: string };
}
interface Outbox {
  backlog: Record<string, number>;
  dead_letters: number;
  sinks: Array<{ sink: string; breaker: string; consecutive_failures: number; last_error: string | null; delivered: number; dead_lettered: number }>;
}

/** Everything `inspect` shows; outbox and dead letters are null without the admin scope. */
interface Inspection {
  actor: ActorView;
  windows: WindowView[];
  late: LateEntry[];
  alerts: AlertRecord[];
  outbox: Outbox | null;
  dead_letters: DeadLetter[] | null;
}

/** Readable output lists at most this many of each kind (--json has them all). */
const SHOWN = 20;

export const inspectCommand: Command = {
  name: "inspect",
  summary: "show a key's state, windows, late log, alerts, outbox and dead letters",
  usage: `usage: keyflow inspect KEY [--json] [--url URL] [--api-key KEY]

  KEY              the actor key (any text; it is URL-encoded)
  --json           print one JSON object: actor, windows, late, alerts, outbox, dead_letters
${REMOTE_USAGE}

The outbox and dead letters need the admin scope; with a read-only key they are left out.`,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { ...REMOTE_OPTIONS, json: { type: "boolean" } });
    const [key] = positionalArgs(positionals, ["KEY"]) as [string];
    const inspection = await inspect(remote(values, io), key);
    if (values.json) writeLine(io.stdout, JSON.stringify(inspection, null, 2));
    else writeLine(io.stdout, readable(inspection).join("\n"));
    return 0;
  },
};

async function inspect(server: Remote, key: string): Promise<Inspection> {
  const { client } = server;
  const actor = await client.actor(key);
  const [windows, late, alerts, outbox, deadLetters] = await Promise.all([
    client.windows(key),
    client.late(key),
    client.alerts(key),
    adminOnly(server.json<Outbox>("GET", `${actorPath(key)}/outbox`)),
    adminOnly(server.json<{ dead_letters: DeadLetter[] }>("GET", `${actorPath(key)}/dlq`)),
  ]);
  return { actor, windows, late, alerts, outbox, dead_letters: deadLetters?.dead_letters ?? null };
}

/** A read that needs the admin scope: null when the key lacks it. */
async function adminOnly<T>(read: Promise<T>): Promise<T | null> {
  try {
    return await read;
  } catch (error) {
    if (error instanceof KeyflowError && error.status === 403) return null;
    throw error;
  }
}

function readable(i: Inspection): string[] {
  const a = i.actor;
  const byType = Object.entries(a.totals.by_type).map(([type, n]) => `${safe(type)} ${n}`).join(", ");
  const lines = [
    `key ${quoted(a.key)}`,
    `  events ${a.totals.events} (duplicates ${a.totals.duplicates}, late ${a.totals.late})${byType ? `; by type: ${byType}` : ""}`,
    `  first event ${a.first_event_at ?? "-"}, last event ${a.last_event_at ?? "-"}, last arrival ${a.last_arrival_at ?? "-"}`,
    `  watermark ${a.watermark ?? "-"}; dedupe ids held ${a.dedupe_ids}`,
    "",
    `windows (${i.windows.length}):`,
    ...latest(i.windows, (w) => `  ${safe(w.size).padEnd(8)} ${w.start} → ${w.end}  ${w.closed ? "closed" : "open  "}  ${aggregate(w)}`),
    "",
    `late log (${i.late.length}):`,
    ...latest(i.late, (l) => `  ${l.timestamp} ${safe(l.event_type)} ${quoted(l.event_id)} arrived ${l.received_at}, missed ${l.missed_windows.map(safe).join(", ")}`),
    "",
    `alerts (${i.alerts.length}):`,
    ...latest(i.alerts, (al) => `  ${al.fired_at} ${safe(al.rule)}: ${safe(al.aggregate)} = ${al.value} in ${al.window.start} → ${al.window.end}`),
    "",
  ];
  if (!i.outbox) lines.push("outbox: not shown (needs a key with the admin scope)");
  else {
    const backlog = Object.entries(i.outbox.backlog).map(([sink, n]) => `${safe(sink)} ${n}`).join(", ") || "empty";
    lines.push(`outbox: backlog ${backlog}; dead letters ${i.outbox.dead_letters}`);
    for (const s of i.outbox.sinks) {
      const error = s.last_error ? `, last error ${quoted(s.last_error)}` : "";
      lines.push(`  ${safe(s.sink)}: breaker ${s.breaker}, delivered ${s.delivered}, dead-lettered ${s.dead_lettered}, failing ${s.consecutive_failures}${error}`);
    }
  }
  if (i.dead_letters) {
    lines.push("", `dead letters (${i.dead_letters.length}):`);
    lines.push(...latest(i.dead_letters, deadLetterLine));
  }
  return lines;
}

export function deadLetterLine(d: DeadLetter): string {
  return `  #${d.id} ${safe(d.sink)} ${safe(d.record.kind)} failed ${d.failed_at} after ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}: ${quoted(d.error)}`;
}

export type { DeadLetter };

function latest<T>(items: T[], line: (item: T) => string): string[] {
  const shown = items.slice(-SHOWN).map(line);
  return items.length > SHOWN ? [`  … ${items.length - SHOWN} earlier (--json lists them all)`, ...shown] : shown;
}

function aggregate(w: WindowView): string {
  const parts = [`count ${w.count}`, `sum ${w.sum}`, `min ${w.min ?? "-"}`, `max ${w.max ?? "-"}`, `avg ${w.avg ?? "-"}`];
  if (w.distinct !== undefined) parts.push(`distinct ${w.distinct}`);
  return parts.join("  ");
}

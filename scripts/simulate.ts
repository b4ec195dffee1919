// Deterministic simulation of the keyflow actor core on both hosts (see USAGE).
import { Counters, FAULT_KINDS, PATH_KINDS } from "../src/sim/faults.ts";
import { describeConfig, formatViolation, runSeed, type SimOptions, type SimResult } from "../src/sim/run.ts";
import { BROKEN_MODES, parseGlue, type Broken } from "../src/sim/context.ts";

const USAGE = `Deterministic simulation of keyflow's actors on both hosts, in virtual time, with one seeded PRNG.

  bun run simulate --seed N                  one seed, with a summary and the faults it fired
  bun run simulate --seeds 10000 [--from F]  a sweep, with a progress line every second

  --host durable|process|both   the Durable Object host, the process host, or each in turn (default both)
  --keys K --events E --steps S override the seed's workload size
  --trace                       print the last 200 steps on a violation
  --stop-on-failure             end a sweep at its first violation
  --glue unfixed|unfixed+A|...  the Durable Object host without the fixes the simulator found (default fixed)
  --broken MODE                 a deliberately broken run the checker must catch: ${BROKEN_MODES.join(", ")}
  --no-analytics                no seed runs keyflow.config.json analytics (by default half of them do)

Exits 1 when an invariant is violated, printing the seed, the step and the replay command.`;

const FLAGS = new Set(["seed", "seeds", "from", "host", "keys", "events", "steps", "trace", "stop-on-failure", "glue", "broken", "no-analytics", "help"]);

function parseArgs(argv: string[]) {
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const [name, inline] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (!FLAGS.has(name)) throw new Error(`unknown flag --${name}\n\n${USAGE}`);
    if (inline !== undefined) flags[name] = inline;
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) flags[name] = argv[++i]!;
    else flags[name] = true;
  }
  return flags;
}

function int(flags: Record<string, string | true>, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || !Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} needs a non-negative integer`);
  return n;
}

function table(title: string, counts: Record<string, number>, order: readonly string[], seedsWith?: Record<string, number>, seeds?: number): string {
  const lines = [title];
  for (const k of order) {
    const extra = seedsWith && seeds ? `  (in ${seedsWith[k] ?? 0}/${seeds} seeds)` : "";
    lines.push(`  ${k.padEnd(24)} ${String(counts[k] ?? 0).padStart(10)}${extra}`);
  }
  return lines.join("\n");
}

function summary(r: SimResult): string {
  const out = [
    `seed ${r.seed}: ${r.ok ? "OK" : "VIOLATION"}  steps=${r.steps}  virtual=${(r.virtualMs / 1000).toFixed(1)}s  hash=${r.hash}`,
    `config:   ${describeConfig(r.config)}`,
    `workload: ${r.workload}`,
    `faults on (swarm): ${r.enabled.join(", ") || "none"}`,
    `stats:    ${Object.entries(r.stats).map(([k, v]) => `${k}=${v}`).join(" ")}`,
    `peaks:    ${Object.entries(r.peaks).map(([k, v]) => `${k}=${v}`).join(" ")}`,
    table("faults fired:", r.counters.faults, FAULT_KINDS),
    table("paths hit:", r.counters.paths, PATH_KINDS),
  ];
  return out.join("\n");
}

async function main(): Promise<number> {
  const flags = parseArgs(process.argv.slice(2));
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  const base: Omit<SimOptions, "seed"> = {};
  const keys = int(flags, "keys");
  const events = int(flags, "events");
  const steps = int(flags, "steps");
  if (keys !== undefined) base.keys = Math.max(1, keys);
  if (events !== undefined) base.events = events;
  if (steps !== undefined) base.steps = steps;
  if (flags.broken !== undefined) {
    if (!BROKEN_MODES.includes(flags.broken as Broken)) throw new Error(`--broken must be one of ${BROKEN_MODES.join(", ")}`);
    base.broken = flags.broken as Broken;
  }
  const hostFlag = flags.host ?? "both";
  if (!["durable", "process", "both"].includes(hostFlag as string)) throw new Error("--host must be durable, process or both");
  const hosts = hostFlag === "both" ? (["durable", "process"] as const) : [hostFlag as "durable" | "process"];
  if (flags["no-analytics"] !== undefined) base.analytics = false;
  if (flags.glue !== undefined) {
    if (typeof flags.glue !== "string") throw new Error("--glue needs a value: fixed, unfixed, unfixed+A, ...");
    parseGlue(flags.glue);
    base.glue = flags.glue;
  }

  if (flags.seeds === undefined) {
    const seed = int(flags, "seed") ?? 1;
    let failed = 0;
    for (const host of hosts) {
      const r = await runSeed({ ...base, host, seed, traceTail: flags.trace ? 200 : 40 });
      console.log(`\n[${host} host]\n${summary(r)}`);
      if (!r.ok) {
        if (flags.trace) console.log(`last steps:\n  ${r.tail.join("\n  ")}`);
        console.log(formatViolation(r));
        failed++;
      } else console.log(`replay: ${r.replay}`);
    }
    return failed ? 1 : 0;
  }

  const count = int(flags, "seeds")!;
  const from = int(flags, "from") ?? 1;
  const total = new Counters();
  const seedsWith: Record<string, number> = {};
  const failures: SimResult[] = [];
  const started = Date.now();
  let lastPrint = started;
  let done = 0;
  const progress = () => {
    const secs = (Date.now() - started) / 1000;
    const top = Object.entries(total.faults)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    console.log(`[${secs.toFixed(0)}s] ${done}/${count * hosts.length} runs (${hosts.join(" + ")} host per seed), ${(done / Math.max(secs, 1e-3)).toFixed(1)} runs/s, ${failures.length} failed | ${top}`);
  };
  let lastSeed = from - 1;
  seeds: for (let seed = from; seed < from + count; seed++) {
    lastSeed = seed;
    for (const host of hosts) {
      const r = await runSeed({ ...base, host, seed, traceTail: 0 });
      done++;
      total.add(r.counters);
      for (const [k, v] of Object.entries(r.counters.faults)) if (v > 0) seedsWith[k] = (seedsWith[k] ?? 0) + 1;
      for (const [k, v] of Object.entries(r.counters.paths)) if (v > 0) seedsWith[k] = (seedsWith[k] ?? 0) + 1;
      if (!r.ok) {
        failures.push(r);
        console.log(formatViolation(r));
        if (flags["stop-on-failure"]) break seeds;
      }
      if (Date.now() - lastPrint >= 1000) {
        lastPrint = Date.now();
        progress();
      }
    }
  }
  const secs = (Date.now() - started) / 1000;
  console.log(`\n${done} runs (seeds ${from}..${lastSeed} on the ${hosts.join(" and ")} host) in ${secs.toFixed(1)} s: ${(done / secs).toFixed(1)} runs/s, ${failures.length} failed`);
  console.log(table("faults fired (total):", total.faults, FAULT_KINDS, seedsWith, done));
  console.log(table("paths hit (total):", total.paths, PATH_KINDS, seedsWith, done));
  if (failures.length) {
    console.log(`\nfailing seeds: ${failures.map((f) => f.seed).join(" ")}`);
    console.log(`replay the first: ${failures[0]!.replay}`);
    return 1;
  }
  return 0;
}

process.exitCode = await main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  return 2;
});

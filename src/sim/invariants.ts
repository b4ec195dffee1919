import { Actor, type IngestOutcome } from "../actor/actor.ts";
import type { Config } from "../settings/config.ts";
import { ACTOR_ROW } from "../actor/layout.ts";
import type { Event } from "../actor/event.ts";
import type { DeadLetter, OutboxRecord } from "../actor/outbox.ts";
import { MIRROR_SINK } from "./swarm.ts";
import type { ObservedSink, Observer, SimContext } from "./context.ts";
import type { SimHost } from "./sim-host.ts";
import type { CommittedCommand } from "../hosts/process/journal.ts";
import { KeyModel, type MAgg, type ModelConfig } from "./model.ts";
import { effectId, payload, type SimSink } from "./sinks.ts";
import type { ClientRequest } from "./workload.ts";

export interface Violation {
  message: string;
  /** Scheduler step at which it was detected (the end-of-run checks report the last step). */
  step: number;
  /** Virtual milliseconds since the start of the run. */
  time: number;
  phase: "faults" | "liveness" | "final" | "repair";
  task: string;
}

/** Canonical text of an aggregate / a window (type keys sorted), for comparisons. */
function agg(a: MAgg): string {
  return `${a.count}/${a.valued}/${a.sum}/${a.min}/${a.max}`;
}
/** Per-type aggregates of a window (a Map in the actor and the model, an object in a sink record). */
type TypesLike = Map<string, MAgg> | Record<string, MAgg>;
function types(t: TypesLike): string {
  const entries = t instanceof Map ? [...t] : Object.entries(t);
  return entries
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, a]) => `${k}:${agg(a)}`)
    .join(",");
}
interface WindowLike {
  type?: string;
  spec: string;
  start: number;
  end: number;
  all: MAgg;
  types: TypesLike;
  rev?: number;
  closedAt?: number;
  closedBy?: string;
}
function win(w: WindowLike): string {
  return `${w.type === undefined ? "" : `${JSON.stringify(w.type)}:`}${w.spec}@${w.start}-${w.end} all=${agg(w.all)} types={${types(w.types)}} rev=${w.rev || 0}${w.closedAt === undefined ? "" : ` closed=${w.closedAt}/${w.closedBy}`}`;
}
const fmt = (o: { status: string; late?: boolean } | undefined) => (o ? o.status + (o.late ? "+late" : "") : "none");

/**
 * The checker: keeps one ground-truth model per key, fed by what the host committed, and compares
 * the real actor with it after every commit, every client acknowledgement and every sink effect
 * (the cheap, continuous checks), and everything at the end of the run (the full checks).
 */
export class Checker implements Observer {
  readonly models = new Map<string, KeyModel>();
  first: Violation | undefined;
  step = 0;
  phase: Violation["phase"] = "faults";
  task = "";
  /** Events each client got an accepted/duplicate reply for. */
  readonly acked = new Map<string, Set<string>>();
  private readonly props = new Map<string, string>();
  readonly peaks = { dedupeIds: 0, closed: 0, backlogAtAdmission: 0, backlog: 0 };

  constructor(
    private readonly ctx: SimContext,
    private readonly t0: number,
    private readonly modelCfg: ModelConfig,
  ) {}

  private get config(): Config {
    return this.ctx.config;
  }

  model(key: string): KeyModel {
    let m = this.models.get(key);
    if (!m) this.models.set(key, (m = new KeyModel(key, this.modelCfg)));
    return m;
  }

  violation(message: string): void {
    if (this.first) return;
    this.first = { message, step: this.step, time: this.ctx.sched.now() - this.t0, phase: this.phase, task: this.task };
  }

  ingestCommitted(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[], now: number, actor: Actor): void {
    const m = this.checkOutcomes(key, events, outcomes, now);
    // Admission: an ingest is taken only while the outbox is under its bound (then it adds its own records).
    const backlog = actor.outbox.backlog();
    const before = backlog - m.lastAppended;
    this.peaks.backlogAtAdmission = Math.max(this.peaks.backlogAtAdmission, before);
    this.peaks.backlog = Math.max(this.peaks.backlog, backlog);
    if (before >= this.config.outboxMax) {
      this.violation(`ingest admitted with an outbox backlog of ${before} (outboxMax ${this.config.outboxMax}); backlog now ${backlog}`);
    }
    this.compareFacts(m, actor, "after an ingest commit", "exact");
  }

  /** The model takes an ingest that became durable; the actor's answers must be the model's. */
  private checkOutcomes(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[], now: number): KeyModel {
    const m = this.model(key);
    const closedBefore = m.everClosed.length;
    const predicted = m.ingest(events, now);
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const got = outcomes[i];
      const want = predicted[i]!;
      if (!got || got.status !== want.status || !!got.late !== !!want.late) {
        this.violation(`ingest outcome of event ${e.id} (key ${JSON.stringify(key)}) is ${fmt(got)}; the model says ${fmt(want)}`);
      }
      if (want.status === "accepted") {
        this.props.set(`${key}\u0000${e.id}`, JSON.stringify(e.properties));
        if (want.late) this.ctx.counters.path("late_accepted");
        if (m.acceptances.get(e.id)!.length > 1) this.ctx.counters.path("dedupe_reaccept");
      }
    }
    this.ctx.counters.path("close_watermark", m.everClosed.length - closedBefore);
    return m;
  }

  /**
   * The process host's group commit: its commands in the order they ran. The model takes each; the
   * actors are compared once, after the last (the actor in memory holds the whole turn).
   */
  turnCommitted(commands: readonly CommittedCommand[], actorOf: (key: string) => Actor | undefined): void {
    const touched = new Set<string>();
    for (const command of commands) {
      if (command.kind === "ingest") {
        this.checkOutcomes(command.key, command.events, command.outcomes!, command.now);
        touched.add(command.key);
      } else if (command.kind === "tick") {
        const m = this.model(command.key);
        const closedBefore = m.everClosed.length;
        m.tick(command.now);
        this.ctx.counters.path("close_idle", m.everClosed.length - closedBefore);
        touched.add(command.key);
      } else if (command.kind === "settle") for (const s of command.settlements) touched.add(s.key);
      else touched.add(command.key);
    }
    for (const key of touched) {
      const actor = actorOf(key);
      if (actor && this.models.has(key)) this.compareFacts(this.model(key), actor, "after a group commit");
    }
  }

  tickCommitted(key: string, now: number, actor: Actor): void {
    const m = this.model(key);
    const closedBefore = m.everClosed.length;
    const keptBefore = m.closed.length;
    m.tick(now);
    const closed = m.everClosed.length - closedBefore;
    this.ctx.counters.path("close_idle", closed);
    if (m.closed.length < keptBefore + closed) this.ctx.counters.path("closed_purged");
    this.compareFacts(m, actor, "after an alarm tick commit", "exact");
  }

  deliveryCommitted(key: string, actor: Actor): void {
    this.compareFacts(this.model(key), actor, "after an alarm's delivery commit");
  }

  acknowledged(key: string, events: readonly Event[], outcomes: readonly IngestOutcome[]): void {
    const m = this.model(key);
    let set = this.acked.get(key);
    if (!set) this.acked.set(key, (set = new Set()));
    events.forEach((e, i) => {
      if (!m.acceptances.has(e.id)) {
        this.violation(`client acknowledged (${fmt(outcomes[i])}) for event ${e.id} of ${JSON.stringify(key)}, which was never durably accepted`);
      }
      set.add(e.id);
    });
  }

  applied(sink: ObservedSink, r: OutboxRecord): void {
    const id = effectId(r);
    const m = this.models.get(r.key);
    const text = payload(r);
    if (sink.poison(r)) this.violation(`${sink.name} applied ${id}, a record it refuses permanently`);
    if (r.kind === "event") {
      const list = m?.acceptances.get(r.id);
      if (!list) {
        this.violation(`${sink.name} received event ${r.id} of ${JSON.stringify(r.key)}, which was never accepted (durably)`);
      } else {
        const props = this.props.get(`${r.key}\u0000${r.id}`);
        const ok = list.some(
          (a) => a.ts === r.ts && a.type === r.type && a.value === r.value && a.receivedAt === r.receivedAt && a.late === r.late && a.requestId === r.requestId && props === JSON.stringify(r.properties),
        );
        if (!ok) this.violation(`${sink.name} received event ${r.id} with content ${text}; accepted as ${JSON.stringify(list)}`);
      }
    } else if (r.kind === "window") {
      const em = m?.emissions.get(id);
      if (!em) {
        this.violation(`${sink.name} received window ${id}, which the model never emitted`);
      } else {
        const got = `${win({ ...r, rev: r.revision })} final=${r.final} retracted=${r.retracted === true}`;
        const want = `${win({ ...em, rev: em.revision })} final=${em.final} retracted=${em.retracted === true}`;
        if (got !== want || r.closedAt !== em.closedAt) this.violation(`${sink.name} received window ${got} closedAt=${r.closedAt}; the model says ${want} closedAt=${em.closedAt}`);
      }
    } else if (r.kind === "alert") {
      const want = m?.alerts.get(id);
      const got = { rule: r.rule, shape: r.window.shape, start: r.window.start, end: r.window.end, aggregate: r.aggregate, value: r.value, eventId: r.eventId, firedAt: r.firedAt };
      if (!want) this.violation(`${sink.name} received alert ${JSON.stringify(got)} of ${JSON.stringify(r.key)}, which the model never fired`);
      else if (JSON.stringify(got) !== JSON.stringify(want)) this.violation(`${sink.name} received alert ${JSON.stringify(got)}; the model fired ${JSON.stringify(want)}`);
    } else if (r.kind === "dead_letter" && sink.name !== MIRROR_SINK) {
      this.violation(`${sink.name} received a dead-letter mirror meant for ${MIRROR_SINK}`);
    }
    const seen = sink.effects.get(id);
    if (!seen && r.kind === "window" && r.type !== undefined) this.ctx.counters.path(r.retracted ? "session_retraction_delivered" : "type_window_delivered");
    if (!seen && r.kind === "alert") this.ctx.counters.path("alert_delivered");
    if (seen && seen.text !== text) {
      const reaccepted = r.kind === "event" && (m?.acceptances.get(r.id)?.length ?? 0) > 1;
      if (!reaccepted) this.violation(`duplicate effect at ${sink.name}: ${id} applied as ${seen.text} and again as ${text}`);
    }
  }

  /** The actor's facts against the model's (cheap: run after every commit). */
  /**
   * dedupe: "exact" after an ingest or a tick (both forgot what expired by now); "restored" for an
   * actor just rebuilt from storage (it forgot what expired by now, the model not yet); "range"
   * otherwise (the actor may have been restored since its last ingest or tick, or not).
   */
  private compareFacts(m: KeyModel, actor: Actor, when: string, dedupe: "exact" | "restored" | "range" = "range"): void {
    if (this.first) return;
    const s = actor.snapshot();
    const problems: string[] = [];
    const t = s.totals;
    const byType = (o: Map<string, number>) => JSON.stringify([...o].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (t.events !== m.totals.events || t.duplicates !== m.totals.duplicates || t.late !== m.totals.late || byType(t.byType) !== byType(m.totals.byType)) {
      problems.push(`totals ${JSON.stringify(t)} vs model ${JSON.stringify(m.totals)}`);
    }
    for (const f of ["firstEventAt", "lastEventAt", "lastArrival", "watermark"] as const) {
      if (s[f] !== m[f]) problems.push(`${f} ${s[f]} vs model ${m[f]}`);
    }
    const open = s.open.map((w) => win(w)).sort();
    const mopen = m.openWindows().map((w) => win(w)).sort();
    if (open.join("|") !== mopen.join("|")) problems.push(`open windows [${open.join("; ")}] vs model [${mopen.join("; ")}]`);
    const closedProblem = this.closedDiff(s.closed, m.closed, false);
    if (closedProblem) problems.push(closedProblem);
    // After an ingest or a tick, both forgot what expired by now; otherwise the actor may have been
    // restored since (which forgets what expired by then) or not.
    const low = dedupe === "exact" ? m.dedupeSize : m.dedupeSizeAt(this.ctx.sched.now());
    const high = dedupe === "restored" ? low : m.dedupeSize;
    if (s.dedupeIds < low || s.dedupeIds > high) problems.push(`${s.dedupeIds} dedupe IDs vs model ${low === high ? low : `${low}..${high}`}`);
    if (s.lateLogSize !== m.lateLog.length) problems.push(`late log of ${s.lateLogSize} vs model ${m.lateLog.length}`);
    // Memory bounds.
    this.peaks.dedupeIds = Math.max(this.peaks.dedupeIds, s.dedupeIds);
    this.peaks.closed = Math.max(this.peaks.closed, s.closed.length);
    if (s.dedupeIds > this.config.dedupeMaxIds) problems.push(`dedupe holds ${s.dedupeIds} IDs > dedupeMaxIds ${this.config.dedupeMaxIds}`);
    if (s.closed.length > this.config.maxClosedWindows) problems.push(`${s.closed.length} closed windows > maxClosedWindows ${this.config.maxClosedWindows}`);
    if (problems.length) this.violation(`actor ${JSON.stringify(m.key)} diverges from the model ${when}: ${problems.join("; ")}`);
  }

  /**
   * The closed windows an actor keeps against the model's. The model drops a window as soon as it is
   * past retention; the actor may keep such windows until its next alarm (retention is purged on
   * tick, and on closing): so the actor's list is the model's, after a prefix of windows past retention.
   */
  private closedDiff(actual: WindowLike[], model: WindowLike[], full: boolean): string | undefined {
    const extra = actual.length - model.length;
    const cutoff = this.ctx.sched.now() - this.config.closedRetentionMs;
    const list = (ws: WindowLike[]) => ws.slice(-4).map(win).join("; ");
    const expired = extra >= 0 && actual.slice(0, extra).every((w) => w.closedAt! <= cutoff);
    let same = expired;
    for (let i = full ? 0 : Math.max(0, model.length - 1); same && i < model.length; i++) same = win(actual[extra + i]!) === win(model[i]!);
    if (same) return undefined;
    return `closed windows kept: ${actual.length} [${list(actual)}] vs model ${model.length} [${list(model)}] (retention cutoff ${cutoff})`;
  }

  /** The full checks, after the liveness phase. */
  finish(host: SimHost, keys: readonly string[], sinks: readonly SimSink[], requests: readonly ClientRequest[], shortBudget: boolean): void {
    this.phase = "final";
    this.task = "end of run";
    const now = this.ctx.sched.now();
    const config = this.config;
    const pending = requests.filter((r) => !r.done);
    if (pending.length) {
      const first = pending[0]!;
      const backlog = host.durable(first.key, now)?.outbox.backlog() ?? 0;
      this.violation(
        `liveness: ${pending.length} client requests never acknowledged (first: #${first.id} for ${JSON.stringify(first.key)}, ${first.attempts} attempts; ` +
          `its outbox backlog is ${backlog} (outboxMax ${config.outboxMax}), ${host.wakePending(first.key) ? "an alarm is armed" : "no alarm is armed"}, alarms dropped so far: ${this.ctx.counters.paths.alarm_dropped})`,
      );
    }
    const deadAll: Array<{ key: string; entry: DeadLetter }> = [];
    for (const key of keys) {
      const m = this.models.get(key);
      const rows = host.storedRows(key);
      if (!m) {
        if (rows.length) this.violation(`${JSON.stringify(key)} has ${rows.length} rows in storage but never committed an ingest`);
        continue;
      }
      const actor = host.durable(key, now);
      if (!actor) {
        this.violation(`${JSON.stringify(key)} committed ingests but storage rebuilds no actor for it`);
        continue;
      }
      const durable = actor.snapshot();
      // Liveness: everything converged.
      const modelOpen = m.openWindows().length;
      if (modelOpen) this.violation(`liveness: the model of ${JSON.stringify(key)} still has ${modelOpen} open windows (alarms did not close them)`);
      if (durable.open.length) this.violation(`liveness: ${JSON.stringify(key)} still has ${durable.open.length} open windows in storage`);
      for (const sink of config.sinks) {
        const backlog = actor.outbox.backlog(sink);
        if (backlog) this.violation(`liveness: the outbox of ${JSON.stringify(key)} still holds ${backlog} records for ${sink}`);
      }
      const segments = rows.filter(([k]) => k.startsWith(ACTOR_ROW.outboxPrefix)).length;
      if (segments) this.violation(`storage of ${JSON.stringify(key)} keeps ${segments} outbox segments after every sink took them`);
      // Durable state equals the model.
      this.compareDurable(m, actor);
      const live = host.live(key);
      if (live) {
        const strip = (a: Actor) => JSON.stringify({ ...a.snapshot(), dedupeIds: 0, dead: a.outbox.deadLetters(), backlog: a.outbox.backlog() });
        if (strip(live) !== strip(actor)) this.violation(`the live instance of ${JSON.stringify(key)} differs from its storage: ${strip(live)} vs ${strip(actor)}`);
      }
      // Acknowledged events are all known to the model (checked as they came, re-checked here).
      for (const id of this.acked.get(key) ?? []) if (!m.acceptances.has(id)) this.violation(`acknowledged event ${id} was never accepted`);
      for (const entry of actor.outbox.deadLetters()) deadAll.push({ key, entry });
      this.checkSinks(key, m, actor.outbox.deadLetters(), sinks);
    }
    this.checkMirror(deadAll, sinks, shortBudget);
  }

  private compareDurable(m: KeyModel, actor: Actor): void {
    const s = actor.snapshot();
    const key = JSON.stringify(m.key);
    this.compareFacts(m, actor, "in storage at the end", "restored");
    const closedProblem = this.closedDiff(s.closed, m.closed, true);
    if (closedProblem) this.violation(`${key} in storage at the end: ${closedProblem}`);
    const late = JSON.stringify(actor.lateLog());
    const mlate = JSON.stringify(m.lateLog);
    if (late !== mlate) this.violation(`late log of ${key} differs from the model: ${late} vs ${mlate}`);
  }

  /** Every record the model says the sinks must hold, by effect id, with how many times it was emitted and a sample for the poison predicate. */
  private expectedIds(key: string, m: KeyModel): Map<string, { count: number; sample: OutboxRecord }> {
    const out = new Map<string, { count: number; sample: OutboxRecord }>();
    const add = (sample: unknown) => {
      const id = effectId(sample as OutboxRecord);
      const seen = out.get(id);
      if (seen) seen.count++;
      else out.set(id, { count: 1, sample: sample as OutboxRecord });
    };
    for (const [id, list] of m.acceptances) for (let i = 0; i < list.length; i++) add({ kind: "event", key, id });
    for (const em of m.emissions.values()) add({ kind: "window", key, spec: em.spec, start: em.start, end: em.end, revision: em.revision, type: em.type, retracted: em.retracted });
    for (const a of m.alerts.values()) add({ kind: "alert", key, rule: a.rule, window: { shape: a.shape, start: a.start, end: a.end } });
    return out;
  }

  /** After the repair phase (sinks fixed, every DLQ replayed): every record is at every sink, every DLQ is empty. */
  finishRepair(host: SimHost, keys: readonly string[], sinks: readonly SimSink[], mirrorsBefore: number): void {
    this.phase = "repair";
    this.task = "end of the repair phase";
    const now = this.ctx.sched.now();
    for (const key of keys) {
      const m = this.models.get(key);
      if (!m) continue;
      const rows = host.storedRows(key);
      const actor = host.durable(key, now);
      if (!actor) {
        this.violation(`${JSON.stringify(key)} has no durable actor after the DLQ replay`);
        continue;
      }
      const dead = actor.outbox.deadLetters();
      if (dead.length) this.violation(`after the DLQ replay, ${JSON.stringify(key)} still has ${dead.length} dead letters (first: ${dead[0]!.sink} ${effectId(dead[0]!.record)}: ${dead[0]!.error})`);
      for (const sink of this.config.sinks) {
        const backlog = actor.outbox.backlog(sink);
        if (backlog) this.violation(`after the DLQ replay, the outbox of ${JSON.stringify(key)} still holds ${backlog} records for ${sink}`);
      }
      const segments = rows.filter(([k]) => k.startsWith(ACTOR_ROW.outboxPrefix)).length;
      if (segments) this.violation(`after the DLQ replay, storage of ${JSON.stringify(key)} keeps ${segments} outbox segments`);
      this.compareFacts(m, actor, "in storage after the DLQ replay", "restored");
      for (const id of this.expectedIds(key, m).keys()) {
        for (const sink of sinks) if (!sink.effects.has(id)) this.violation(`after the DLQ replay, ${sink.name} still lacks ${id}`);
      }
    }
    const mirrors = mirrorCount(sinks);
    if (mirrors !== mirrorsBefore) this.violation(`the DLQ replay changed the dead-letter mirrors: ${mirrorsBefore} before, ${mirrors} after`);
  }

  /** Every record the model emitted is at every sink, or in that sink's dead-letter queue; the DLQ holds exactly the refused ones. */
  private checkSinks(key: string, m: KeyModel, dead: DeadLetter[], sinks: readonly SimSink[]): void {
    const emitted = this.expectedIds(key, m);
    for (const sink of sinks) {
      const dlq = new Map<string, DeadLetter[]>();
      for (const d of dead) {
        if (d.sink !== sink.name) continue;
        const id = effectId(d.record);
        const list = dlq.get(id);
        if (list) list.push(d);
        else dlq.set(id, [d]);
      }
      for (const [id, { count, sample }] of emitted) {
        const poison = sink.poison(sample);
        const inDlq = dlq.get(id)?.length ?? 0;
        if (poison) {
          if (inDlq !== count) this.violation(`${sink.name}: ${id} is refused permanently, emitted ${count}x, but the DLQ holds it ${inDlq}x`);
          else this.ctx.counters.path("dlq_permanent", count);
        } else if (!sink.effects.has(id) && inDlq === 0) {
          this.violation(`${sink.name} never received ${id} (accepted / emitted by ${JSON.stringify(key)}), and it is not in its DLQ`);
        } else if (inDlq > count) {
          this.violation(`${sink.name}: ${id} is in the DLQ ${inDlq}x but was emitted ${count}x`);
        }
      }
      for (const [id, list] of dlq) {
        if (!emitted.has(id)) this.violation(`${sink.name}'s DLQ holds ${id}, which the model never emitted`);
        const sample = list[0]!.record;
        const poison = sink.poison(sample as OutboxRecord);
        for (const d of list) {
          if (!poison && !d.error.startsWith("retry budget")) this.violation(`${sink.name}'s DLQ holds ${id}, which never failed permanently (error: ${d.error})`);
          else if (!poison) this.ctx.counters.path("dlq_budget");
        }
      }
    }
  }

  /** Dead letters are mirrored to the postgres sink, exactly (unless the mirror itself ran out of retry budget). */
  private checkMirror(dead: Array<{ key: string; entry: DeadLetter }>, sinks: readonly SimSink[], shortBudget: boolean): void {
    const pg = sinks.find((s) => s.name === MIRROR_SINK);
    if (!pg) return;
    const entries = new Map<string, DeadLetter>();
    for (const { key, entry } of dead) entries.set(`dead|${key}|${entry.sink}|${entry.record.n}`, entry);
    for (const [id, entry] of entries) {
      const effect = pg.effects.get(id);
      if (!effect) {
        if (!shortBudget) this.violation(`dead letter ${id} was never mirrored to ${MIRROR_SINK}`);
        continue;
      }
      this.ctx.counters.path("mirror_delivered");
      const r = effect.record;
      if (r.kind !== "dead_letter" || JSON.stringify(r.record) !== JSON.stringify(entry.record)) {
        this.violation(`mirror ${id} at ${MIRROR_SINK} holds ${effect.text}; the DLQ entry is ${JSON.stringify(entry)}`);
      }
    }
    for (const [id, effect] of pg.effects) {
      if (effect.record.kind === "dead_letter" && !entries.has(id)) this.violation(`${MIRROR_SINK} holds mirror ${id} with no dead letter behind it`);
    }
  }
}

/** Dead letters mirrored to the mirror sink (Postgres failed_events) so far. */
export function mirrorCount(sinks: readonly SimSink[]): number {
  const mirror = sinks.find((s) => s.name === MIRROR_SINK);
  return mirror ? [...mirror.effects.values()].filter((e) => e.record.kind === "dead_letter").length : 0;
}

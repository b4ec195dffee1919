/**
 * Runs a generated workload against a Target over HTTP, checks every response against the rules,
 * keeps the reference model, verifies every key's state at the end, shrinks each distinct failure
 * to a small request that reproduces it alone on a fresh in-process app, and writes a report.
 */
import { inProcessTarget, type Target } from "../support/targets.ts";
import { PollutionGuard } from "./guard.ts";
import { isWellFormed } from "./json.ts";
import { expectedState, Model, pairKey, type Agg, type WindowExpect } from "./model.ts";
import {
  ALLOWED,
  encodeBody,
  HOSTILE_VALID_TYPES,
  materializeEvents,
  MINUTE,
  type ItemSpec,
  type ModelEvent,
  type Pool,
  type RequestSpec,
  type Simplify,
  type Times,
  type Workload,
} from "./workload.ts";

/** Settings every fuzz target runs with: one 1-minute window, nothing closes or goes late during a run. */
export const FUZZ_ENV = {
  KEYFLOW_WINDOWS: "1m",
  KEYFLOW_ALLOWED_LATENESS: "1h",
  KEYFLOW_IDLE_TIMEOUT: "1h",
  KEYFLOW_MAX_BATCH_EVENTS: "10000",
};

// ---------------------------------------------------------------------------------------------
// Sending.

export interface Outcome {
  status?: number;
  headers?: Headers;
  text: string;
  json?: any;
  failure?: "timeout" | "threw";
  failureMessage?: string;
  start: number;
  end: number;
  pollution?: string[];
}

export async function send(target: Target, spec: Pick<RequestSpec, "method" | "path" | "headers" | "body">, timeoutMs: number, guard?: PollutionGuard): Promise<Outcome> {
  const start = Date.now();
  const body = spec.body === undefined ? undefined : typeof spec.body === "string" ? encodeBody(spec.body) : spec.body;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  let pollution: string[] | undefined;
  const work = (async () => {
    try {
      const res = await target.fetch(spec.path, {
        method: spec.method,
        headers: spec.headers,
        body: body as BodyInit | undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      pollution = guard?.checkAndRestore();
      const text = await res.text();
      return { res, text };
    } catch (e) {
      pollution ??= guard?.checkAndRestore();
      throw e;
    }
  })();
  try {
    const r = await Promise.race([work, timeout]);
    if (r === "timeout") {
      work.catch(() => {});
      return { text: "", failure: "timeout", failureMessage: `no response within ${timeoutMs} ms`, start, end: Date.now(), pollution };
    }
    let json: any;
    if ((r.res.headers.get("content-type") ?? "").includes("json") && r.text) {
      try {
        json = JSON.parse(r.text);
      } catch {
        json = undefined;
      }
    }
    return { status: r.res.status, headers: r.res.headers, text: r.text, json, start, end: Date.now(), pollution: pollution?.length ? pollution : undefined };
  } catch (e) {
    const err = e as Error;
    const isTimeout = err?.name === "TimeoutError" || err?.name === "AbortError";
    return {
      text: "",
      failure: isTimeout ? "timeout" : "threw",
      failureMessage: isTimeout ? `no response within ${timeoutMs} ms` : `${err?.name ?? "Error"}: ${err?.message ?? String(e)}`,
      start,
      end: Date.now(),
      pollution: pollution?.length ? pollution : undefined,
    };
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Violations.

export const RULES: Record<string, string> = {
  "5xx": "never a 5xx (nor an exception out of the app)",
  hang: "never a hang: every request answers within the bound",
  pollution: "no input changes the process's built-in prototypes",
  poisoned: "no input leaves the server answering 5xx to everything (/health included)",
  "error-shape": "every error is JSON {error:{code,message}}",
  status: "the status the rules give",
  "valid-rejected": "a valid event is accepted",
  "invalid-accepted": "an invalid event is rejected",
  "error-fields": "a rejection names each bad field (and only fields that are bad)",
  "error-code": "an error carries the code the rules give",
  batch: "a batch reports accepted/duplicates/rejected/assigned_ids consistently",
  verdict: "accepted the first time, duplicate afterwards (per key and event_id)",
  allow: "a 405 (and OPTIONS) carries an Allow header naming the route's methods",
  phantom: "no actor exists for a key without accepted events",
  "unreadable-key": "every accepted key is readable at /v1/actors/<encodeURIComponent(key)> with body.key === key",
  state: "every key's state equals what its acknowledged valid events produce",
  "type-filter": "windows?type=T returns only windows holding events of type T",
  health: "/health answers 200 at the end",
  raw: "raw HTTP: lying Content-Length, malformed requests: no 5xx, no hang",
};

export interface Violation {
  rule: string;
  message: string;
  spec?: RequestSpec;
  outcome?: Outcome;
  /** Labels that identify the failure (the mutations of the item at fault, or the request's labels). */
  labels: string[];
  itemIndex?: number;
  /** Reported for a response after the server was found poisoned: a consequence, not a cause. */
  whilePoisoned?: boolean;
  /** "unnamed": a rejection (for another field) that does not name this invalid field. "after-failure": spec is the failed request. */
  tag?: string;
  /** A request that shows the failure after `spec` (the GET of a phantom actor). */
  then?: { spec: RequestSpec; outcome: Outcome };
  /** Raw-socket cases: what was written and what came back. */
  raw?: { request: string; response: string };
}

const isUuidV7 = (s: unknown) => typeof s === "string" && /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(s);

export function responseSummary(o: Outcome | undefined, max = 300): string {
  if (!o) return "(none)";
  if (o.failure) return `${o.failure === "timeout" ? "TIMEOUT" : "THREW"}: ${o.failureMessage}`;
  const ct = o.headers?.get("content-type");
  const allow = o.headers?.get("allow");
  const body = o.text.length > max ? `${o.text.slice(0, max)}… (${o.text.length} bytes)` : o.text;
  return `${o.status}${ct ? ` [${ct}]` : ""}${allow ? ` [Allow: ${allow}]` : ""} ${printable(body || "(empty body)")}`;
}

/** JSON text of anything (undefined included). */
export const js = (v: unknown): string => JSON.stringify(v) ?? "undefined";

/** Control characters, lone surrogates and raw-byte markers made visible; long runs collapsed. */
export function printable(text: string, max = 700): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const ch = text[i]!;
    if (ch === "\uE000") out += "<bytes FF FE>";
    else if (ch === "\uE001") out += "<bytes ED A0 80>";
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0) || c === 0x2028 || c === 0x2029 || c === 0xfeff) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && text.charCodeAt(i + 1) >= 0xdc00 && text.charCodeAt(i + 1) <= 0xdfff) {
      out += ch + text[i + 1]!;
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += `\\u${c.toString(16)}(lone)`;
    else out += ch;
  }
  out = out.replace(/(.)\1{19,}/gu, (run, ch: string) => `${ch}{×${[...run].length}}`);
  out = out.replace(/((?:\[|\{"a":){6})(?:\[|\{"a":)+/g, (run) => `${run.slice(0, 12)}…(${run.length} chars of nesting)`);
  return out.length > max ? `${out.slice(0, max)}… (${text.length} chars)` : out;
}

// ---------------------------------------------------------------------------------------------
// Checking one response.

interface CheckContext {
  model: Model;
  violations: Violation[];
  times: Times;
  /** Set while the server is known to answer 5xx to everything. */
  poisoned: boolean;
  stats?: Stats;
}

/** What the run exercised: events by verdict, and what the server made of events of uncertain validity. */
export interface Stats {
  accepted: Record<ItemSpec["verdict"], number>;
  rejected: Record<ItemSpec["verdict"], number>;
  uncertain: Map<string, { accepted: number; rejected: number }>;
  kinds: Map<string, number>;
}

export const newStats = (): Stats => ({ accepted: { valid: 0, invalid: 0, uncertain: 0 }, rejected: { valid: 0, invalid: 0, uncertain: 0 }, uncertain: new Map(), kinds: new Map() });

function tally(ctx: CheckContext, item: ItemSpec, taken: boolean): void {
  if (!ctx.stats) return;
  (taken ? ctx.stats.accepted : ctx.stats.rejected)[item.verdict]++;
  if (item.verdict === "uncertain") {
    const label = item.openLabel ?? mutationLabels(item).join(", ");
    const t = ctx.stats.uncertain.get(label) ?? ctx.stats.uncertain.set(label, { accepted: 0, rejected: 0 }).get(label)!;
    if (taken) t.accepted++;
    else t.rejected++;
  }
}

function violation(ctx: CheckContext, v: Violation): void {
  if (ctx.poisoned) v.whilePoisoned = true;
  ctx.violations.push(v);
}

function mutationLabels(item: ItemSpec): string[] {
  const r = item.recipe;
  if (r.t === "tmpl" || r.t === "anon") {
    const fields = new Set<string>();
    const ls = r.muts.filter((m) => !fields.has(m.field) && fields.add(m.field)).map((m) => m.label);
    if (r.t === "tmpl" && r.tsFormat) ls.push(`timestamp ${r.tsFormat}`);
    if (r.t === "anon" && r.labels?.length && r.keyOverride !== undefined) ls.push(...r.labels);
    return ls.length ? ls : item.labels;
  }
  return [r.label];
}

/** Common checks on any response: no 5xx, no hang, errors are JSON naming a code and a message. Returns false when there is no usable response. */
function checkBasics(ctx: CheckContext, spec: RequestSpec, o: Outcome): boolean {
  if (o.pollution?.length) {
    violation(ctx, { rule: "pollution", message: `after this request: ${o.pollution.join("; ")}`, spec, outcome: o, labels: spec.labels });
  }
  if (o.failure === "timeout") {
    violation(ctx, { rule: "hang", message: o.failureMessage!, spec, outcome: o, labels: spec.labels });
    return false;
  }
  if (o.failure === "threw") {
    violation(ctx, { rule: "5xx", message: `the app threw instead of answering: ${o.failureMessage}`, spec, outcome: o, labels: spec.labels });
    return false;
  }
  if (o.status! >= 500) {
    violation(ctx, { rule: "5xx", message: `answered ${o.status}`, spec, outcome: o, labels: spec.labels });
    return false;
  }
  if (o.status! >= 400 && spec.method !== "HEAD") {
    const e = o.json?.error;
    const ct = o.headers?.get("content-type") ?? "";
    if (!ct.includes("application/json") || typeof e?.code !== "string" || !e.code || typeof e?.message !== "string" || !e.message) {
      violation(ctx, { rule: "error-shape", message: `a ${o.status} whose body is not {"error":{"code","message"}} JSON`, spec, outcome: o, labels: spec.labels });
    }
  }
  if (o.status! >= 300 && o.status! < 400) {
    violation(ctx, { rule: "status", message: `a redirect (${o.status})`, spec, outcome: o, labels: spec.labels });
  }
  return true;
}

const fieldMatches = (got: string, name: string) => got === name || got.startsWith(`${name}.`) || got.startsWith(`${name}[`);

/** A rejection of an item: its code, and the fields it names. */
function checkRejection(ctx: CheckContext, spec: RequestSpec, o: Outcome, item: ItemSpec, error: any, index: number, line?: number): void {
  tally(ctx, item, false);
  const labels = mutationLabels(item);
  if (typeof error?.code !== "string" || !item.rejectCodes.includes(error.code)) {
    violation(ctx, { rule: "error-code", message: `item ${index} rejected with code ${JSON.stringify(error?.code)}, expected ${item.rejectCodes.join(" or ")}`, spec, outcome: o, labels, itemIndex: index });
    return;
  }
  if (typeof error.message !== "string" || !error.message) {
    violation(ctx, { rule: "error-shape", message: `item ${index} rejected without a message`, spec, outcome: o, labels, itemIndex: index });
  }
  if (error.code === "malformed_json") {
    const d = error.details;
    if (typeof d?.position !== "number" || typeof d?.line !== "number" || typeof d?.column !== "number") {
      violation(ctx, { rule: "error-fields", message: `malformed_json without position/line/column details`, spec, outcome: o, labels, itemIndex: index });
    } else if (line !== undefined && d.line !== line) {
      violation(ctx, { rule: "error-fields", message: `malformed NDJSON line reported as line ${d.line}, it is line ${line}`, spec, outcome: o, labels, itemIndex: index });
    }
    return;
  }
  if (error.code !== "invalid_event" || item.allowed.includes("*")) return;
  const details = error.details;
  if (!Array.isArray(details) || details.some((d: any) => typeof d?.field !== "string" || typeof d?.message !== "string")) {
    violation(ctx, { rule: "error-fields", message: `invalid_event without details [{field, message}]`, spec, outcome: o, labels, itemIndex: index });
    return;
  }
  const fields = details.map((d: any) => d.field as string);
  item.bad.forEach((names, j) => {
    if (!fields.some((f) => names.some((n) => fieldMatches(f, n)))) {
      const why = item.badLabels[j] ?? labels.join(", ");
      violation(ctx, { rule: "error-fields", message: `the rejection does not name ${names.join(" or ")} (${why}); it names ${JSON.stringify(fields)}`, spec, outcome: o, labels: [why], itemIndex: index, tag: "unnamed" });
    }
  });
  const stray = fields.filter((f) => !item.allowed.some((n) => fieldMatches(f, n)));
  if (stray.length) {
    violation(ctx, { rule: "error-fields", message: `the rejection names ${JSON.stringify(stray)}, which ${stray.length > 1 ? "are" : "is"} valid in this event (details: ${printable(js(details), 300)})`, spec, outcome: o, labels: [...labels, `names valid field ${stray.join(", ")}`], itemIndex: index });
  }
}

/** The server took an item: record it (and report it when it is invalid). */
function acknowledge(ctx: CheckContext, spec: RequestSpec, o: Outcome, item: ItemSpec, index: number, assignedId?: string): void {
  tally(ctx, item, true);
  const interval: [number, number] = [o.start, o.end];
  if (item.verdict === "invalid") {
    const labels = mutationLabels(item);
    violation(ctx, { rule: "invalid-accepted", message: `item ${index} (${labels.join(", ")}) was accepted`, spec, outcome: o, labels, itemIndex: index });
    if (item.ev) ctx.model.ack(assignedId && item.ev.id === null ? { ...item.ev, id: assignedId } : item.ev, interval, labels.join(", "));
    else if (item.keyString !== undefined) ctx.model.unknown(item.keyString, `took an invalid event whose content is not predictable (${labels.join(", ")})`);
    return;
  }
  if (!item.ev) {
    if (item.keyString !== undefined) ctx.model.unknown(item.keyString, "took an event of uncertain content");
    return;
  }
  const ev = item.ev.id === null ? { ...item.ev, id: assignedId ?? null } : item.ev;
  if (ev.id === null) {
    ctx.model.unknown(ev.key, "an event with a server-assigned id whose id was not reported");
    return;
  }
  ctx.model.ack(item.ev.id === null ? { ...ev, id: null } : ev, interval);
}

function touch(ctx: CheckContext, spec: RequestSpec): void {
  for (const it of spec.items ?? []) if (it.keyString !== undefined) ctx.model.touched.add(it.keyString);
}

function unknownOutcome(ctx: CheckContext, spec: RequestSpec, why: string): void {
  ctx.model.unknownOutcomes++;
  for (const it of spec.items ?? []) {
    if (it.ev) ctx.model.unknown(it.ev.key, why, it.ev, spec);
    else if (it.keyString !== undefined) ctx.model.unknown(it.keyString, why, undefined, spec);
  }
}

export function checkResponse(ctx: CheckContext, spec: RequestSpec, o: Outcome): void {
  touch(ctx, spec);
  if (ctx.stats) ctx.stats.kinds.set(spec.kind, (ctx.stats.kinds.get(spec.kind) ?? 0) + 1);
  const ok = checkBasics(ctx, spec, o);
  if (!ok) {
    unknownOutcome(ctx, spec, `request #${spec.n} got no answer (${o.failure ?? o.status})`);
    return;
  }
  const e = spec.expect;
  switch (e.kind) {
    case "events":
      return spec.mode === "single" ? checkSingle(ctx, spec, o) : checkBatch(ctx, spec, o);
    case "error": {
      const code = o.json?.error?.code;
      if (o.status! < 300 && e.orBatchAllRejected && o.json && o.json.accepted === 0 && o.json.duplicates === 0) return;
      if (!e.status.includes(o.status!) || (o.status! >= 400 && !e.codes.includes(code))) {
        violation(ctx, { rule: o.status! < 300 ? "status" : code && e.status.includes(o.status!) ? "error-code" : "status", message: `expected ${e.status.join("/")} ${e.codes.join(" or ")}, got ${o.status} ${code ?? ""}`, spec, outcome: o, labels: spec.labels });
      } else if (e.position) {
        const d = o.json?.error?.details;
        if (typeof d?.position !== "number" || typeof d?.line !== "number" || typeof d?.column !== "number") {
          violation(ctx, { rule: "error-fields", message: "malformed_json without position/line/column details", spec, outcome: o, labels: spec.labels });
        }
      }
      if (o.status! < 300 && spec.items?.length) {
        // The server took what it should have refused (a wrong Content-Type): keep the model in step.
        const body = o.json ?? {};
        void body;
        for (const it of spec.items) {
          if (it.ev) ctx.model.ack(it.ev, [o.start, o.end], spec.labels.join(", "));
          else if (it.keyString !== undefined) ctx.model.unknown(it.keyString, "took an event it should have refused");
        }
      }
      return;
    }
    case "route":
      return checkRoute(ctx, spec, o);
    case "generic":
      if (e.notFound && o.status !== 404) {
        violation(ctx, { rule: "status", message: `expected 404 not_found, got ${o.status}`, spec, outcome: o, labels: spec.labels });
      }
      return;
  }
}

function checkSingle(ctx: CheckContext, spec: RequestSpec, o: Outcome): void {
  const item = spec.items![0]!;
  const body = o.json;
  if (o.status === 202 || o.status === 200) {
    const expectedStatus = o.status === 202 ? "accepted" : "duplicate";
    if (body?.status !== expectedStatus || typeof body?.event_id !== "string") {
      violation(ctx, { rule: "status", message: `a ${o.status} whose body is not {"status":"${expectedStatus}","event_id"}`, spec, outcome: o, labels: spec.labels });
    }
    if (body?.late && item.verdict !== "invalid") violation(ctx, { rule: "state", message: "an event was reported late, none should be", spec, outcome: o, labels: ["an event reported late"] });
    if (item.ev && item.verdict !== "invalid") {
      if (item.ev.id === null) {
        if (o.status !== 202 || body?.id_assigned !== true || !isUuidV7(body?.event_id)) {
          violation(ctx, { rule: "verdict", message: `an event without event_id must be 202 with id_assigned and a UUIDv7 event_id`, spec, outcome: o, labels: spec.labels });
        }
      } else {
        if (body?.event_id !== item.ev.id) {
          violation(ctx, { rule: "status", message: `event_id echoed as ${printable(js(body?.event_id))}, sent ${printable(js(item.ev.id))}`, spec, outcome: o, labels: spec.labels });
        }
        const st = ctx.model.status(item.ev);
        if ((st === "new" && o.status !== 202) || (st === "old" && o.status !== 200)) {
          violation(ctx, { rule: "verdict", message: `this key and event_id ${st === "new" ? "was never acknowledged before, expected 202 accepted" : "was acknowledged before, expected 200 duplicate"}; got ${o.status}`, spec, outcome: o, labels: spec.labels });
        }
      }
    }
    acknowledge(ctx, spec, o, item, 0, body?.event_id);
    return;
  }
  if (o.status === 400) {
    if (item.verdict === "valid") {
      tally(ctx, item, false);
      violation(ctx, { rule: "valid-rejected", message: `a valid event was rejected: ${printable(o.json?.error?.message ?? o.text, 300)}`, spec, outcome: o, labels: item.labels, itemIndex: 0 });
      return;
    }
    checkRejection(ctx, spec, o, item, o.json?.error, 0);
    return;
  }
  violation(ctx, { rule: "status", message: `expected 202/200 or 400 invalid_event, got ${o.status}`, spec, outcome: o, labels: spec.labels });
  if (o.status! < 300) unknownOutcome(ctx, spec, `request #${spec.n} answered ${o.status}`);
}

function checkBatch(ctx: CheckContext, spec: RequestSpec, o: Outcome): void {
  const items = spec.items!;
  const body = o.json;
  if (o.status !== 200 || typeof body !== "object" || body === null || !Array.isArray(body.rejected)) {
    const valid = items.filter((i) => i.verdict === "valid").length;
    violation(ctx, { rule: o.status === 200 ? "batch" : valid ? "valid-rejected" : "status", message: `a batch of ${items.length} events (${valid} valid) answered ${o.status}, expected 200 with per-event results`, spec, outcome: o, labels: spec.labels });
    if (o.status! < 300) unknownOutcome(ctx, spec, `batch #${spec.n} answered ${o.status} without per-event results`);
    return;
  }
  for (const k of ["accepted", "duplicates", "late"]) {
    if (!Number.isInteger(body[k])) violation(ctx, { rule: "batch", message: `"${k}" is not an integer`, spec, outcome: o, labels: spec.labels });
  }
  const rejected: any[] = body.rejected;
  const idx = rejected.map((r) => r?.index);
  if (new Set(idx).size !== idx.length || idx.some((i) => !Number.isInteger(i))) {
    violation(ctx, { rule: "batch", message: `rejected indices are not distinct integers: ${printable(js(idx), 200)}`, spec, outcome: o, labels: spec.labels });
  }
  // NDJSON: an index may count items (non-blank lines) or lines; take the reading that fits better.
  const mapA = new Map<number, number>(idx.map((i) => [i, i]));
  let map = mapA;
  if (spec.mode === "ndjson" && spec.lines) {
    const byLine = new Map(spec.lines.map((line, i) => [line - 1, i]));
    const mapB = new Map<number, number>(idx.filter((i) => byLine.has(i)).map((i) => [i, byLine.get(i)!]));
    const misfit = (m: Map<number, number>) => idx.filter((i) => !m.has(i) || m.get(i)! >= items.length).length + items.filter((it, i) => it.verdict === "valid" && [...m.values()].includes(i)).length;
    if (misfit(mapB) < misfit(mapA)) map = mapB;
  }
  const rejectedItem = new Map<number, any>();
  rejected.forEach((r) => {
    const i = map.get(r?.index);
    if (i === undefined || i >= items.length) {
      violation(ctx, { rule: "batch", message: `rejected index ${JSON.stringify(r?.index)} is not an item of this batch`, spec, outcome: o, labels: spec.labels });
    } else rejectedItem.set(i, r.error);
  });
  let exact = 0;
  let extra = 0;
  let nonRejected = 0;
  const seen = new Set<string>();
  const expectAssigned: number[] = [];
  items.forEach((item, i) => {
    const err = rejectedItem.get(i);
    if (err !== undefined) {
      if (item.verdict === "valid") {
        tally(ctx, item, false);
        violation(ctx, { rule: "valid-rejected", message: `item ${i} of a batch, valid, was rejected: ${printable(err?.message ?? JSON.stringify(err), 300)}`, spec, outcome: o, labels: item.labels, itemIndex: i });
      } else checkRejection(ctx, spec, o, item, err, i, spec.mode === "ndjson" && item.malformed ? spec.lines?.[i] : undefined);
      return;
    }
    nonRejected++;
    if (!item.ev) return void extra++;
    if (item.ev.id === null) {
      exact++;
      expectAssigned.push(i);
      return;
    }
    const pk = pairKey(item.ev.key, item.ev.id);
    if (seen.has(pk)) return;
    seen.add(pk);
    const st = ctx.model.status(item.ev);
    if (st === "new") exact++;
    else if (st === "maybe") extra++;
  });
  const accepted = body.accepted as number;
  if (Number.isInteger(accepted) && Number.isInteger(body.duplicates)) {
    if (accepted + body.duplicates !== nonRejected) {
      violation(ctx, { rule: "batch", message: `accepted ${accepted} + duplicates ${body.duplicates} != ${nonRejected} events not rejected`, spec, outcome: o, labels: spec.labels });
    } else if (accepted < exact || accepted > exact + extra) {
      violation(ctx, { rule: "verdict", message: `accepted ${accepted}, expected ${extra ? `${exact}..${exact + extra}` : exact} (the others were duplicates of events already acknowledged)`, spec, outcome: o, labels: spec.labels });
    }
  }
  if (body.late && items.every((it, i) => rejectedItem.has(i) || it.verdict !== "invalid")) violation(ctx, { rule: "state", message: `late ${body.late}, no event should be late`, spec, outcome: o, labels: ["an event reported late"] });
  // assigned_ids: exactly the events without event_id that were taken, each a fresh UUIDv7.
  const assigned: any[] = body.assigned_ids ?? [];
  const assignedBy = new Map<number, string>();
  if (!Array.isArray(assigned)) violation(ctx, { rule: "batch", message: "assigned_ids is not an array", spec, outcome: o, labels: spec.labels });
  else
    for (const a of assigned) {
      const i = map.get(a?.index) ?? a?.index;
      if (!isUuidV7(a?.event_id)) violation(ctx, { rule: "batch", message: `assigned id ${JSON.stringify(a?.event_id)} is not a UUIDv7`, spec, outcome: o, labels: spec.labels });
      assignedBy.set(i, a?.event_id);
    }
  const missing = expectAssigned.filter((i) => !assignedBy.has(i));
  if (missing.length) violation(ctx, { rule: "batch", message: `no assigned id reported for items ${missing.join(", ")} (taken without event_id)`, spec, outcome: o, labels: spec.labels });
  items.forEach((item, i) => {
    if (!rejectedItem.has(i)) acknowledge(ctx, spec, o, item, i, assignedBy.get(i));
  });
}

function checkRoute(ctx: CheckContext, spec: RequestSpec, o: Outcome): void {
  const e = spec.expect as Extract<RequestSpec["expect"], { kind: "route" }>;
  const allowed = ALLOWED[e.route];
  const allowHeader = (o.headers?.get("allow") ?? "").split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
  // HEAD goes with GET; a server need not list it.
  const mustList = allowed.filter((m) => m !== "HEAD");
  if (!allowed.includes(spec.method)) {
    if (spec.method === "OPTIONS" && (o.status === 200 || o.status === 204)) {
      if (!mustList.every((m) => allowHeader.includes(m))) violation(ctx, { rule: "allow", message: `OPTIONS answered ${o.status} without Allow: ${allowed.join(", ")}`, spec, outcome: o, labels: spec.labels });
      return;
    }
    if (o.status !== 405) {
      violation(ctx, { rule: "status", message: `${spec.method} is not a method of this route: expected 405, got ${o.status}`, spec, outcome: o, labels: spec.labels });
      return;
    }
    if (spec.method !== "HEAD" && o.json?.error?.code !== "method_not_allowed") {
      violation(ctx, { rule: "error-code", message: `expected code method_not_allowed, got ${JSON.stringify(o.json?.error?.code)}`, spec, outcome: o, labels: spec.labels });
    }
    if (!mustList.every((m) => allowHeader.includes(m)) || allowHeader.includes(spec.method)) {
      violation(ctx, { rule: "allow", message: `405 with Allow ${JSON.stringify(o.headers?.get("allow"))}, expected ${allowed.join(", ")}`, spec, outcome: o, labels: spec.labels });
    }
    return;
  }
  if (e.route === "health") {
    if (o.status !== 200 || (spec.method === "GET" && o.json?.status !== "ok")) violation(ctx, { rule: "status", message: `expected 200 {"status":"ok"}`, spec, outcome: o, labels: spec.labels });
    return;
  }
  if (e.route === "events") {
    if (o.status !== 400 || o.json?.error?.code !== "invalid_event") violation(ctx, { rule: "status", message: `POST {} expected 400 invalid_event`, spec, outcome: o, labels: spec.labels });
    return;
  }
  const key = e.key!;
  const ks = ctx.model.keys.get(key);
  const exists = ks?.unknown.length ? "maybe" : ctx.model.hasEvents(key) ? "yes" : e.keyClass === "ghost" || (e.keyClass === "reject" && !ks) ? "no" : "maybe";
  const head = spec.method === "HEAD";
  if (e.query?.badField) {
    const okStatus = o.status === 400 || (exists !== "yes" && o.status === 404);
    if (!okStatus) {
      violation(ctx, { rule: "status", message: `a bad ?${e.query.badField}= expected 400 invalid_query${exists !== "yes" ? " (or 404)" : ""}, got ${o.status}`, spec, outcome: o, labels: spec.labels });
    } else if (o.status === 400 && !head) {
      const err = o.json?.error;
      const fields = Array.isArray(err?.details) ? err.details.map((d: any) => d?.field) : [];
      if (err?.code !== "invalid_query" || !fields.includes(e.query.badField)) {
        violation(ctx, { rule: "error-fields", message: `expected invalid_query naming ${e.query.badField}, got ${err?.code} ${JSON.stringify(fields)}`, spec, outcome: o, labels: spec.labels });
      }
    }
    return;
  }
  const okStatus = exists === "yes" ? [200] : exists === "no" ? [404] : [200, 404];
  if (!okStatus.includes(o.status!)) {
    violation(ctx, {
      rule: exists === "no" && o.status === 200 ? "phantom" : "status",
      message: exists === "no" ? `key ${printable(js(key))} never had an accepted event: expected 404 actor_not_found, got ${o.status}` : `key ${printable(js(key))} has accepted events: expected 200, got ${o.status}`,
      spec,
      outcome: o,
      labels: spec.labels,
    });
    return;
  }
  if (head) return;
  if (o.status === 404) {
    if (o.json?.error?.code !== "actor_not_found") violation(ctx, { rule: "error-code", message: `expected actor_not_found, got ${JSON.stringify(o.json?.error?.code)}`, spec, outcome: o, labels: spec.labels });
    return;
  }
  const body = o.json;
  if (e.route !== "outbox" && body?.key !== key) {
    violation(ctx, { rule: "unreadable-key", message: `body.key is ${printable(js(body?.key))}, requested ${printable(js(key))}`, spec, outcome: o, labels: spec.labels });
  }
  if (e.route === "state" && !(body?.totals?.events >= 1)) {
    violation(ctx, { rule: "phantom", message: `an actor with totals.events ${JSON.stringify(body?.totals?.events)} is visible`, spec, outcome: o, labels: spec.labels });
  }
  if (e.route === "windows" && e.query?.type) {
    const t = e.query.type;
    const bad = (body?.windows ?? []).filter((w: any) => w?.type !== t || !(w?.count >= 1));
    if (!Array.isArray(body?.windows) || bad.length) {
      violation(ctx, { rule: "type-filter", message: `windows?type=${t} returned windows without events of that type: ${printable(js(bad.slice(0, 2)), 300)}`, spec, outcome: o, labels: [`windows?type=${t}`] });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Final verification of every key's state.

export interface VerifyOptions {
  target: Target;
  model: Model;
  pool: Pool;
  times: Times;
  timeoutMs: number;
  concurrency: number;
  guard?: PollutionGuard;
}

const near = (a: number, b: number, scale: number) => Math.abs(a - b) <= 1e-9 * scale + 1e-300;

export async function verifyState(o: VerifyOptions): Promise<{ violations: Violation[]; requests: number; keysChecked: number; keysSkipped: string[] }> {
  const violations: Violation[] = [];
  const ctx: CheckContext = { model: o.model, violations, times: o.times, poisoned: false };
  let requests = 0;
  const get = async (path: string) => {
    const shape = path.replace(/^\/v1\/actors\/[^/?]*/, "/v1/actors/:key").replace(/type=[^&]*/, "type=…");
    const spec: RequestSpec = { n: -1, kind: "verify", method: "GET", path, headers: {}, expect: { kind: "generic" }, labels: [`GET ${shape} (final check)`] };
    requests++;
    const out = await send(o.target, spec, o.timeoutMs, o.guard);
    const ok = checkBasics(ctx, spec, out);
    return { spec, out, ok };
  };
  const skipped: string[] = [];
  let checked = 0;
  const tasks: Array<() => Promise<void>> = [];
  const modelKeys = [...o.model.keys.values()];
  for (const ks of modelKeys) {
    const key = ks.key;
    if (!o.model.hasEvents(key)) continue;
    const addressable = isWellFormed(key) && key !== "." && key !== ".." && key !== "";
    if (!addressable) {
      skipped.push(`${printable(js(key))} (cannot be addressed in a URL)`);
      continue;
    }
    if (ks.unknown.length) {
      skipped.push(`${printable(js(key))} (${ks.unknown[0]})`);
      continue;
    }
    if (ks.wrong.length) {
      // What an invalid event does to a key (a 1970 timestamp on a key with recent events, ...) is not
      // for the rules to predict; the acceptance itself is reported.
      skipped.push(`${printable(js(key))} (took invalid events: ${ks.wrong[0]})`);
      continue;
    }
    tasks.push(async () => {
      checked++;
      const enc = encodeURIComponent(key);
      const exp = expectedState(o.model, ks, o.times);
      const st = await get(`/v1/actors/${enc}`);
      if (!st.ok) return;
      if (st.out.status !== 200 || st.out.json?.key !== key) {
        violations.push({ rule: "unreadable-key", message: `GET /v1/actors/${printable(enc, 80)} answered ${st.out.status} with key ${printable(js(st.out.json?.key))}; the key has ${exp.events} accepted events`, spec: st.spec, outcome: st.out, labels: [`accepted key ${printable(js(key), 40)}`] });
        return;
      }
      const diffs: Array<{ aspect: string; expected: unknown; actual: unknown }> = [];
      const t = st.out.json.totals ?? {};
      if (t.events !== exp.events) diffs.push({ aspect: "totals.events", expected: exp.events, actual: t.events });
      if (t.duplicates !== exp.duplicates) diffs.push({ aspect: "totals.duplicates", expected: exp.duplicates, actual: t.duplicates });
      if (t.late !== 0) diffs.push({ aspect: "totals.late", expected: 0, actual: t.late });
      const byType = t.by_type && typeof t.by_type === "object" ? t.by_type : {};
      for (const [type, n] of exp.byType) if (!Object.hasOwn(byType, type) || byType[type] !== n) diffs.push({ aspect: `totals.by_type["${type}"]`, expected: n, actual: Object.hasOwn(byType, type) ? byType[type] : "(missing)" });
      for (const type of Object.keys(byType)) if (!exp.byType.has(type)) diffs.push({ aspect: `totals.by_type["${type}"]`, expected: "(absent)", actual: byType[type] });
      if (!exp.hasArrival && exp.first !== undefined) {
        const iso = (ms: number) => new Date(ms).toISOString();
        if (st.out.json.first_event_at !== iso(exp.first)) diffs.push({ aspect: "first_event_at", expected: iso(exp.first), actual: st.out.json.first_event_at });
        if (st.out.json.last_event_at !== iso(exp.last!)) diffs.push({ aspect: "last_event_at", expected: iso(exp.last!), actual: st.out.json.last_event_at });
        if (st.out.json.watermark !== iso(exp.last!)) diffs.push({ aspect: "watermark", expected: iso(exp.last!), actual: st.out.json.watermark });
      }
      const win = await get(`/v1/actors/${enc}/windows?size=1m`);
      if (win.ok) {
        if (win.out.status !== 200 || win.out.json?.key !== key || !Array.isArray(win.out.json?.windows)) {
          diffs.push({ aspect: "windows?size=1m", expected: "200 with the key's windows", actual: responseSummary(win.out, 120) });
        } else compareWindows(win.out.json.windows, exp.fixed, exp.rest, "", diffs, o.times);
      }
      const types = new Set([...exp.byType.keys(), ...HOSTILE_VALID_TYPES]);
      for (const type of types) {
        const tw = await get(`/v1/actors/${enc}/windows?size=1m&type=${encodeURIComponent(type)}`);
        if (!tw.ok) continue;
        if (tw.out.status !== 200 || !Array.isArray(tw.out.json?.windows)) {
          diffs.push({ aspect: `windows?type=${type}`, expected: "200", actual: responseSummary(tw.out, 120) });
          continue;
        }
        const fixed = new Map<number, WindowExpect>();
        for (const [start, w] of exp.fixed) {
          const agg = w.types.get(type);
          if (agg) fixed.set(start, { all: agg, types: new Map() });
        }
        const restAgg = exp.rest.types.get(type);
        const typed = tw.out.json.windows as any[];
        if (!exp.byType.has(type) && typed.length) {
          violations.push({ rule: "type-filter", message: `windows?type=${type} for a key without events of type ${type} returned ${typed.length} windows: ${printable(js(typed[0]), 250)}`, spec: tw.spec, outcome: tw.out, labels: [`windows?type=${type}`] });
          continue;
        }
        for (const w of typed) if (w?.type !== type) diffs.push({ aspect: `windows?type=${type}: window.type`, expected: type, actual: w?.type });
        compareWindows(typed, fixed, { all: restAgg ?? { count: 0, valued: 0, sum: 0, abs: 0, min: null, max: null }, types: new Map() }, `type=${type} `, diffs, o.times, true);
      }
      const late = await get(`/v1/actors/${enc}/late`);
      if (late.ok && (late.out.status !== 200 || late.out.json?.key !== key || !Array.isArray(late.out.json?.late) || late.out.json.late.length)) {
        diffs.push({ aspect: "late", expected: "200 with an empty late log", actual: responseSummary(late.out, 120) });
      }
      // One violation per key and kind of difference (a type's counts, totals.events, a window's sum, ...).
      const byCategory = new Map<string, typeof diffs>();
      for (const d of diffs) {
        const c = stateCategory(d.aspect);
        (byCategory.get(c) ?? byCategory.set(c, []).get(c)!).push(d);
      }
      for (const [category, ds] of byCategory) {
        const summary = ds.slice(0, 4).map((d) => `${d.aspect}: expected ${printable(js(d.expected), 80)}, got ${printable(js(d.actual), 80)}`).join("; ");
        violations.push({ rule: "state", message: `key ${printable(js(key), 60)}: ${summary}${ds.length > 4 ? ` (+${ds.length - 4} more)` : ""}`, spec: st.spec, outcome: st.out, labels: [category] });
      }
    });
  }
  // No actor for keys that never had an accepted event.
  const phantomCandidates = new Set<string>([...o.model.touched, ...o.pool.ghostKeys, ...o.pool.rejectKeys]);
  for (const key of phantomCandidates) {
    if (o.model.hasEvents(key)) continue;
    const ks = o.model.keys.get(key);
    const addressable = isWellFormed(key) && key !== "." && key !== ".." && key !== "";
    if (!addressable) continue;
    tasks.push(async () => {
      const r = await get(`/v1/actors/${encodeURIComponent(key)}`);
      if (!r.ok) return;
      if (ks?.unknown.length) {
        if (r.out.status === 200 && !(r.out.json?.totals?.events >= 1)) {
          const cause = ks.unknownSpec as RequestSpec | undefined;
          violations.push({
            rule: "phantom",
            message: `key ${printable(js(key), 60)} has an actor with totals.events ${r.out.json?.totals?.events} after a failed request (${ks.unknown[0]})`,
            spec: cause ?? r.spec,
            outcome: r.out,
            labels: ["actor left behind by a failed request"],
            tag: cause ? "after-failure" : undefined,
            then: cause ? { spec: r.spec, outcome: r.out } : undefined,
          });
        }
        return;
      }
      if (r.out.status !== 404 || r.out.json?.error?.code !== "actor_not_found") {
        violations.push({ rule: "phantom", message: `key ${printable(js(key), 60)} never had an accepted event, yet GET answered ${r.out.status}${r.out.json?.totals ? ` with totals ${JSON.stringify(r.out.json.totals)}` : ""}`, spec: r.spec, outcome: r.out, labels: [r.out.status === 200 ? "actor for a key without accepted events" : `GET of a key without events answered ${r.out.status}`] });
      }
    });
  }
  // Run them a few at a time.
  let next = 0;
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (next < tasks.length) await tasks[next++]!();
    }),
  );
  const h = await get("/health");
  if (h.ok && (h.out.status !== 200 || h.out.json?.status !== "ok")) violations.push({ rule: "health", message: `/health answered ${h.out.status} at the end`, spec: h.spec, outcome: h.out, labels: ["/health at the end"] });
  else if (!h.ok) violations.push({ rule: "health", message: `/health failed at the end`, spec: h.spec, outcome: h.out, labels: ["/health at the end"] });
  return { violations, requests, keysChecked: checked, keysSkipped: skipped };
}

function stateCategory(aspect: string): string {
  const typed = /by_type\["([^"]*)"\]/.exec(aspect) ?? /type=(\S+)/.exec(aspect);
  if (typed) return `counts of event_type "${typed[1]}"`;
  if (aspect.startsWith("totals.")) return aspect;
  if (/first_event_at|last_event_at|watermark/.test(aspect)) return "first/last event time, watermark";
  if (aspect.startsWith("arrival-time")) return "windows of events without timestamp";
  const field = /(count|sum|min|max|avg|closed|shape)$/.exec(aspect);
  if (aspect.startsWith("window") || aspect.includes(" window ")) return `window ${field ? field[1] : "missing or extra"}`;
  return aspect;
}

function compareAgg(prefix: string, exp: Agg, w: any, diffs: Array<{ aspect: string; expected: unknown; actual: unknown }>): void {
  if (w?.count !== exp.count) diffs.push({ aspect: `${prefix}count`, expected: exp.count, actual: w?.count });
  if (typeof w?.sum !== "number" || !near(w.sum, exp.sum, exp.abs)) diffs.push({ aspect: `${prefix}sum`, expected: exp.sum, actual: w?.sum });
  if (w?.min !== exp.min && !(w?.min === 0 && exp.min === 0)) diffs.push({ aspect: `${prefix}min`, expected: exp.min, actual: w?.min });
  if (w?.max !== exp.max && !(w?.max === 0 && exp.max === 0)) diffs.push({ aspect: `${prefix}max`, expected: exp.max, actual: w?.max });
  const avg = exp.valued ? exp.sum / exp.valued : null;
  if (avg === null ? w?.avg !== null : typeof w?.avg !== "number" || !near(w.avg, avg, exp.abs / exp.valued)) diffs.push({ aspect: `${prefix}avg`, expected: avg, actual: w?.avg });
}

function compareWindows(windows: any[], fixed: Map<number, WindowExpect>, rest: WindowExpect, prefix: string, diffs: Array<{ aspect: string; expected: unknown; actual: unknown }>, times: Times, typed = false): void {
  const minuteName = (start: number) => (start === 0 ? "1970-01-01T00:00" : times.past.includes(start) ? `past minute ${times.past.indexOf(start) + 1}` : start === times.future ? "future minute" : new Date(start).toISOString());
  const seen = new Set<number>();
  const restAll: Agg = { count: 0, valued: 0, sum: 0, abs: 0, min: null, max: null };
  const restTypes = new Map<string, number>();
  for (const w of windows) {
    const start = Date.parse(w?.start);
    if (w?.size !== "1m" || Date.parse(w?.end) - start !== MINUTE) diffs.push({ aspect: `${prefix}window shape`, expected: "size 1m", actual: `${w?.size} ${w?.start}..${w?.end}` });
    if (w?.closed !== false) diffs.push({ aspect: `${prefix}window ${minuteName(start)} closed`, expected: false, actual: w?.closed });
    if (fixed.has(start)) {
      seen.add(start);
      const e = fixed.get(start)!;
      compareAgg(`${prefix}window ${minuteName(start)} `, e.all, w, diffs);
      if (!typed) compareTypes(`${prefix}window ${minuteName(start)} `, e.types, w?.by_type, diffs);
    } else if (times.fixed.has(start)) {
      diffs.push({ aspect: `${prefix}window ${minuteName(start)}`, expected: "(no window)", actual: `count ${w?.count}` });
    } else {
      restAll.count += w?.count ?? 0;
      restAll.sum += w?.sum ?? 0;
      if (w?.min !== null && w?.min !== undefined) restAll.min = restAll.min === null ? w.min : Math.min(restAll.min, w.min);
      if (w?.max !== null && w?.max !== undefined) restAll.max = restAll.max === null ? w.max : Math.max(restAll.max, w.max);
      if (!typed) for (const [t, a] of Object.entries((w?.by_type ?? {}) as Record<string, any>)) restTypes.set(t, (restTypes.get(t) ?? 0) + (a?.count ?? 0));
    }
  }
  for (const [start, e] of fixed) if (!seen.has(start)) diffs.push({ aspect: `${prefix}window ${minuteName(start)}`, expected: `count ${e.all.count}`, actual: "(missing)" });
  const r = rest.all;
  if (restAll.count !== r.count) diffs.push({ aspect: `${prefix}arrival-time windows: count`, expected: r.count, actual: restAll.count });
  else if (r.count) {
    if (!near(restAll.sum, r.sum, r.abs)) diffs.push({ aspect: `${prefix}arrival-time windows: sum`, expected: r.sum, actual: restAll.sum });
    if (restAll.min !== r.min && !(restAll.min === 0 && r.min === 0)) diffs.push({ aspect: `${prefix}arrival-time windows: min`, expected: r.min, actual: restAll.min });
    if (restAll.max !== r.max && !(restAll.max === 0 && r.max === 0)) diffs.push({ aspect: `${prefix}arrival-time windows: max`, expected: r.max, actual: restAll.max });
  }
  if (!typed) {
    for (const [t, a] of rest.types) if (restTypes.get(t) !== a.count) diffs.push({ aspect: `${prefix}arrival-time windows: by_type["${t}"].count`, expected: a.count, actual: restTypes.get(t) ?? "(missing)" });
    for (const [t, n] of restTypes) if (!rest.types.has(t)) diffs.push({ aspect: `${prefix}arrival-time windows: by_type["${t}"]`, expected: "(absent)", actual: n });
  }
}

function compareTypes(prefix: string, exp: Map<string, Agg>, byType: any, diffs: Array<{ aspect: string; expected: unknown; actual: unknown }>): void {
  const got = byType && typeof byType === "object" ? byType : {};
  for (const [t, a] of exp) {
    if (!Object.hasOwn(got, t)) diffs.push({ aspect: `${prefix}by_type["${t}"]`, expected: `count ${a.count}`, actual: "(missing)" });
    else compareAgg(`${prefix}by_type["${t}"].`, a, got[t], diffs);
  }
  for (const t of Object.keys(got)) if (!exp.has(t)) diffs.push({ aspect: `${prefix}by_type["${t}"]`, expected: "(absent)", actual: got[t] });
}

// ---------------------------------------------------------------------------------------------
// The run.

export interface FuzzOptions {
  name: string;
  workload: Workload;
  times: Times;
  /** A fresh target on an empty data directory (started). */
  makeTarget: () => Promise<Target>;
  concurrency: number;
  timeoutMs: number;
  /** In-process: check built-in prototypes after every request and restore them. */
  guard: boolean;
  /** How to replay this run. */
  replay: string;
  /** Probe /health every this many requests (bounds the search for a poisoning request). */
  healthEvery?: number;
  maxEpochs?: number;
  log?: (line: string) => void;
}

export interface FuzzResult {
  requests: number;
  generated: number;
  verification: number;
  violations: Violation[];
  report: string;
  failures: Failure[];
  ms: number;
}

export interface Failure {
  rule: string;
  title: string;
  count: number;
  first: Violation;
  example: Violation;
  minimal?: { spec: RequestSpec; outcome: Outcome; reproduced: boolean; note?: string; then?: { spec: RequestSpec; outcome: Outcome } };
  /** Times the same invalid field went unnamed in a rejection for another field. */
  also?: number;
}

const pairsOf = (spec: RequestSpec) => new Set((spec.items ?? []).flatMap((it) => (it.ev && it.ev.id !== null ? [pairKey(it.ev.key, it.ev.id)] : [])));

export async function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const guard = opts.guard ? new PollutionGuard() : undefined;
  let target = await opts.makeTarget();
  let model = new Model();
  const violations: Violation[] = [];
  const stats = newStats();
  const ctx: CheckContext = { model, violations, times: opts.times, poisoned: false, stats };
  const queue = [...opts.workload.requests];
  const deferred: RequestSpec[] = [];
  const inflight = new Map<Promise<void>, RequestSpec>();
  const inflightPairs = new Map<string, number>();
  let sent = 0;
  let sinceProbe: RequestSpec[] = [];
  let needProbe = false;
  let epochs = 1;
  const blacklist: string[][] = [];
  const epochNotes: string[] = [];
  let aborted: string | undefined;
  const healthEvery = opts.healthEvery ?? 250;

  const excluded = (spec: RequestSpec): RequestSpec | undefined => {
    if (!blacklist.length || !spec.items) return spec;
    const keep = spec.items.map((it) => !blacklist.some((bl) => bl.every((l) => it.labels.includes(l) || mutationLabels(it).includes(l))));
    if (keep.every(Boolean)) return spec;
    if (!spec.plan || !keep.some(Boolean)) return undefined;
    const items = spec.plan.items.filter((_, i) => keep[i]);
    const s = materializeEvents({ ...spec.plan, items }, opts.workload.pool, spec.n, spec.kind);
    return { ...s, copies: spec.copies, expect: spec.expect, labels: s.labels };
  };

  const conflicts = (spec: RequestSpec) => [...pairsOf(spec)].some((p) => inflightPairs.has(p));
  const nextSpec = (): RequestSpec | undefined => {
    for (let i = 0; i < deferred.length; i++) if (!conflicts(deferred[i]!)) return deferred.splice(i, 1)[0];
    while (queue.length && deferred.length < 64) {
      const raw = queue.shift()!;
      const spec = excluded(raw);
      if (!spec) continue;
      if (!conflicts(spec)) return spec;
      deferred.push(spec);
    }
    return undefined;
  };

  const run = async (spec: RequestSpec) => {
    const pairs = pairsOf(spec);
    for (const p of pairs) inflightPairs.set(p, (inflightPairs.get(p) ?? 0) + 1);
    try {
      if (spec.copies && spec.copies > 1) {
        const outs = await Promise.all(Array.from({ length: spec.copies }, () => send(target, spec, opts.timeoutMs, guard)));
        sent += spec.copies;
        const item = spec.items![0]!;
        const before = item.ev ? model.status(item.ev) : "maybe";
        let accepted = 0;
        for (const o of outs) {
          const single = { ...spec, copies: undefined };
          // Each copy is checked as a single event; the verdicts are checked together below.
          touch(ctx, single);
          if (!checkBasics(ctx, single, o)) {
            unknownOutcome(ctx, single, `request #${spec.n} got no answer`);
            continue;
          }
          if (o.status === 202) accepted++;
          if (o.status === 202 || o.status === 200) {
            if (o.json?.event_id !== item.ev?.id) violation(ctx, { rule: "status", message: `event_id echoed as ${JSON.stringify(o.json?.event_id)}`, spec, outcome: o, labels: spec.labels });
            acknowledge(ctx, single, o, item, 0, o.json?.event_id);
            if (item.ev) model.widen(item.ev, [Math.min(...outs.map((x) => x.start)), Math.max(...outs.map((x) => x.end))]);
          } else violation(ctx, { rule: "valid-rejected", message: `a valid event sent ${spec.copies} times at once answered ${o.status}`, spec, outcome: o, labels: item.labels });
        }
        const answered = outs.filter((o) => o.status === 200 || o.status === 202).length;
        if (answered === spec.copies && ((before === "new" && accepted !== 1) || (before === "old" && accepted !== 0))) {
          violation(ctx, { rule: "verdict", message: `the same event sent ${spec.copies} times at once was accepted ${accepted} times (expected ${before === "new" ? 1 : 0})`, spec, outcome: outs.find((o) => o.status === 202) ?? outs[0], labels: ["the same event sent several times at once"] });
        }
        if (outs.some((o) => o.failure || o.status! >= 500)) needProbe = true;
      } else {
        const o = await send(target, spec, opts.timeoutMs, guard);
        sent++;
        checkResponse(ctx, spec, o);
        if (o.failure || o.status! >= 500) needProbe = true;
      }
    } finally {
      for (const p of pairs) {
        const n = inflightPairs.get(p)! - 1;
        if (n) inflightPairs.set(p, n);
        else inflightPairs.delete(p);
      }
    }
  };

  const probeHealth = async (): Promise<boolean> => {
    const o = await send(target, { method: "GET", path: "/health", headers: {} }, opts.timeoutMs, guard);
    sent++;
    return o.status === 200 && o.json?.status === "ok";
  };

  while ((queue.length || deferred.length || inflight.size) && !aborted) {
    if (!needProbe && sinceProbe.length < healthEvery) {
      while (inflight.size < opts.concurrency) {
        const spec = nextSpec();
        if (!spec) break;
        sinceProbe.push(spec);
        const p: Promise<void> = run(spec).finally(() => inflight.delete(p));
        inflight.set(p, spec);
      }
    }
    if (inflight.size) {
      await Promise.race(inflight.keys());
      continue;
    }
    // Drained: probe /health after a 5xx (or every healthEvery requests).
    if (needProbe || sinceProbe.length >= healthEvery) {
      const healthy = await probeHealth();
      const candidates = sinceProbe;
      sinceProbe = [];
      needProbe = false;
      const hangs = violations.filter((v) => v.rule === "hang").length;
      if (hangs >= 5) {
        aborted = `stopped after ${hangs} requests without an answer (bound ${opts.timeoutMs} ms each)`;
        break;
      }
      if (!healthy) {
        // The server answers 5xx to everything: find the request that did it, keep it out, start afresh.
        await target.stop();
        const culprit = (await findPoisoner(candidates, opts, log)) ?? (await findPoisonerOnTarget(candidates, opts, log));
        const title = culprit ? `after request #${culprit.spec.n}` : `within requests #${candidates[0]?.n}..#${candidates.at(-1)?.n}`;
        violations.push({
          rule: "poisoned",
          message: `the ${opts.name} answered /health with a non-200 ${title}: every later request fails${culprit ? `; the request below does it alone on a fresh ${culprit.where} (it leaves /health answering ${culprit.health})` : "; no single request reproduced it on a fresh in-process app or a fresh server"}`,
          spec: culprit?.minimal ?? culprit?.spec ?? candidates[0],
          outcome: culprit?.outcome,
          labels: culprit ? culprit.labels : ["(unknown)"],
        });
        for (const v of violations) if (candidates.some((c) => c === v.spec) && v.rule === "5xx" && v.spec !== culprit?.spec) v.whilePoisoned = true;
        epochNotes.push(`epoch ${epochs}: the server was poisoned ${title}${culprit ? ` (${culprit.labels.join(", ")})` : ""}; its state was not verified`);
        if (!culprit || epochs >= (opts.maxEpochs ?? 5)) {
          aborted = culprit ? `stopped after ${epochs} poisoned servers` : "stopped: the server was poisoned and no single request reproduces it";
          target = await opts.makeTarget();
          break;
        }
        if (culprit.anyOf) for (const l of culprit.labels) blacklist.push([l]);
        else blacklist.push(culprit.labels);
        deferred.splice(0, deferred.length, ...deferred.map(excluded).filter((x): x is RequestSpec => x !== undefined));
        log(`${opts.name}: server poisoned ${title} (${culprit.labels.join(", ")}); starting a fresh one without such events`);
        target = await opts.makeTarget();
        model = new Model();
        ctx.model = model;
        epochs++;
      }
    }
  }
  const generated = sent;
  log(`${opts.name}: ${sent} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s; verifying state`);
  let verification = 0;
  let verifyNote = "";
  if (!aborted) {
    const v = await verifyState({ target, model, pool: opts.workload.pool, times: opts.times, timeoutMs: opts.timeoutMs, concurrency: opts.concurrency, guard });
    violations.push(...v.violations);
    verification = v.requests;
    verifyNote = `${v.keysChecked} keys verified${v.keysSkipped.length ? `, ${v.keysSkipped.length} skipped (${v.keysSkipped.slice(0, 4).join("; ")}${v.keysSkipped.length > 4 ? "; …" : ""})` : ""}`;
  }
  await target.stop();
  const late = guard?.checkAndRestore();
  if (late?.length) violations.push({ rule: "pollution", message: `after the run (in a background task): ${late.join("; ")}`, labels: ["prototype pollution in a background task"] });
  const failures = await summarize(violations, opts);
  const ms = Date.now() - t0;
  const report = formatReport(opts, failures, { sent: generated, verification, ms, aborted, epochNotes, verifyNote, blacklist, model, stats });
  return { requests: generated + verification, generated, verification, violations, report, failures, ms };
}

/** Replays each candidate alone on a fresh in-process app; the first after which /health fails is the poisoner. */
async function findPoisoner(candidates: RequestSpec[], opts: FuzzOptions, log: (l: string) => void) {
  const ordered = [...candidates].sort((a, b) => a.n - b.n);
  for (const spec of ordered) {
    const r = await replayAlone(spec, opts.times, opts.timeoutMs);
    if (r.poisoned || r.pollution) {
      const labels = spec.items ? spec.items.flatMap((it) => mutationLabels(it)) : spec.labels;
      const shrunk = spec.plan ? await shrink(spec, "poisoned", opts.workload.pool, opts.times, opts.timeoutMs) : undefined;
      log(`${opts.name}: request #${spec.n} poisons a fresh app`);
      return {
        spec,
        minimal: shrunk?.spec,
        outcome: shrunk?.outcome ?? r.outcome,
        labels: shrunk ? minimalLabels(shrunk.spec) : labels,
        health: r.health,
        where: "in-process app",
        anyOf: false,
      };
    }
  }
  return undefined;
}

/** Labels that name what an event holds (not how it is spelled): what to leave out after a poisoning. */
function contentLabels(item: ItemSpec): string[] {
  const muts = mutationLabels(item);
  if (muts !== item.labels) return muts;
  return item.labels.filter((l) => /^(event_type|key|event_id|value|no event_id|every string field)/.test(l));
}

/** Host-specific poisoning: replays the candidates on a fresh server of the same kind, /health after each, then the culprit's items one by one. */
async function findPoisonerOnTarget(candidates: RequestSpec[], opts: FuzzOptions, log: (l: string) => void) {
  const ordered = [...candidates].sort((a, b) => a.n - b.n);
  const healthy = async (t: Target) => {
    const h = await send(t, { method: "GET", path: "/health", headers: {} }, opts.timeoutMs);
    return { ok: h.status === 200, health: h.status === undefined ? h.failure! : String(h.status) };
  };
  let t = await opts.makeTarget();
  try {
    for (const spec of ordered) {
      const o = await send(t, spec, opts.timeoutMs);
      const h = await healthy(t);
      if (h.ok) continue;
      log(`${opts.name}: request #${spec.n} poisons a fresh server`);
      if (spec.plan && spec.items && spec.items.length > 1) {
        await t.stop();
        t = await opts.makeTarget();
        for (let i = 0; i < spec.plan.items.length; i++) {
          const one = materializeEvents({ ...spec.plan, mode: "single", ct: ctFor("single", spec.plan.ct), items: [spec.plan.items[i]!] }, opts.workload.pool, spec.n, spec.kind);
          const o1 = await send(t, one, opts.timeoutMs);
          const h1 = await healthy(t);
          if (!h1.ok) return { spec, minimal: one, outcome: o1, labels: contentLabels(one.items![0]!), health: h1.health, where: opts.name, anyOf: true };
        }
      }
      return { spec, minimal: undefined, outcome: o, labels: spec.items?.length === 1 ? contentLabels(spec.items[0]!) : spec.labels, health: h.health, where: opts.name, anyOf: true };
    }
    return undefined;
  } finally {
    await t.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Replaying one request alone, and shrinking it.

interface Replay {
  violations: Violation[];
  outcome?: Outcome;
  poisoned: boolean;
  pollution: boolean;
  health: string;
  /** A phantom actor left behind: the GET that shows it. */
  phantom?: { spec: RequestSpec; outcome: Outcome };
}

/** Sends `spec` alone to a fresh in-process app and checks the response; optionally looks for actors it left without events. */
export async function replayAlone(spec: RequestSpec, times: Times, timeoutMs: number, lookForPhantoms = false): Promise<Replay> {
  const guard = new PollutionGuard();
  const target = inProcessTarget(FUZZ_ENV);
  const model = new Model();
  const violations: Violation[] = [];
  const ctx: CheckContext = { model, violations, times, poisoned: false };
  let outcome: Outcome | undefined;
  // The app logs its unhandled errors; a replay is about them, so keep the output quiet.
  const consoleError = console.error;
  console.error = () => {};
  try {
    const copies = spec.copies ?? 1;
    for (let i = 0; i < copies; i++) {
      outcome = await send(target, spec, timeoutMs, guard);
      checkResponse(ctx, { ...spec, copies: undefined }, outcome);
    }
    // Polluted prototypes are restored by the guard, so ask the app with them polluted again is not
    // possible; a 5xx from /health right now means the app itself kept bad state.
    let phantom: Replay["phantom"];
    if (lookForPhantoms) {
      for (const key of new Set((spec.items ?? []).map((it) => it.keyString).filter((k): k is string => k !== undefined))) {
        if (!isWellFormed(key) || key === "." || key === ".." || !key || model.hasEvents(key)) continue;
        const get: RequestSpec = { n: -1, kind: "verify", method: "GET", path: `/v1/actors/${encodeURIComponent(key)}`, headers: {}, expect: { kind: "generic" }, labels: [] };
        const o = await send(target, get, timeoutMs, guard);
        if (o.status === 200) {
          phantom = { spec: get, outcome: o };
          break;
        }
      }
    }
    const h = await send(target, { method: "GET", path: "/health", headers: {} }, timeoutMs, guard);
    const pollution = violations.some((v) => v.rule === "pollution");
    return { violations, outcome, poisoned: h.status !== 200, pollution, health: h.status === undefined ? h.failure! : String(h.status), phantom };
  } finally {
    await target.stop().catch(() => {});
    guard.checkAndRestore();
    console.error = consoleError;
  }
}

function minimalLabels(spec: RequestSpec): string[] {
  if (!spec.items) return spec.labels;
  const ls = spec.items.flatMap((it) => it.labels);
  return [...new Set(ls)];
}

interface Shrunk {
  spec: RequestSpec;
  outcome: Outcome;
  attempts: number;
  followUp?: { spec: RequestSpec; outcome: Outcome };
}

/** Smaller requests that still break `rule` alone on a fresh in-process app. */
export async function shrink(spec: RequestSpec, rule: string, pool: Pool, times: Times, timeoutMs: number, budget = 60, focus?: number): Promise<Shrunk | undefined> {
  if (!spec.plan) return undefined;
  if (focus !== undefined && spec.plan.items.length > 1 && spec.plan.items[focus]) {
    // The failure is about one item: start from it alone (its neighbours may fail differently here).
    for (const mode of ["single", spec.plan.mode] as const) {
      const plan = { ...spec.plan, mode, ct: ctFor(mode, spec.plan.ct), items: [spec.plan.items[focus]!] };
      const one = materializeEvents(plan, pool, spec.n, spec.kind);
      one.copies = spec.copies;
      const r = await shrink(one, rule, pool, times, timeoutMs, budget);
      if (r) return r;
    }
    return undefined;
  }
  let attempts = 0;
  let followUp: Shrunk["followUp"];
  const fails = async (s: RequestSpec): Promise<Outcome | undefined> => {
    attempts++;
    const r = await replayAlone(s, times, timeoutMs, rule === "phantom");
    const hit = rule === "poisoned" ? r.poisoned || r.pollution : rule === "phantom" ? !!r.phantom : r.violations.some((v) => v.rule === rule);
    if (process.env.FUZZ_DEBUG) console.log(`shrink ${rule} attempt ${attempts}: ${hit ? "FAILS" : "passes"} ${printable(String(s.body), 200)} -> ${r.violations.map((v) => v.rule).join(",")}`);
    if (hit && r.phantom) followUp = r.phantom;
    return hit ? r.outcome : undefined;
  };
  const first = await fails(spec);
  if (!first) return undefined;
  let best: Shrunk = { spec, outcome: first, attempts, followUp };
  let plan = spec.plan;
  let simplify: Simplify[] = plan.items.map(() => ({}));
  const build = (p: typeof plan, s: Simplify[]) => {
    const out = materializeEvents(p, pool, spec.n, spec.kind, s);
    out.copies = spec.copies;
    return out;
  };
  /** Tries plan `p` with simplifications `s`: if it still fails, it is the best so far. */
  const adopt = async (p: typeof plan, s: Simplify[]): Promise<boolean> => {
    const c = build(p, s);
    const o = await fails(c);
    if (!o) return false;
    plan = p;
    simplify = s;
    best = { spec: c, outcome: o, attempts, followUp };
    return true;
  };
  // 1. One item alone (items with mutations first), as a batch of one and as a single event.
  if (plan.items.length > 1) {
    const labelled = spec.items ?? [];
    const order = plan.items.map((_, i) => i).sort((a, b) => score(plan.items[b]!, labelled[b]) - score(plan.items[a]!, labelled[a]));
    let found = false;
    for (const i of order) {
      if (attempts >= budget) break;
      for (const mode of rule === "phantom" ? [] : (["single", plan.mode] as const)) {
        if (await adopt({ ...plan, mode, ct: ctFor(mode, plan.ct), items: [plan.items[i]!] }, [simplify[i]!])) {
          found = true;
          break;
        }
      }
      if (found) break;
    }
    // 2. Otherwise halves, then one item less at a time.
    while (!found && plan.items.length > 1 && attempts < budget) {
      const half = Math.ceil(plan.items.length / 2);
      const parts = [
        [0, half],
        [half, plan.items.length],
      ];
      let progressed = false;
      for (const [a, b] of parts) {
        if (await adopt({ ...plan, items: plan.items.slice(a, b) }, simplify.slice(a, b))) {
          progressed = true;
          break;
        }
      }
      if (!progressed) break;
    }
    const removalBudget = attempts + 60;
    for (let i = plan.items.length - 1; !found && plan.items.length > 1 && i >= 0 && attempts < removalBudget; i--) {
      await adopt({ ...plan, items: plan.items.filter((_, j) => j !== i) }, simplify.filter((_, j) => j !== i));
    }
  } else if (plan.mode !== "single") {
    await adopt({ ...plan, mode: "single" as const, ct: ctFor("single", plan.ct) }, simplify);
  }
  // 3. Few items left: plainer spelling, canonical key/id/type/measure/timestamp, fewer mutations.
  if (plan.items.length <= 4) {
    const steps: Array<keyof Simplify> = ["plain", "key", "id", "type", "measure", "ts"];
    for (let i = 0; i < plan.items.length; i++) {
      for (const step of steps) {
        const s = simplify.map((x, j) => (j === i ? { ...x, [step]: true } : x));
        const c = build(plan, s);
        const before = best.spec.items![i];
        if (before && c.items![i]!.text === before.text && c.items![i]!.labels.join() === before.labels.join()) {
          simplify = s;
          continue;
        }
        const o = await fails(c);
        if (o) {
          simplify = s;
          best = { spec: c, outcome: o, attempts, followUp };
        }
      }
      const item = plan.items[i]!;
      if ((item.t === "tmpl" || item.t === "anon") && item.muts.length > 0) {
        for (let m = 0; m < item.muts.length; m++) {
          const muts = item.muts.filter((_, j) => j !== m);
          if (await adopt({ ...plan, items: plan.items.map((it, j) => (j === i ? ({ ...item, muts } as typeof item) : it)) }, simplify)) break;
        }
      }
    }
  }
  best.attempts = attempts;
  return best;
}

/** The Content-Type for a body of this mode (NDJSON for NDJSON, the JSON spelling otherwise). */
function ctFor(mode: string, ct: string): string {
  const ndjson = ct.toLowerCase().includes("ndjson");
  if (mode === "ndjson") return ndjson ? ct : "application/x-ndjson";
  return ndjson ? "application/json" : ct;
}

/** Which items to try alone first: those with mutations, then those with more hostile features. */
function score(item: NonNullable<RequestSpec["plan"]>["items"][number], spec?: ItemSpec): number {
  const hostile = spec?.labels.length ?? 0;
  if (item.t === "tmpl" || item.t === "anon") return item.muts.length * 100 + (item.t === "tmpl" && (item.tsFormat || item.rejKey) ? 50 : 0) + (item.t === "anon" && item.keyOverride !== undefined ? 50 : 0) + hostile;
  return 30;
}

// ---------------------------------------------------------------------------------------------
// Summaries and the report.

const SHRINKABLE = new Set(["5xx", "hang", "pollution", "error-shape", "status", "valid-rejected", "invalid-accepted", "error-fields", "error-code", "batch", "allow"]);

async function summarize(violations: Violation[], opts: FuzzOptions): Promise<Failure[]> {
  const groups = new Map<string, Violation[]>();
  for (const v of violations) {
    if (v.whilePoisoned && v.rule !== "poisoned") continue;
    const key = `${v.rule}|${[...new Set(v.labels)].sort().join(" + ")}`;
    const list = groups.get(key) ?? groups.set(key, []).get(key)!;
    list.push(v);
  }
  const failures: Failure[] = [];
  const deadline = Date.now() + 15_000;
  // Groups with few labels first (single events), so that batches holding the same fault merge into them.
  const sorted = [...groups.entries()].sort((a, b) => new Set(a[1][0]!.labels).size - new Set(b[1][0]!.labels).size || b[1].length - a[1].length);
  const merged = new Map<string, Failure>();
  for (const [, list] of sorted) {
    const first = list[0]!;
    const example = list.reduce((a, b) => (bodySize(b.spec) < bodySize(a.spec) ? b : a));
    const labelSet = new Set(example.labels);
    const covering = failures.find((f) => f.rule === example.rule && f.minimal?.reproduced && f.minimal.spec.items?.length && minimalLabels(f.minimal.spec).every((l) => labelSet.has(l)));
    if (covering) {
      covering.count += list.length;
      if ((first.spec?.n ?? Infinity) < (covering.first.spec?.n ?? Infinity)) covering.first = first;
      continue;
    }
    let minimal: Failure["minimal"];
    if (example.rule === "phantom" && example.tag === "after-failure" && example.spec?.plan && Date.now() < deadline) {
      const s = await shrink(example.spec, "phantom", opts.workload.pool, opts.times, opts.timeoutMs, 40).catch(() => undefined);
      minimal = s ? { spec: s.spec, outcome: s.outcome, reproduced: true, then: s.followUp } : { spec: example.spec, outcome: example.then!.outcome, reproduced: false, then: example.then, note: "did not reproduce alone on a fresh in-process app" };
    } else if (example.rule === "poisoned") {
      minimal = example.spec && example.outcome ? { spec: example.spec, outcome: example.outcome, reproduced: true } : undefined;
    } else if (SHRINKABLE.has(example.rule) && example.spec && Date.now() < deadline) {
      // The smallest few examples, until one fails alone (another may need earlier requests, or fail otherwise here).
      const tries = [...new Set(list.filter((v) => v.spec?.plan).sort((x, y) => bodySize(x.spec) - bodySize(y.spec)))].slice(0, 3);
      let s: Shrunk | undefined;
      for (const v of tries) {
        s =
          (v.itemIndex !== undefined ? await shrink(v.spec!, v.rule, opts.workload.pool, opts.times, opts.timeoutMs, 40, v.itemIndex).catch(() => undefined) : undefined) ??
          (await shrink(v.spec!, v.rule, opts.workload.pool, opts.times, opts.timeoutMs, 40).catch(() => undefined));
        if (s) break;
      }
      if (s) minimal = { spec: s.spec, outcome: s.outcome, reproduced: true };
      else {
        const r = await replayAlone(example.spec, opts.times, opts.timeoutMs).catch(() => undefined);
        const again = r?.violations.some((v) => v.rule === example.rule) || (example.rule === "pollution" && r?.pollution);
        minimal = { spec: example.spec, outcome: again && r?.outcome ? r.outcome : example.outcome!, reproduced: !!again, note: again ? undefined : "did not reproduce alone on a fresh in-process app (depends on earlier requests or on the host); the response shown is the one the run saw" };
      }
    }
    // Failures whose minimal requests hold the same hostile inputs are one failure.
    const signature = `${example.rule}|${[...new Set(minimal?.reproduced && minimal.spec.items?.length ? minimalLabels(minimal.spec) : example.labels)].sort().join(" + ")}`;
    const dup = merged.get(signature);
    if (dup) {
      dup.count += list.length;
      if ((first.spec?.n ?? Infinity) < (dup.first.spec?.n ?? Infinity)) dup.first = first;
      continue;
    }
    const title = failureTitle(example, minimal) + (process.env.FUZZ_DEBUG ? ` [signature ${signature}]` : "");
    const f: Failure = { rule: example.rule, title, count: list.length, first, example, minimal };
    merged.set(signature, f);
    failures.push(f);
  }
  // "The rejection does not name field F" where F alone is accepted: the same defect as accepting F.
  const result: Failure[] = [];
  for (const f of failures) {
    if (f.rule === "error-fields" && f.example.tag === "unnamed") {
      const label = f.example.labels[0];
      const same = failures.find(
        (g) =>
          (g.rule === "invalid-accepted" && g.example.labels.length === 1 && g.example.labels[0] === label) ||
          (g.rule === "5xx" && g.minimal?.reproduced && g.minimal.spec.items?.length === 1 && mutationLabels(g.minimal.spec.items[0]!).join() === label),
      );
      if (same) {
        same.also = (same.also ?? 0) + f.count;
        continue;
      }
    }
    result.push(f);
  }
  const priority = ["5xx", "hang", "pollution", "poisoned", "phantom", "unreadable-key", "invalid-accepted", "valid-rejected", "state", "type-filter", "verdict", "batch", "status", "error-code", "error-fields", "error-shape", "allow", "health", "raw"];
  return result.sort((a, b) => priority.indexOf(a.rule) - priority.indexOf(b.rule) || b.count - a.count);
}

function bodySize(spec: RequestSpec | undefined): number {
  if (!spec) return Infinity;
  const b = spec.body;
  return (b === undefined ? 0 : typeof b === "string" ? b.length : b.byteLength) + spec.path.length;
}

function failureTitle(v: Violation, minimal: Failure["minimal"]): string {
  const labels = minimal?.reproduced && minimal.spec.items ? [...new Set(minimal.spec.items.flatMap((it) => (v.rule === "valid-rejected" ? it.labels : mutationLabels(it))))] : [...new Set(v.labels)];
  return `${v.message.length > 160 ? `${v.message.slice(0, 160)}…` : v.message} — ${labels.slice(0, 6).join(", ")}${labels.length > 6 ? ", …" : ""}`;
}

export function formatRequest(spec: RequestSpec, indent = "      "): string {
  const lines = [`${spec.method} ${printable(spec.path, 200)}${spec.copies ? `  (sent ${spec.copies} times at once)` : ""}`];
  for (const [k, v] of Object.entries(spec.headers)) lines.push(`${k}: ${printable(v, 200)}`);
  if (spec.body !== undefined) {
    const text = typeof spec.body === "string" ? spec.body : new TextDecoder().decode(spec.body);
    if (text === "") lines.push("(empty body)");
    else if (spec.mode === "ndjson" || (spec.headers["content-type"] ?? "").includes("ndjson")) {
      const ls = text.split("\n");
      for (const l of ls.slice(0, 12)) lines.push(`${printable(l, 400)}${l.endsWith("\r") ? "" : ""}⏎`);
      if (ls.length > 12) lines.push(`… (${ls.length} lines)`);
    } else lines.push(printable(text, 900));
  } else if (spec.method !== "GET" && spec.method !== "HEAD" && !("content-type" in spec.headers)) lines.push("(no body)");
  return lines.map((l) => indent + l).join("\n");
}

function formatReport(
  opts: FuzzOptions,
  failures: Failure[],
  s: { sent: number; verification: number; ms: number; aborted?: string; epochNotes: string[]; verifyNote: string; blacklist: string[][]; model: Model; stats: Stats },
): string {
  const out: string[] = [];
  out.push(`keyflow hostile-input fuzz — ${opts.name}: ${s.sent} requests + ${s.verification} state checks in ${(s.ms / 1000).toFixed(1)} s, seed ${opts.workload.seed}`);
  out.push(`replay: ${opts.replay}`);
  if (s.aborted) out.push(`RUN STOPPED: ${s.aborted}`);
  for (const n of s.epochNotes) out.push(`note: ${n}`);
  if (s.blacklist.length) out.push(`note: after each poisoning, events with [${s.blacklist.map((b) => b.join(" + ")).join("], [")}] were left out of the rest of the run so that other failures stay visible`);
  if (s.verifyNote) out.push(`state: ${s.verifyNote}`);
  const st = s.stats;
  out.push(
    `events: ${st.accepted.valid + st.rejected.valid} valid (${st.rejected.valid} rejected), ${st.accepted.invalid + st.rejected.invalid} invalid (${st.accepted.invalid} accepted), ${st.accepted.uncertain + st.rejected.uncertain} of validity the rules leave open (${st.accepted.uncertain} accepted)`,
  );
  out.push(`requests: ${[...st.kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")}`);
  if (st.uncertain.size) {
    out.push(`the server's choice where the rules leave it open: ${[...st.uncertain].sort().map(([l, t]) => `${l}: ${t.accepted ? `accepted${t.rejected ? ` ${t.accepted}, rejected ${t.rejected}` : ""}` : "rejected"}`).join("; ")}`);
  }
  if (!failures.length) {
    out.push("no failures");
    return out.join("\n");
  }
  out.push(`${failures.length} distinct failure${failures.length > 1 ? "s" : ""}:`);
  failures.forEach((f, i) => {
    out.push("");
    out.push(`${i + 1}. [${f.rule}] ${RULES[f.rule] ?? ""}`);
    out.push(`   ${f.title}`);
    out.push(`   seen ${f.count} time${f.count > 1 ? "s" : ""}${f.first.spec && f.first.spec.n >= 0 ? `, first in request #${f.first.spec.n}` : ""}${f.also ? `; also ${f.also} rejections for another field that do not name it` : ""}`);
    if (f.minimal) {
      out.push(`   ${f.rule === "poisoned" ? "the request that does it" : f.minimal.reproduced ? "minimal request (fails alone on a fresh in-process app)" : "smallest request seen"}:`);
      out.push(formatRequest(f.minimal.spec));
      out.push(`   response: ${responseSummary(f.minimal.outcome)}`);
      if (f.minimal.then) {
        out.push("   then:");
        out.push(formatRequest(f.minimal.then.spec));
        out.push(`   response: ${responseSummary(f.minimal.then.outcome)}`);
      }
      if (f.minimal.note) out.push(`   (${f.minimal.note})`);
    } else if (f.example.spec) {
      out.push("   request:");
      out.push(formatRequest(f.example.spec));
      out.push(`   response: ${responseSummary(f.example.outcome)}`);
    }
  });
  return out.join("\n");
}

import { z } from "zod";
import type { AggregateName, AnalyticsConfig, Condition, DetectionRule, EnrichRule, TypeAnalytics, WindowShape } from "../actor/analytics.ts";
import { DEFAULT_ACTOR_CONFIG } from "../actor/config.ts";
import { detectionRuleProblem, MAX_BASELINE } from "../actor/detect.ts";
import { MAX_EXACT_UP_TO } from "../actor/distinct.ts";
import { fieldNameProblem } from "../actor/enrich.ts";
import { EVENT_TYPE } from "../actor/event.ts";
import { pathProblem } from "../actor/paths.ts";
import { parseWindowShape, windowShapeName } from "../actor/window-shapes.ts";
import type { WindowSpec } from "../actor/windows.ts";
import { ConfigError } from "./config.ts";
import type { EnvReader } from "./reader.ts";

/**
 * keyflow.config.json (docs/analytics-config.md): per event type windows, measure and extra aggregates,
 * enrichment and detection rules. One zod schema for every host: the self-hosted server reads the file
 * KEYFLOW_CONFIG names, the Worker the one wrangler bundles. Every problem names its JSON path.
 * Type names, paths and rule names are client data: types go into a Map, and no name becomes a property.
 */

/** The bounds of a configuration file; each one exceeded is a problem naming its path. */
export const ANALYTICS_LIMITS = {
  fileChars: 1024 * 1024,
  types: 100,
  windowsPerType: 20,
  percentiles: 20,
  exactUpTo: MAX_EXACT_UP_TO,
  enrich: 100,
  rules: 100,
  conditionDepth: 8,
  conditionsPerRule: 64,
  stringLength: 256,
  /** Problems listed in one ConfigError; the rest are counted. */
  problems: 20,
} as const;
const L = ANALYTICS_LIMITS;

/** A client-written string in a message: JSON-quoted, cut at 64 characters. */
const show = (text: string) => JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);

type PathKey = PropertyKey;

/** ["rules", 2, "window"] -> rules[2].window; names that are not identifiers are quoted: types["page.view"]. */
export function jsonPath(path: readonly PathKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (/^[A-Za-z_$][\w$]{0,63}$/.test(String(key))) out += `${out ? "." : ""}${String(key)}`;
    else out += `[${show(String(key))}]`;
  }
  return out || "(the file)";
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Measures and distinct paths read a number or a value of the event: "value", "properties.<name>...", "enriched.<name>". */
const MEASURE_ROOTS = new Set(["value", "properties", "enriched"]);

/** A path as src/actor/paths.ts reads it (no "__proto__", "constructor" or "prototype" segment); a measure's starts at MEASURE_ROOTS. */
function pathCheck(measure: boolean) {
  return (path: string): string | undefined => {
    const problem = pathProblem(path);
    if (problem) return `${show(path)}: ${problem}`;
    if (path === "properties") return `${show(path)} needs a property name, like properties.amount`;
    if (measure && !MEASURE_ROOTS.has(path.split(".")[0]!)) return `${show(path)} is not a measure: use value, properties.<name> or enriched.<name>`;
    return undefined;
  };
}

const string = (max: number) => z.string({ error: "must be a string" }).max(max, `must be at most ${max} characters`);

/** A string that `parse` turns into a value, or whose problem it names. */
const parsedString = <T extends object>(max: number, parse: (text: string) => T | string) =>
  string(max).transform((text, ctx) => {
    const value = parse(text);
    if (typeof value !== "string") return value;
    ctx.addIssue({ code: "custom", message: value });
    return z.NEVER;
  });

/** A string, if `problem` finds nothing wrong with it. */
const checkedString = (max: number, problem: (text: string) => string | undefined) =>
  string(max).transform((text, ctx) => {
    const message = problem(text);
    if (message) ctx.addIssue({ code: "custom", message });
    return text;
  });

const measurePath = checkedString(L.stringLength, pathCheck(true));
const conditionPath = checkedString(L.stringLength, pathCheck(false));
const windowShape = parsedString(64, parseWindowShape);
const eventType = z.string({ error: "must be a string" }).regex(EVENT_TYPE, "must be an event type: 1-64 of a-z 0-9 _ . : -");
const COMPARISONS = [">", ">=", "<", "<=", "==", "!="] as const;
const comparison = z.enum(COMPARISONS, { error: `must be one of ${COMPARISONS.join(" ")}` });
const finite = z.number({ error: "must be a number" });
const positive = finite.positive("must be above 0");
const count = (min: number, max: number) => finite.int("must be a whole number").min(min, `must be at least ${min}`).max(max, `must be at most ${max}`);
const list = <T extends z.ZodType>(item: T, max: number, what: string) => z.array(item, { error: "must be a list" }).max(max, `at most ${max} ${what}`);

const typeEntry = z.strictObject({
  measure: measurePath.optional(),
  windows: list(windowShape, L.windowsPerType, "windows per type").min(1, "must list at least one window").optional(),
  distinct: z
    .strictObject({ path: measurePath, exact_up_to: count(1, L.exactUpTo).default(1000) }, { error: "must be an object like {\"path\": \"properties.product_id\"}" })
    .optional(),
  percentiles: list(finite.gt(0, "must be in (0, 100)").lt(100, "must be in (0, 100)"), L.percentiles, "percentiles").optional(),
}, { error: "must be an object" });
type TypeEntry = z.output<typeof typeEntry>;

/** Issues as "path: message" lines; an unknown field is one line naming it. */
function problemsOf(issues: readonly z.core.$ZodIssue[], prefix: readonly PathKey[] = []): Array<{ path: PathKey[]; message: string }> {
  return issues.flatMap((i) =>
    i.code === "unrecognized_keys"
      ? i.keys.map((key) => ({ path: [...prefix, ...i.path, key], message: "unknown field" }))
      : [{ path: [...prefix, ...i.path], message: i.message }],
  );
}

/** The "types" object, read into a Map by its own entries: a type named "__proto__" is a type like any other. */
const types = z.unknown().transform((value, ctx) => {
  const out = new Map<string, TypeEntry>();
  if (!isObject(value)) ctx.addIssue({ code: "custom", message: 'must be an object of event types, like {"purchase": {"windows": ["1m"]}}' });
  const entries = isObject(value) ? Object.entries(value) : [];
  if (entries.length > L.types) ctx.addIssue({ code: "custom", message: `at most ${L.types} types` });
  for (const [name, entry] of entries.slice(0, L.types)) {
    if (name !== "*" && !EVENT_TYPE.test(name)) {
      ctx.addIssue({ code: "custom", path: [name], message: 'must be "*" or an event type: 1-64 of a-z 0-9 _ . : -' });
      continue;
    }
    const parsed = typeEntry.safeParse(entry);
    if (parsed.success) out.set(name, parsed.data);
    else for (const p of problemsOf(parsed.error.issues, [name])) ctx.addIssue({ code: "custom", path: p.path, message: p.message });
  }
  return out;
});

const CONDITION_FORMS = 'must be {"path", "op", "value"}, {"first": type}, {"all": [...]}, {"any": [...]} or {"not": condition}';
const comparisonCondition = z.strictObject({
  path: conditionPath,
  op: comparison,
  value: z.union([string(L.stringLength), finite, z.boolean()], { error: "must be a string, a number or true/false" }),
});

/** A condition, read by hand: its form is the one key it has, and its depth and size are bounded before recursing. */
const condition = z.unknown().transform((value, ctx) => {
  let seen = 0;
  const fail = (path: PathKey[], message: string): undefined => {
    ctx.addIssue({ code: "custom", path, message });
    return undefined;
  };
  const read = (v: unknown, at: PathKey[], depth: number): Condition | undefined => {
    seen++;
    if (seen > L.conditionsPerRule) return seen === L.conditionsPerRule + 1 ? fail(at, `at most ${L.conditionsPerRule} conditions in one rule`) : undefined;
    if (depth > L.conditionDepth) return fail(at, `conditions nest at most ${L.conditionDepth} deep`);
    if (!isObject(v)) return fail(at, CONDITION_FORMS);
    if (Object.hasOwn(v, "path")) {
      const parsed = comparisonCondition.safeParse(v);
      if (!parsed.success) {
        for (const p of problemsOf(parsed.error.issues, at)) fail(p.path, p.message);
        return undefined;
      }
      const { op, value } = parsed.data;
      if (op !== "==" && op !== "!=" && typeof value === "boolean") return fail([...at, "value"], `"${op}" compares numbers or strings; use == or != for true/false`);
      return parsed.data;
    }
    const keys = Object.keys(v);
    const form = keys[0];
    if (keys.length !== 1 || (form !== "first" && form !== "all" && form !== "any" && form !== "not")) return fail(at, CONDITION_FORMS);
    const inner = v[form];
    if (form === "first") {
      const parsed = eventType.safeParse(inner);
      return parsed.success ? { first: parsed.data } : fail([...at, "first"], parsed.error.issues[0]!.message);
    }
    if (form === "not") {
      const not = read(inner, [...at, "not"], depth + 1);
      return not && { not };
    }
    if (!Array.isArray(inner) || inner.length === 0) return fail([...at, form], "must be a non-empty list of conditions");
    const items = inner.map((c, i) => read(c, [...at, form, i], depth + 1));
    if (items.some((c) => c === undefined)) return undefined;
    return form === "all" ? { all: items as Condition[] } : { any: items as Condition[] };
  };
  return read(value, [], 1) ?? z.NEVER;
});

const enrichRule = z.strictObject({
  set: checkedString(64, fieldNameProblem),
  value: z.union([string(L.stringLength), finite, z.boolean()], { error: "must be a string, a number or true/false" }),
  when: condition,
  types: list(eventType, L.types, "types").min(1, "must list at least one type (leave it out for every type)").optional(),
}, { error: "must be an object" });

const BASIC_AGGREGATES = ["count", "sum", "min", "max", "avg", "distinct"];
const percentileOf = (text: string) => {
  const n = Number(/^p(\d{1,2}(?:\.\d{1,6})?)$/.exec(text)?.[1]);
  return n > 0 && n < 100 ? n : undefined;
};
const aggregate = checkedString(16, (text) =>
  BASIC_AGGREGATES.includes(text) || percentileOf(text) !== undefined ? undefined : `${show(text)} is not an aggregate: use ${BASIC_AGGREGATES.join(", ")} or a percentile like p99`,
).transform((text): AggregateName => (BASIC_AGGREGATES.includes(text) ? (text as AggregateName) : `p${percentileOf(text)!}`));

const RULE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const rule = z
  .strictObject({
    name: z.string({ error: "must be a string" }).regex(RULE_NAME, "must be a rule name: 1-64 of A-Z a-z 0-9 _ . : -"),
    type: eventType,
    window: windowShape,
    aggregate,
    op: comparison.optional(),
    threshold: finite.optional(),
    change: z.strictObject({ op: comparison, ratio: positive }, { error: 'must be an object like {"op": ">", "ratio": 3}' }).optional(),
    zscore: z
      .strictObject({ above: positive, baseline: count(2, MAX_BASELINE).default(24), warmup: count(0, MAX_BASELINE).optional() }, { error: 'must be an object like {"above": 3}' })
      .optional(),
  }, { error: "must be an object" })
  .transform((r, ctx): DetectionRule => {
    const target = { name: r.name, type: r.type, window: windowShapeName(r.window), aggregate: r.aggregate };
    const kinds = [r.threshold !== undefined, r.change !== undefined, r.zscore !== undefined].filter(Boolean).length;
    const problem = (path: PathKey[], message: string) => {
      ctx.addIssue({ code: "custom", path, message });
      return z.NEVER;
    };
    if (kinds !== 1) return problem([], 'needs exactly one of "threshold" (with "op"), "change" or "zscore"');
    if (r.threshold !== undefined) {
      if (!r.op) return problem(["op"], 'is required with "threshold"');
      return { ...target, kind: "threshold", op: r.op, threshold: r.threshold };
    }
    if (r.op) return problem(["op"], 'goes with "threshold" only ("change" has its own op)');
    if (r.change) return { ...target, kind: "change", ...r.change };
    const { above, baseline, warmup = baseline } = r.zscore!;
    if (warmup > baseline) return problem(["zscore", "warmup"], `must be at most the baseline (${baseline})`);
    return { ...target, kind: "zscore", above, baseline, warmup };
  })
  // The rules engine's own bounds (src/actor/detect.ts), should they ever be narrower than this schema's.
  .superRefine((r, ctx) => {
    const problem = detectionRuleProblem(r);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const file = z.strictObject({
  types: types.optional(),
  enrich: list(enrichRule, L.enrich, "enrichment rules").default([]),
  rules: list(rule, L.rules, "rules").default([]),
}, { error: "must be a JSON object with types, enrich and rules" });

export type AnalyticsResult = { config: AnalyticsConfig } | { problems: string[] };

/** A parsed keyflow.config.json -> AnalyticsConfig; `windows` (KEYFLOW_WINDOWS) are the windows of a type the file gives none. */
export function analyticsFromJson(json: unknown, windows: readonly WindowSpec[]): AnalyticsResult {
  const parsed = file.safeParse(json);
  const problems = parsed.success ? [] : problemsOf(parsed.error.issues);
  const config = parsed.success ? resolve(parsed.data, windows, (path, message) => problems.push({ path, message })) : undefined;
  if (config && !problems.length) return { config };
  const lines = problems.map((p) => `${jsonPath(p.path)}: ${p.message}`);
  const more = lines.length - L.problems;
  return { problems: more > 0 ? [...lines.slice(0, L.problems), `... and ${more} more problems`] : lines };
}

/** keyflow.config.json's text -> AnalyticsConfig, or problems (not JSON, too large, or as analyticsFromJson). */
export function analyticsFromText(text: string, windows: readonly WindowSpec[]): AnalyticsResult {
  if (text.length > L.fileChars) return { problems: [`is larger than ${L.fileChars} characters`] };
  try {
    return analyticsFromJson(JSON.parse(text.replace(/^\uFEFF/, "")), windows);
  } catch (error) {
    return { problems: [`is not JSON: ${error instanceof Error ? error.message : String(error)}`] };
  }
}

/** analyticsFromJson, throwing ConfigError; windows default to KEYFLOW_WINDOWS' default (1m, 1h). */
export function parseAnalyticsConfig(json: unknown, windows: readonly WindowSpec[] = DEFAULT_ACTOR_CONFIG.windows): AnalyticsConfig {
  const result = analyticsFromJson(json, windows);
  if ("problems" in result) throw new ConfigError(result.problems);
  return result.config;
}

const shapeOf = (spec: WindowSpec): WindowShape =>
  spec.hop === spec.size ? { kind: "tumbling", sizeMs: spec.size } : { kind: "hopping", sizeMs: spec.size, hopMs: spec.hop };

/**
 * Defaults and cross-references. Fields a type leaves out are those of "*", and "*"'s are KEYFLOW_WINDOWS'
 * windows and measure "value"; the Map always holds "*", so a type not listed gets it. A rule's window and
 * aggregate must be configured for its type.
 */
function resolve(raw: { types?: Map<string, TypeEntry>; enrich: EnrichRule[]; rules: DetectionRule[] }, windows: readonly WindowSpec[], problem: (path: PathKey[], message: string) => void): AnalyticsConfig {
  const entries = raw.types ?? new Map<string, TypeEntry>();
  for (const [name, t] of entries) {
    const names = (t.windows ?? []).map(windowShapeName);
    names.forEach((n, i) => names.indexOf(n) < i && problem(["types", name, "windows", i], `"${n}" is the same window as windows[${names.indexOf(n)}]`));
    t.percentiles?.forEach((p, i) => t.percentiles!.indexOf(p) < i && problem(["types", name, "percentiles", i], `${p} is listed twice`));
  }
  const star = entries.get("*");
  const base: TypeAnalytics = { measure: star?.measure ?? "value", windows: star?.windows ?? windows.map(shapeOf), aggregates: aggregatesOf(star, {}) };
  const types = new Map<string, TypeAnalytics>([["*", base]]);
  for (const [name, t] of entries) {
    if (name !== "*") types.set(name, { measure: t.measure ?? base.measure, windows: t.windows ?? base.windows, aggregates: aggregatesOf(t, base.aggregates) });
  }
  const firstIndex = new Map<string, number>();
  raw.rules.forEach((r, i) => {
    const first = firstIndex.get(r.name);
    if (first !== undefined) problem(["rules", i, "name"], `${show(r.name)} is used twice (also rules[${first}])`);
    else firstIndex.set(r.name, i);
    const t = types.get(r.type) ?? base;
    const names = t.windows.map(windowShapeName);
    const of = `type ${show(r.type)}${types.has(r.type) ? "" : ' (not listed: it gets "*"\'s)'}`;
    if (!names.includes(r.window)) problem(["rules", i, "window"], `"${r.window}" is not a window of ${of} (its windows: ${names.join(", ")})`);
    if (r.aggregate === "distinct" && !t.aggregates.distinct) problem(["rules", i, "aggregate"], `"distinct" needs a "distinct" path configured for ${of}`);
    const p = r.aggregate.startsWith("p") ? Number(r.aggregate.slice(1)) : undefined;
    if (p !== undefined && !t.aggregates.percentiles?.includes(p)) {
      problem(["rules", i, "aggregate"], `"${r.aggregate}" needs ${p} among the percentiles of ${of} (its percentiles: ${t.aggregates.percentiles?.join(", ") || "none"})`);
    }
  });
  return { types, enrich: raw.enrich, rules: raw.rules };
}

function aggregatesOf(t: TypeEntry | undefined, base: TypeAnalytics["aggregates"]): TypeAnalytics["aggregates"] {
  const distinct = t?.distinct ? { path: t.distinct.path, exactUpTo: t.distinct.exact_up_to } : base.distinct;
  const percentiles = t?.percentiles ?? base.percentiles;
  return { ...(distinct ? { distinct } : {}), ...(percentiles ? { percentiles } : {}) };
}

/**
 * Where a host finds keyflow.config.json: self-hosted, `read` reads the file KEYFLOW_CONFIG names (the
 * runtime's file system); on Workers, `bundled` is the file wrangler bundled (undefined: none), `name` says where from.
 */
export type ConfigFileSource = { read(path: string): string } | { bundled: unknown; name: string };

/** Settings' analytics: undefined without a file; each problem names KEYFLOW_CONFIG (or the bundle), the file and the JSON path. */
export function readAnalytics(r: EnvReader, source: ConfigFileSource | undefined, windows: readonly WindowSpec[]): AnalyticsConfig | undefined {
  const path = r.env.KEYFLOW_CONFIG;
  if (source && "bundled" in source) {
    if (path) r.problem("KEYFLOW_CONFIG", path, `is not read on Workers: wrangler bundles the file that wrangler.toml's [alias] "keyflow-config" names`);
    if (source.bundled === undefined) return undefined;
    const result = analyticsFromJson(source.bundled, windows);
    if ("config" in result) return result.config;
    for (const p of result.problems) r.problems.push(`${source.name}: ${p}`);
    return undefined;
  }
  if (!path || !source) return undefined;
  let text: string;
  try {
    text = source.read(path);
  } catch (error) {
    r.problem("KEYFLOW_CONFIG", path, `cannot be read: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
  const result = analyticsFromText(text, windows);
  if ("config" in result) return result.config;
  for (const p of result.problems) r.problem("KEYFLOW_CONFIG", path, p);
  return undefined;
}

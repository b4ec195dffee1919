import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AnalyticsConfig, DetectionRule, TypeAnalytics, WindowShape } from "../../src/actor/analytics.ts";
import { MAX_CONDITION_DEPTH } from "../../src/actor/enrich.ts";
import { parseWindowShape, windowShapeName } from "../../src/actor/window-shapes.ts";
import { parseWindowSpec, type WindowSpec } from "../../src/actor/windows.ts";
import { ConfigError } from "../../src/settings/config.ts";
import { analyticsFromText, ANALYTICS_LIMITS, parseAnalyticsConfig, type ConfigFileSource } from "../../src/settings/analytics.ts";
import { readSettings, serverSettings } from "../../src/settings/env.ts";
import { BUN_SERVER, ROOT, spawnServer, tempDir } from "../support/targets.ts";

const EXAMPLE = {
  types: {
    purchase: {
      measure: "properties.amount",
      windows: ["1m", "1h", "5m/1m", "sliding:10m", "session:30m"],
      distinct: { path: "properties.product_id", exact_up_to: 1000 },
      percentiles: [50, 90, 99],
    },
    "*": { windows: ["1m", "1h"] },
  },
  enrich: [
    { set: "category", value: "high_value", when: { path: "properties.amount", op: ">", value: 1000 }, types: ["purchase"] },
    { set: "first_purchase", value: true, when: { first: "purchase" } },
  ],
  rules: [
    { name: "burst", type: "purchase", window: "1m", aggregate: "count", op: ">", threshold: 10 },
    { name: "spike", type: "purchase", window: "1h", aggregate: "sum", change: { op: ">", ratio: 3 } },
    { name: "unusual", type: "purchase", window: "1h", aggregate: "sum", zscore: { above: 3, baseline: 24, warmup: 6 } },
  ],
};

const M = 60_000;
const H = 60 * M;
const minuteHour: WindowShape[] = [
  { kind: "tumbling", sizeMs: M },
  { kind: "tumbling", sizeMs: H },
];

/** The problems parseAnalyticsConfig throws for `json` (fails the test if it parses). */
function problems(json: unknown, windows?: WindowSpec[]): string[] {
  try {
    parseAnalyticsConfig(json, windows);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error(`parsed: ${JSON.stringify(json).slice(0, 200)}`);
}

const rule = (over: Record<string, unknown> = {}) => ({ name: "r", type: "purchase", window: "1m", aggregate: "count", op: ">", threshold: 1, ...over });
const typed = (purchase: Record<string, unknown>, rest: Record<string, unknown> = {}) => ({ types: { purchase }, ...rest });
const enrichWhen = (when: unknown) => ({ enrich: [{ set: "f", value: 1, when }] });

describe("keyflow.config.json", () => {
  test("the issue's example parses into the AnalyticsConfig the rules engine reads", () => {
    const config = parseAnalyticsConfig(JSON.parse(JSON.stringify(EXAMPLE)));
    const star: TypeAnalytics = { measure: "value", windows: minuteHour, aggregates: {} };
    const purchase: TypeAnalytics = {
      measure: "properties.amount",
      windows: [...minuteHour, { kind: "hopping", sizeMs: 5 * M, hopMs: M }, { kind: "sliding", sizeMs: 10 * M }, { kind: "session", gapMs: 30 * M }],
      aggregates: { distinct: { path: "properties.product_id", exactUpTo: 1000 }, percentiles: [50, 90, 99] },
    };
    const expected: AnalyticsConfig = {
      types: new Map([
        ["*", star],
        ["purchase", purchase],
      ]),
      enrich: [
        { set: "category", value: "high_value", when: { path: "properties.amount", op: ">", value: 1000 }, types: ["purchase"] },
        { set: "first_purchase", value: true, when: { first: "purchase" } },
      ],
      rules: [
        { name: "burst", type: "purchase", window: "1m", aggregate: "count", kind: "threshold", op: ">", threshold: 10 },
        { name: "spike", type: "purchase", window: "1h", aggregate: "sum", kind: "change", op: ">", ratio: 3 },
        { name: "unusual", type: "purchase", window: "1h", aggregate: "sum", kind: "zscore", above: 3, baseline: 24, warmup: 6 },
      ],
    };
    expect(config).toStrictEqual(expected);
    expect(config.types).toBeInstanceOf(Map);
    expect([...config.types.keys()]).toEqual(["*", "purchase"]);
  });

  test("defaults: without a type or '*', KEYFLOW_WINDOWS' windows and measure value; a type's omitted fields are '*''s", () => {
    const windows = [parseWindowSpec("5m/1m") as WindowSpec, parseWindowSpec("1h") as WindowSpec];
    const empty = parseAnalyticsConfig({}, windows);
    expect(empty).toStrictEqual({
      types: new Map([["*", { measure: "value", windows: [{ kind: "hopping", sizeMs: 5 * M, hopMs: M }, { kind: "tumbling", sizeMs: H }], aggregates: {} }]]),
      enrich: [],
      rules: [],
    });
    const inherited = parseAnalyticsConfig({ types: { "*": { measure: "properties.amount", windows: ["1m"], percentiles: [99] }, view: {}, buy: { windows: ["1h"], distinct: { path: "properties.sku" } } } }, windows);
    expect(inherited.types.get("view")).toStrictEqual({ measure: "properties.amount", windows: [{ kind: "tumbling", sizeMs: M }], aggregates: { percentiles: [99] } });
    expect(inherited.types.get("buy")).toStrictEqual({
      measure: "properties.amount",
      windows: [{ kind: "tumbling", sizeMs: H }],
      aggregates: { distinct: { path: "properties.sku", exactUpTo: 1000 }, percentiles: [99] },
    });
    // zscore: baseline 24 and warm-up = baseline unless given; a rule may watch a type that is not listed ("*"'s windows).
    const z = parseAnalyticsConfig({ rules: [{ name: "z", type: "login", window: "1h", aggregate: "count", zscore: { above: 2.5 } }] });
    expect(z.rules[0]).toStrictEqual({ name: "z", type: "login", window: "1h", aggregate: "count", kind: "zscore", above: 2.5, baseline: 24, warmup: 24 });
  });

  test("window shapes and aggregates have one name each: 60m is 1h, p99.50 is p99.5", () => {
    for (const [text, name] of [["1m", "1m"], ["60m", "1h"], ["5m/1m", "5m/1m"], ["300s/60s", "5m/1m"], ["sliding:600s", "sliding:10m"], ["session:30m", "session:30m"]]) {
      const shape = parseWindowShape(text!);
      expect(typeof shape, text).toBe("object");
      expect(windowShapeName(shape as WindowShape)).toBe(name!);
    }
    for (const bad of ["", "tumbling:1m", "sliding:", "sliding:0s", "session:x", "5m/2m", "1m/1m/1m"]) expect(typeof parseWindowShape(bad), bad).toBe("string");
    const config = parseAnalyticsConfig({
      types: { purchase: { windows: ["60m"], percentiles: [99.5] } },
      rules: [rule({ window: "1h", aggregate: "p99.50" })],
    });
    expect(config.rules[0]).toMatchObject({ window: "1h", aggregate: "p99.5" });
  });

  // Each bad entry: the problem line it gives, which starts with its exact JSON path.
  const BAD: Array<[string, unknown, string]> = [
    ["not an object", [], "(the file): must be a JSON object with types, enrich and rules"],
    ["unknown top-level field", { rule: [] }, "rule: unknown field"],
    ["types not an object", { types: ["purchase"] }, "types: must be an object of event types"],
    ["type name", { types: { Purchase: {} } }, 'types.Purchase: must be "*" or an event type'],
    ["type name with a dot is quoted", { types: { "page view": {} } }, 'types["page view"]: must be "*" or an event type'],
    ["unknown type field", typed({ window: ["1m"] }), "types.purchase.window: unknown field"],
    ["type entry not an object", typed(null as never), "types.purchase: must be an object"],
    ["measure root", typed({ measure: "type" }), 'types.purchase.measure: "type" is not a measure'],
    ["measure properties alone", typed({ measure: "properties" }), 'types.purchase.measure: "properties" needs a property name'],
    ["measure __proto__", typed({ measure: "properties.__proto__.x" }), 'types.purchase.measure: "properties.__proto__.x": segment "__proto__" is not allowed'],
    ["measure constructor", typed({ measure: "properties.constructor" }), 'types.purchase.measure: "properties.constructor": segment "constructor" is not allowed'],
    ["measure prototype", typed({ measure: "properties.a.prototype" }), 'types.purchase.measure: "properties.a.prototype": segment "prototype" is not allowed'],
    ["measure empty segment", typed({ measure: "properties..a" }), "types.purchase.measure: \"properties..a\": has an empty segment"],
    ["no windows", typed({ windows: [] }), "types.purchase.windows: must list at least one window"],
    ["bad window", typed({ windows: ["1m", "5x"] }), 'types.purchase.windows[1]: "5x": window size must be a positive duration'],
    ["bad window kind", typed({ windows: ["tumbling:1m"] }), 'types.purchase.windows[0]: "tumbling:1m" is not a window'],
    ["same window twice", typed({ windows: ["1h", "60m"] }), 'types.purchase.windows[1]: "1h" is the same window as windows[0]'],
    ["too many windows", typed({ windows: Array.from({ length: 21 }, (_, i) => `${i + 1}m`) }), "types.purchase.windows: at most 20 windows per type"],
    ["distinct without path", typed({ distinct: { exact_up_to: 10 } }), "types.purchase.distinct.path: must be a string"],
    ["distinct bound", typed({ distinct: { path: "properties.sku", exact_up_to: 0 } }), "types.purchase.distinct.exact_up_to: must be at least 1"],
    ["distinct bound too large", typed({ distinct: { path: "properties.sku", exact_up_to: 1e6 } }), `types.purchase.distinct.exact_up_to: must be at most ${ANALYTICS_LIMITS.exactUpTo}`],
    ["percentile 0", typed({ percentiles: [50, 0] }), "types.purchase.percentiles[1]: must be in (0, 100)"],
    ["percentile 100", typed({ percentiles: [100] }), "types.purchase.percentiles[0]: must be in (0, 100)"],
    ["percentile text", typed({ percentiles: ["p99"] }), "types.purchase.percentiles[0]: must be a number"],
    ["percentile twice", typed({ percentiles: [90, 90.0] }), "types.purchase.percentiles[1]: 90 is listed twice"],
    ["too many types", { types: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`t${i}`, {}])) }, "types: at most 100 types"],
    ["enrich not a list", { enrich: {} }, "enrich: must be a list"],
    ["enrich field name", { enrich: [{ set: "1st", value: 1, when: { first: "a" } }] }, "enrich[0].set: must be an identifier"],
    ["enrich field __proto__", { enrich: [{ set: "__proto__", value: 1, when: { first: "a" } }] }, 'enrich[0].set: "__proto__" is not allowed'],
    ["enrich value object", { enrich: [{ set: "f", value: { a: 1 }, when: { first: "a" } }] }, "enrich[0].value: must be a string, a number or true/false"],
    ["enrich without when", { enrich: [{ set: "f", value: 1 }] }, "enrich[0].when: must be"],
    ["enrich types empty", { enrich: [{ set: "f", value: 1, when: { first: "a" }, types: [] }] }, "enrich[0].types: must list at least one type"],
    ["enrich types name", { enrich: [{ set: "f", value: 1, when: { first: "a" }, types: ["ok", "No"] }] }, "enrich[0].types[1]: must be an event type"],
    ["condition form", enrichWhen({ path: "value", op: ">", value: 1, first: "a" }), "enrich[0].when.first: unknown field"],
    ["condition unknown form", enrichWhen({ every: [] }), 'enrich[0].when: must be {"path", "op", "value"}'],
    ["condition op", enrichWhen({ path: "value", op: "=>", value: 1 }), "enrich[0].when.op: must be one of > >= < <= == !="],
    ["condition path", enrichWhen({ path: "properties.__proto__", op: "==", value: 1 }), 'enrich[0].when.path: "properties.__proto__": segment "__proto__" is not allowed'],
    ["condition path root", enrichWhen({ path: "amount", op: "==", value: 1 }), 'enrich[0].when.path: "amount": must start with one of'],
    ["condition ordering a boolean", enrichWhen({ path: "properties.vip", op: ">", value: true }), 'enrich[0].when.value: ">" compares numbers or strings'],
    ["condition first", enrichWhen({ all: [{ first: 7 }] }), "enrich[0].when.all[0].first: must be a string"],
    ["condition empty all", enrichWhen({ any: [] }), "enrich[0].when.any: must be a non-empty list of conditions"],
    ["condition in a list", enrichWhen({ all: [{ first: "a" }, "b"] }), 'enrich[0].when.all[1]: must be {"path"'],
    ["condition depth", enrichWhen({ not: { not: { not: { not: { not: { not: { not: { not: { first: "a" } } } } } } } } }), "enrich[0].when.not.not.not.not.not.not.not.not: conditions nest at most 8 deep"],
    ["conditions per rule", enrichWhen({ any: Array.from({ length: 70 }, () => ({ first: "a" })) }), "enrich[0].when.any[63]: at most 64 conditions in one rule"],
    ["too many enrichment rules", { enrich: Array.from({ length: 101 }, () => ({ set: "f", value: 1, when: { first: "a" } })) }, "enrich: at most 100 enrichment rules"],
    ["rules not a list", { rules: "burst" }, "rules: must be a list"],
    ["rule name", { rules: [rule({ name: "a b" })] }, "rules[0].name: must be a rule name"],
    ["rule name twice", { rules: [rule({ name: "burst" }), rule({ name: "other" }), rule({ name: "burst" })] }, 'rules[2].name: "burst" is used twice (also rules[0])'],
    ["rule on '*'", { rules: [rule({ type: "*" })] }, "rules[0].type: must be an event type"],
    ["rule window syntax", { rules: [rule({ window: "1 minute" })] }, 'rules[0].window: "1 minute"'],
    ["rule window not configured", typed({ windows: ["1m", "1h"] }, { rules: [rule(), rule({ name: "x" }), rule({ name: "y", window: "5m" })] }), 'rules[2].window: "5m" is not a window of type "purchase" (its windows: 1m, 1h)'],
    ["rule window of '*'", { rules: [rule({ type: "login", window: "sliding:10m" })] }, 'rules[0].window: "sliding:10m" is not a window of type "login" (not listed: it gets "*"\'s) (its windows: 1m, 1h)'],
    ["rule aggregate", { rules: [rule({ aggregate: "median" })] }, 'rules[0].aggregate: "median" is not an aggregate'],
    ["rule aggregate p100", { rules: [rule({ aggregate: "p100" })] }, 'rules[0].aggregate: "p100" is not an aggregate'],
    ["rule distinct without distinct", { rules: [rule({ aggregate: "distinct" })] }, 'rules[0].aggregate: "distinct" needs a "distinct" path configured for type "purchase"'],
    ["rule percentile not configured", typed({ percentiles: [50, 90] }, { rules: [rule({ aggregate: "p99" })] }), 'rules[0].aggregate: "p99" needs 99 among the percentiles of type "purchase" (its percentiles: 50, 90)'],
    ["rule without a kind", { rules: [{ name: "r", type: "a", window: "1m", aggregate: "count" }] }, 'rules[0]: needs exactly one of "threshold" (with "op"), "change" or "zscore"'],
    ["rule with two kinds", { rules: [rule({ change: { op: ">", ratio: 2 } })] }, 'rules[0]: needs exactly one of "threshold"'],
    ["threshold without op", { rules: [rule({ op: undefined })] }, 'rules[0].op: is required with "threshold"'],
    ["op with change", { rules: [rule({ threshold: undefined, change: { op: ">", ratio: 2 } })] }, 'rules[0].op: goes with "threshold" only'],
    ["threshold not a number", { rules: [rule({ threshold: "10" })] }, "rules[0].threshold: must be a number"],
    ["change ratio", { rules: [rule({ op: undefined, threshold: undefined, change: { op: ">", ratio: 0 } })] }, "rules[0].change.ratio: must be above 0"],
    ["zscore above", { rules: [rule({ op: undefined, threshold: undefined, zscore: { above: -1 } })] }, "rules[0].zscore.above: must be above 0"],
    ["zscore baseline", { rules: [rule({ op: undefined, threshold: undefined, zscore: { above: 3, baseline: 1 } })] }, "rules[0].zscore.baseline: must be at least 2"],
    ["zscore warm-up", { rules: [rule({ op: undefined, threshold: undefined, zscore: { above: 3, baseline: 12, warmup: 13 } })] }, "rules[0].zscore.warmup: must be at most the baseline (12)"],
    ["zscore field", { rules: [rule({ op: undefined, threshold: undefined, zscore: { above: 3, window: 4 } })] }, "rules[0].zscore.window: unknown field"],
    ["too many rules", { rules: Array.from({ length: 101 }, (_, i) => rule({ name: `r${i}` })) }, "rules: at most 100 rules"],
  ];
  for (const [what, json, line] of BAD) {
    test(`refused, naming the path: ${what}`, () => {
      const found = problems(json);
      expect(found.some((p) => p.startsWith(line)), `${line}\nnot in:\n${found.join("\n")}`).toBe(true);
    });
  }

  test("text: not JSON, too large, a byte-order mark", () => {
    expect(analyticsFromText("{", [])).toEqual({ problems: [expect.stringMatching(/^is not JSON: /)] });
    expect(analyticsFromText(" ".repeat(ANALYTICS_LIMITS.fileChars + 1), [])).toEqual({ problems: [`is larger than ${ANALYTICS_LIMITS.fileChars} characters`] });
    expect("config" in analyticsFromText(`\uFEFF${JSON.stringify(EXAMPLE)}`, [])).toBe(true);
  });

  test("the condition depth stays within what the rules engine evaluates", () => {
    expect(ANALYTICS_LIMITS.conditionDepth).toBeLessThanOrEqual(MAX_CONDITION_DEPTH);
  });
});

describe("hostile names are data", () => {
  test('a type named "__proto__" or "constructor" is an entry of the Map, and no prototype changes', () => {
    const json = JSON.parse('{"types": {"__proto__": {"measure": "properties.amount", "windows": ["1m"]}, "constructor": {"windows": ["1h"]}}, "rules": [{"name": "p", "type": "__proto__", "window": "1m", "aggregate": "sum", "op": ">", "threshold": 1}]}');
    const config = parseAnalyticsConfig(json);
    expect([...config.types.keys()].sort()).toEqual(["*", "__proto__", "constructor"]);
    expect(config.types.get("__proto__")).toStrictEqual({ measure: "properties.amount", windows: [{ kind: "tumbling", sizeMs: M }], aggregates: {} });
    expect(config.rules[0]!.type).toBe("__proto__");
    expect(({} as Record<string, unknown>).measure).toBeUndefined();
    expect(Object.getPrototypeOf(config.types.get("*"))).toBe(Object.prototype);
  });

  test('a "__proto__" field at any level is an unknown field, not a prototype', () => {
    expect(problems(JSON.parse('{"__proto__": {"types": {}}}'))).toEqual(["__proto__: unknown field"]);
    expect(problems(JSON.parse('{"types": {"a": {"__proto__": {"measure": "x"}}}}'))).toEqual(["types.a.__proto__: unknown field"]);
    expect(problems(JSON.parse('{"rules": [{"__proto__": {"name": "x"}}]}'))).toContain("rules[0].__proto__: unknown field");
  });

  test("very long strings are refused and cut short in messages", () => {
    const long = "a".repeat(1_000_000);
    for (const json of [{ types: { [long]: {} } }, typed({ measure: `properties.${long}` }), { rules: [rule({ name: long })] }, typed({ windows: [long] }), { enrich: [{ set: "f", value: long, when: { first: "a" } }] }]) {
      const found = problems(json);
      expect(found.length).toBeGreaterThan(0);
      for (const line of found) expect(line.length).toBeLessThan(400);
    }
  });

  test("deep nesting is refused at the depth bound without recursing further", () => {
    let when: unknown = { first: "a" };
    for (let i = 0; i < 50_000; i++) when = { not: when };
    const found = problems(enrichWhen(when));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^enrich\[0\]\.when(\.not){8}: conditions nest at most 8 deep$/);
    // The same in text: the file's own nesting (JSON.parse) and the schema's both hold.
    const text = `{"enrich": [{"set": "f", "value": 1, "when": ${'{"not": '.repeat(5_000)}{"first": "a"}${"}".repeat(5_000)}}]}`;
    expect(analyticsFromText(text, [])).toEqual({ problems: [expect.stringMatching(/conditions nest at most 8 deep/)] });
  });

  test("a file with thousands of bad entries gives a bounded message", () => {
    const json = { types: { a: Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`x${i}`, 1])) } };
    const found = problems(json);
    expect(found).toHaveLength(ANALYTICS_LIMITS.problems + 1);
    expect(found.at(-1)).toBe(`... and ${5_000 - ANALYTICS_LIMITS.problems} more problems`);
  });
});

describe("random valid configurations", () => {
  const SHAPES = ["30s", "1m", "5m", "1h", "1d", "5m/1m", "1h/15m", "sliding:10m", "sliding:1h", "session:30m", "session:5m"];
  const typeName = fc.oneof(fc.stringMatching(/^[a-z0-9_.:-]{1,64}$/), fc.constantFrom("purchase", "__proto__", "constructor", "a.b", "x:y"));
  const segment = fc.stringMatching(/^[A-Za-z0-9_$-]{1,12}$/).filter((s) => !["__proto__", "constructor", "prototype"].includes(s));
  const measure = fc.oneof(fc.constant("value"), fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => `properties.${s.join(".")}`));
  const typeEntry = fc.record(
    {
      measure,
      windows: fc.uniqueArray(fc.constantFrom(...SHAPES), { minLength: 1, maxLength: 5 }),
      distinct: fc.record({ path: measure, exact_up_to: fc.integer({ min: 1, max: ANALYTICS_LIMITS.exactUpTo }) }),
      percentiles: fc.uniqueArray(fc.oneof(fc.integer({ min: 1, max: 99 }), fc.constantFrom(99.9, 0.5, 12.25)), { minLength: 1, maxLength: 5 }),
    },
    { requiredKeys: [] },
  );
  const scalar = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 20 }), fc.boolean());
  const leaf = fc.oneof(
    fc.record({ path: fc.oneof(measure, fc.constantFrom("type", "key", "ts", "enriched.category")), op: fc.constantFrom("==", "!="), value: scalar }),
    fc.record({ path: measure, op: fc.constantFrom(">", ">=", "<", "<="), value: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 20 })) }),
    fc.record({ first: typeName }),
  );
  const { condition } = fc.letrec<{ condition: unknown }>((tie) => ({
    condition: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      leaf,
      fc.record({ all: fc.array(tie("condition"), { minLength: 1, maxLength: 3 }) }),
      fc.record({ any: fc.array(tie("condition"), { minLength: 1, maxLength: 3 }) }),
      fc.record({ not: tie("condition") }),
    ),
  }));
  const enrichRule = fc.record(
    { set: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,20}$/).filter((s) => !["__proto__", "constructor", "prototype"].includes(s)), value: scalar, when: condition, types: fc.array(typeName, { minLength: 1, maxLength: 3 }) },
    { requiredKeys: ["set", "value", "when"] },
  );

  /** Counts a condition's nodes and depth, to keep generated ones within the bounds. */
  const size = (c: unknown, depth = 1): { nodes: number; depth: number } => {
    const o = c as { all?: unknown[]; any?: unknown[]; not?: unknown };
    const kids = o.all ?? o.any ?? (o.not ? [o.not] : []);
    return kids.map((k) => size(k, depth + 1)).reduce((a, b) => ({ nodes: a.nodes + b.nodes, depth: Math.max(a.depth, b.depth) }), { nodes: 1, depth });
  };

  const file = fc
    .record({
      types: fc.uniqueArray(fc.tuple(fc.oneof(typeName, fc.constant("*")), typeEntry), { maxLength: 6, selector: ([name]) => name }),
      enrich: fc.array(enrichRule, { maxLength: 5 }),
      ruleSeeds: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat(), fc.double({ min: 0.01, max: 1e6, noNaN: true })), { maxLength: 8 }),
      unlisted: typeName,
    })
    .filter(({ enrich }) => enrich.every((e) => size(e.when).nodes <= ANALYTICS_LIMITS.conditionsPerRule && size(e.when).depth <= ANALYTICS_LIMITS.conditionDepth))
    .map(({ types, enrich, ruleSeeds, unlisted }) => {
      // Rules that refer to what their type has: a listed type's windows and aggregates, or "*"'s.
      const entries = new Map(types);
      const star = entries.get("*") ?? {};
      const resolved = (name: string) => {
        const t = entries.get(name) ?? {};
        return { windows: t.windows ?? star.windows ?? ["1m", "1h"], distinct: t.distinct ?? star.distinct, percentiles: t.percentiles ?? star.percentiles };
      };
      const names = [...new Set([...entries.keys(), unlisted])].filter((n) => n !== "*");
      const rules = ruleSeeds.map(([a, b, c, d, x], i) => {
        const type = names[a % names.length]!;
        const t = resolved(type);
        const aggregates = ["count", "sum", "min", "max", "avg", ...(t.distinct ? ["distinct"] : []), ...(t.percentiles ?? []).map((p) => `p${p}`)];
        const target = { name: `rule-${i}`, type, window: t.windows[b % t.windows.length]!, aggregate: aggregates[c % aggregates.length]! };
        if (d % 3 === 0) return { ...target, op: ">", threshold: x };
        if (d % 3 === 1) return { ...target, change: { op: "<", ratio: x } };
        return { ...target, zscore: { above: x, baseline: 2 + (d % 50), warmup: d % 3 } };
      });
      return { types: Object.fromEntries(types), enrich, rules };
    });

  /** An AnalyticsConfig written back as a file: parsing it again gives the same config. */
  function toFile(config: AnalyticsConfig): unknown {
    const types = [...config.types].map(([name, t]) => [
      name,
      {
        measure: t.measure,
        windows: t.windows.map(windowShapeName),
        ...(t.aggregates.distinct ? { distinct: { path: t.aggregates.distinct.path, exact_up_to: t.aggregates.distinct.exactUpTo } } : {}),
        ...(t.aggregates.percentiles ? { percentiles: t.aggregates.percentiles } : {}),
      },
    ]);
    const rules = config.rules.map((r: DetectionRule) => {
      const { kind, name, type, window, aggregate } = r;
      const target = { name, type, window, aggregate };
      if (kind === "threshold") return { ...target, op: r.op, threshold: r.threshold };
      if (kind === "change") return { ...target, change: { op: r.op, ratio: r.ratio } };
      return { ...target, zscore: { above: r.above, baseline: r.baseline, warmup: r.warmup } };
    });
    // A plain object built by defineProperty: a type named "__proto__" stays an own key through JSON.
    const typesObject = {};
    for (const [name, t] of types) Object.defineProperty(typesObject, name as string, { value: t, enumerable: true, writable: true, configurable: true });
    return { types: typesObject, enrich: config.enrich, rules };
  }

  test("round-trip through JSON text and parse; writing the result back parses to the same config", () => {
    fc.assert(
      fc.property(file, (json) => {
        const typesObject = {};
        for (const [name, t] of Object.entries(json.types)) Object.defineProperty(typesObject, name, { value: t, enumerable: true, writable: true, configurable: true });
        const text = JSON.stringify({ ...json, types: typesObject });
        const parsed = analyticsFromText(text, [parseWindowSpec("1m") as WindowSpec, parseWindowSpec("1h") as WindowSpec]);
        if (!("config" in parsed)) throw new Error(`${parsed.problems.join("\n")}\n${text.slice(0, 2000)}`);
        const { config } = parsed;
        expect(new Set(config.types.keys())).toEqual(new Set(["*", ...Object.keys(json.types)]));
        expect(config.rules.map((r) => r.name)).toEqual(json.rules.map((r) => r.name));
        expect(config.enrich).toEqual(JSON.parse(JSON.stringify(json.enrich)));
        const again = analyticsFromText(JSON.stringify(toFile(config)), []);
        if (!("config" in again)) throw new Error(again.problems.join("\n"));
        expect(again.config).toStrictEqual(config);
      }),
      { numRuns: 300 },
    );
  });
});

describe("Settings.analytics", () => {
  const good = JSON.stringify(EXAMPLE);
  const files = (contents: Record<string, string>): ConfigFileSource => ({
    read(path) {
      if (!Object.hasOwn(contents, path)) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return contents[path]!;
    },
  });

  test("absent without KEYFLOW_CONFIG (and without a host that reads files); read from the file it names", () => {
    expect("analytics" in readSettings({})).toBe(false);
    expect("analytics" in readSettings({}, files({}))).toBe(false);
    expect("analytics" in readSettings({ KEYFLOW_CONFIG: "k.json" })).toBe(false);
    const settings = serverSettings({ KEYFLOW_CONFIG: "conf/k.json", KEYFLOW_WINDOWS: "5m" }, files({ "conf/k.json": JSON.stringify({ rules: [rule({ type: "x", window: "5m" })] }) }));
    expect(settings.analytics?.types.get("*")?.windows).toEqual([{ kind: "tumbling", sizeMs: 5 * M }]);
    expect(readSettings({ KEYFLOW_CONFIG: "k.json" }, files({ "k.json": good })).analytics).toStrictEqual(parseAnalyticsConfig(EXAMPLE));
  });

  test("a bad or missing file is a ConfigError naming the variable, the file and the JSON path, with the other bad variables", () => {
    const bad = JSON.stringify({ ...EXAMPLE, rules: [...EXAMPLE.rules, rule({ name: "late", window: "5m" })] });
    const error = (() => {
      try {
        readSettings({ KEYFLOW_CONFIG: "conf/keyflow.config.json", KEYFLOW_EMIT: "sometimes" }, files({ "conf/keyflow.config.json": bad }));
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("no ConfigError");
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.problems).toContain('KEYFLOW_CONFIG="conf/keyflow.config.json": rules[3].window: "5m" is not a window of type "purchase" (its windows: 1m, 1h, 5m/1m, sliding:10m, session:30m)');
    expect(error.problems.some((p) => p.startsWith("KEYFLOW_EMIT="))).toBe(true);
    expect(() => serverSettings({ KEYFLOW_CONFIG: "nope.json" }, files({}))).toThrow(/KEYFLOW_CONFIG="nope.json": cannot be read: ENOENT/);
    expect(() => serverSettings({ KEYFLOW_CONFIG: "k.json" }, files({ "k.json": "{" }))).toThrow(/KEYFLOW_CONFIG="k.json": is not JSON/);
  });

  test("Workers: the bundled file, its problems named after the bundle; KEYFLOW_CONFIG is not read there", () => {
    const bundle = (bundled: unknown): ConfigFileSource => ({ bundled, name: "keyflow-config (bundled)" });
    expect("analytics" in readSettings({}, bundle(undefined))).toBe(false);
    expect(readSettings({}, bundle(EXAMPLE)).analytics?.rules).toHaveLength(3);
    expect(() => readSettings({}, bundle({ types: { purchase: { percentiles: [50, 100] } } }))).toThrow("keyflow-config (bundled): types.purchase.percentiles[1]: must be in (0, 100)");
    expect(() => readSettings({ KEYFLOW_CONFIG: "k.json" }, bundle(undefined))).toThrow(/KEYFLOW_CONFIG="k.json": is not read on Workers/);
  });
});

describe("docs/keyflow.config.example.json", () => {
  test("parses, with the seed pipelines' enrichment and rules", () => {
    const config = parseAnalyticsConfig(JSON.parse(readFileSync(join(ROOT, "docs/keyflow.config.example.json"), "utf8")));
    expect(config.enrich.map((e) => e.set)).toEqual(["high_value", "first_purchase"]);
    expect(config.enrich[0]!.when).toEqual({ path: "value", op: ">", value: 1000 });
    expect(config.rules).toEqual([
      expect.objectContaining({ kind: "threshold", type: "purchase", window: "1m", aggregate: "count", op: ">", threshold: 10 }),
      expect.objectContaining({ kind: "threshold", type: "purchase", window: "1h", aggregate: "sum", op: ">", threshold: 5000 }),
      expect.objectContaining({ kind: "zscore", type: "purchase", window: "1h", aggregate: "sum" }),
    ]);
  });

  test("docs/analytics-config.md shows this very file", () => {
    const doc = readFileSync(join(ROOT, "docs/analytics-config.md"), "utf8");
    const shown = /## Example[\s\S]*?```json\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(shown).toBe(readFileSync(join(ROOT, "docs/keyflow.config.example.json"), "utf8"));
  });
});

describe("the self-hosted server (Bun) and KEYFLOW_CONFIG", () => {
  test("a bad or missing file stops it at start (exit 2) naming the variable, the file and the path; a good one starts", async () => {
    const dir = tempDir("analytics-config");
    try {
      const badPath = join(dir.path, "bad.config.json");
      writeFileSync(badPath, JSON.stringify({ types: { purchase: { windows: ["1m"] } }, rules: [rule({ window: "1h" })] }));
      const env = { ...process.env, HOST: "127.0.0.1", PORT: "0", KEYFLOW_STORAGE: "memory", KEYFLOW_DATA_DIR: dir.path };
      const bad = Bun.spawnSync(BUN_SERVER, { cwd: ROOT, env: { ...env, KEYFLOW_CONFIG: badPath }, timeout: 60_000 });
      const said = bad.stderr.toString() + bad.stdout.toString();
      expect(bad.exitCode).toBe(2);
      expect(said).toContain(`KEYFLOW_CONFIG=${JSON.stringify(badPath)}: rules[0].window: "1h" is not a window of type "purchase" (its windows: 1m)`);
      expect(said).not.toContain("listening");

      const missing = Bun.spawnSync(BUN_SERVER, { cwd: ROOT, env: { ...env, KEYFLOW_CONFIG: join(dir.path, "none.json") }, timeout: 60_000 });
      expect(missing.exitCode).toBe(2);
      expect(missing.stderr.toString()).toContain(`KEYFLOW_CONFIG=${JSON.stringify(join(dir.path, "none.json"))}: cannot be read`);

      const server = await spawnServer(BUN_SERVER, { HOST: "127.0.0.1", PORT: "0", KEYFLOW_STORAGE: "memory", KEYFLOW_DATA_DIR: dir.path, KEYFLOW_CONFIG: "docs/keyflow.config.example.json" });
      try {
        expect(server.output()).toContain("analytics: 2 types, 2 enrichment rules, 3 detection rules");
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
      } finally {
        await server.stop();
      }
    } finally {
      dir.remove();
    }
  }, 120_000);
});

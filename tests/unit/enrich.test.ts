import { describe, expect, test } from "bun:test";
import type { Condition, EnrichRule } from "../../src/actor/analytics.ts";
import { compare, enrich, evaluate, fieldNameProblem, MAX_CONDITION_DEPTH, seenTypesFromJSON, seenTypesToJSON, type SeenTypes } from "../../src/actor/enrich.ts";
import type { Event } from "../../src/actor/event.ts";
import { pathProblem, readPath } from "../../src/actor/paths.ts";

const NONE: SeenTypes = new Set<string>();

function event(overrides: Partial<Event> = {}): Event {
  return {
    id: "e1",
    assigned: false,
    type: "purchase",
    key: "u1",
    ts: 1_000,
    value: 1_500,
    requestId: "req-1",
    properties: {
      amount: 1_500,
      amountText: "1500",
      country: "DE",
      city: "é",
      vip: true,
      none: null,
      items: [{ sku: "a" }, { sku: "b" }],
      nested: { deep: { x: 3 } },
    },
    ...overrides,
  };
}

describe("paths", () => {
  const e = event();

  test("read the event's fields and its properties, own members only", () => {
    expect(readPath(e, "id")).toBe("e1");
    expect(readPath(e, "type")).toBe("purchase");
    expect(readPath(e, "key")).toBe("u1");
    expect(readPath(e, "ts")).toBe(1_000);
    expect(readPath(e, "value")).toBe(1_500);
    expect(readPath(e, "properties.amount")).toBe(1_500);
    expect(readPath(e, "properties.nested.deep.x")).toBe(3);
    expect(readPath(e, "properties.none")).toBeNull();
    expect(readPath(e, "properties.missing")).toBeUndefined();
    expect(readPath(e, "properties.missing.deeper")).toBeUndefined();
    expect(readPath(event({ properties: undefined }), "properties.amount")).toBeUndefined();
  });

  test("arrays by canonical decimal index only", () => {
    expect(readPath(e, "properties.items.0.sku")).toBe("a");
    expect(readPath(e, "properties.items.1.sku")).toBe("b");
    for (const bad of ["2", "01", "-1", "1.0", " 1", "1e0", "length", "at", "constructor"]) {
      expect(readPath(e, `properties.items.${bad}`)).toBeUndefined();
    }
  });

  test("scalars have no members; request facts and unknown heads are not readable", () => {
    for (const path of ["type.length", "ts.toFixed", "id.0", "assigned", "requestId", "properties.country.length", "nope", ""]) {
      expect(readPath(e, path)).toBeUndefined();
    }
  });

  test("never the prototype: hostile segments read nothing, even as own keys", () => {
    const hostile = event({ properties: JSON.parse('{"__proto__":{"x":1},"constructor":{"name":"c"},"prototype":{"y":2},"plain":{}}') });
    expect(Object.hasOwn(hostile.properties!, "__proto__")).toBe(true);
    for (const path of [
      "properties.__proto__",
      "properties.__proto__.x",
      "properties.constructor",
      "properties.constructor.name",
      "properties.prototype.y",
      "properties.plain.toString",
      "properties.plain.hasOwnProperty",
      "properties.plain.constructor.name",
      "properties.plain.__proto__",
      "__proto__",
      "constructor",
      "constructor.name",
      "properties..plain",
      "properties.",
      "enriched.__proto__",
      "enriched.constructor",
    ]) {
      expect(readPath(hostile, path, Object.create(null))).toBeUndefined();
    }
    expect(readPath(e, "properties.toString")).toBeUndefined();
    expect(readPath(e, "properties.items.constructor")).toBeUndefined();
  });

  test("enriched.<name> reads the enriched fields, and nothing without them", () => {
    const fields = Object.assign(Object.create(null), { category: "high_value" });
    expect(readPath(e, "enriched.category", fields)).toBe("high_value");
    expect(readPath(e, "enriched.category")).toBeUndefined();
    expect(readPath(e, "enriched.category.length", fields)).toBeUndefined();
  });

  test("pathProblem names what can never read anything", () => {
    for (const good of ["value", "type", "ts", "id", "key", "properties", "properties.a.b", "properties.items.0", "enriched.category"]) {
      expect(pathProblem(good)).toBeUndefined();
    }
    for (const bad of ["", "nope", "value.x", "properties..a", "properties.__proto__", "properties.a.constructor", "enriched", "enriched.a.b", "requestId"]) {
      expect(pathProblem(bad)).toBeString();
    }
    expect(pathProblem(`properties${".a".repeat(40)}`)).toContain("segments");
  });
});

describe("conditions", () => {
  const e = event();
  const c = (path: string, op: "==" | "!=" | "<" | "<=" | ">" | ">=", value: number | string | boolean): Condition => ({ path, op, value });

  // [condition, expected, why]
  const table: Array<[Condition, boolean, string]> = [
    [c("value", ">", 1_000), true, "numbers compare numerically"],
    [c("properties.amount", ">=", 1_500), true, ">= at equality"],
    [c("properties.amount", ">", 1_500), false, "> at equality"],
    [c("properties.amount", "<", 2_000), true, "<"],
    [c("properties.amount", "<=", 1_499), false, "<="],
    [c("properties.amount", "==", 1_500), true, "=="],
    [c("properties.amount", "!=", 1_500), false, "!= at equality"],
    [c("properties.amount", "!=", 1), true, "!="],
    [c("properties.amountText", ">", 1_000), false, "a numeric string is not a number"],
    [c("properties.amountText", "==", "1500"), true, "string equality"],
    [c("properties.amount", "==", "1500"), false, "a number is not a string"],
    [c("properties.amount", "!=", "1500"), false, "mismatched types: not even !="],
    [c("properties.country", "<", "EE"), true, "strings order by code unit"],
    [c("properties.country", ">", "De"), false, "upper case sorts before lower case"],
    [c("properties.city", ">", "z"), true, "code units, not locale: é (U+00E9) after z"],
    [c("properties.country", "==", "de"), false, "case-sensitive"],
    [c("properties.vip", "==", true), true, "boolean equality"],
    [c("properties.vip", "!=", false), true, "boolean inequality"],
    [c("properties.vip", ">", false), false, "booleans have no order"],
    [c("properties.vip", "==", "true"), false, "a boolean is not a string"],
    [c("properties.vip", "==", 1), false, "a boolean is not a number"],
    [c("properties.missing", "!=", 5), false, "a missing path matches nothing"],
    [{ not: c("properties.missing", "==", 5) }, true, "not: missing or different"],
    [c("properties.none", "==", false), false, "null matches nothing"],
    [c("properties.nested", "!=", "x"), false, "an object matches nothing"],
    [c("properties.items.1.sku", "==", "b"), true, "array element"],
    [c("type", "==", "purchase"), true, "event type"],
    [c("ts", "<", 2_000), true, "event time"],
    [c("id", "==", "e1"), true, "event id"],
    [c("key", "==", "u1"), true, "actor key"],
    [c("requestId", "==", "req-1"), false, "the request id is not readable"],
    [{ all: [] }, true, "all of nothing"],
    [{ any: [] }, false, "any of nothing"],
    [{ all: [c("value", ">", 1_000), c("type", "==", "purchase")] }, true, "all"],
    [{ all: [c("value", ">", 1_000), c("type", "==", "view")] }, false, "all, one fails"],
    [{ any: [c("value", ">", 9_000), c("type", "==", "purchase")] }, true, "any"],
    [{ not: { any: [c("value", ">", 9_000), c("type", "==", "view")] } }, true, "not any"],
    [{ first: "purchase" }, true, "no purchase accepted before"],
  ];

  for (const [condition, expected, why] of table) {
    test(`${why}: ${JSON.stringify(condition)} is ${expected}`, () => {
      expect(evaluate(condition, e, NONE)).toBe(expected);
    });
  }

  test("first reads the actor's seen types: a Set or the per-type counts Map", () => {
    expect(evaluate({ first: "purchase" }, e, new Set(["purchase"]))).toBe(false);
    expect(evaluate({ first: "purchase" }, e, new Map([["purchase", 3]]))).toBe(false);
    expect(evaluate({ first: "signup" }, e, new Map([["purchase", 3]]))).toBe(true);
    expect(evaluate({ not: { first: "signup" } }, e, new Set(["signup"]))).toBe(true);
  });

  test("non-finite numbers compare as nothing", () => {
    expect(compare(Infinity, ">", 1)).toBe(false);
    expect(compare(Number.NaN, "!=", 1)).toBe(false);
    expect(compare(1, "<", Infinity)).toBe(false);
    expect(compare(-0, "==", 0)).toBe(true);
  });

  test("nesting deeper than MAX_CONDITION_DEPTH is refused as a config bug", () => {
    let deep: Condition = { all: [] };
    for (let i = 0; i < MAX_CONDITION_DEPTH; i++) deep = { not: deep };
    expect(() => evaluate(deep, e, NONE)).not.toThrow();
    expect(() => evaluate({ not: deep }, e, NONE)).toThrow(/nest at most/);
  });
});

describe("enrich", () => {
  const highValue: EnrichRule = { set: "category", value: "high_value", when: { path: "properties.amount", op: ">", value: 1_000 } };
  const firstPurchase: EnrichRule = { set: "first_purchase", value: true, when: { first: "purchase" }, types: ["purchase"] };

  test("adds the fields of the rules that hold, to a null-prototype object", () => {
    const fields = enrich([highValue, firstPurchase], event(), NONE)!;
    expect(Object.getPrototypeOf(fields)).toBeNull();
    expect({ ...fields }).toEqual({ category: "high_value", first_purchase: true });
    expect(JSON.stringify(fields)).toBe('{"category":"high_value","first_purchase":true}');
  });

  test("undefined when no rule applies", () => {
    expect(enrich([highValue], event({ properties: { amount: 10 } }), NONE)).toBeUndefined();
    expect(enrich([], event(), NONE)).toBeUndefined();
  });

  test("types limit a rule to those event types; types: [] to none", () => {
    expect(enrich([firstPurchase], event({ type: "view" }), NONE)).toBeUndefined();
    expect(enrich([{ ...highValue, types: [] }], event(), NONE)).toBeUndefined();
    expect(enrich([{ ...highValue, types: ["view", "purchase"] }], event(), NONE)).toEqual(Object.assign(Object.create(null), { category: "high_value" }));
  });

  test("rule order: later rules see earlier fields (enriched.<name>) and overwrite them; earlier rules do not see later ones", () => {
    const rules: EnrichRule[] = [
      { set: "tier", value: "standard", when: { all: [] } },
      { set: "big", value: true, when: { path: "enriched.category", op: "==", value: "high_value" } },
      highValue,
      { set: "tier", value: "gold", when: { path: "enriched.category", op: "==", value: "high_value" } },
    ];
    expect({ ...enrich(rules, event(), NONE) }).toEqual({ tier: "gold", category: "high_value" });
    expect({ ...enrich(rules, event({ properties: { amount: 5 } }), NONE) }).toEqual({ tier: "standard" });
  });

  test("hostile field names are refused as config bugs and pollute nothing", () => {
    for (const name of ["__proto__", "constructor", "prototype", "", "a.b", "1a", "a-b", "x".repeat(65), "enriched.x"]) {
      expect(fieldNameProblem(name)).toBeString();
      expect(() => enrich([{ set: name, value: 1, when: { all: [] } }], event(), NONE)).toThrow(/invariant violated/);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    // Names that exist on Object.prototype are ordinary own fields of the null-prototype result.
    const fields = enrich([{ set: "toString", value: "x", when: { all: [] } }, { set: "hasOwnProperty", value: 1, when: { all: [] } }], event(), NONE)!;
    expect(JSON.parse(JSON.stringify(fields))).toEqual({ toString: "x", hasOwnProperty: 1 });
    expect(fieldNameProblem("first_purchase")).toBeUndefined();
  });

  test("a non-finite enriched value is a config bug", () => {
    expect(() => enrich([{ set: "x", value: Number.NaN, when: { all: [] } }], event(), NONE)).toThrow(/finite/);
  });

  test("first_purchase: once per actor, across a restart from the serialized seen types", () => {
    const rules = [firstPurchase, { set: "first_visit", value: true, when: { first: "view" }, types: ["view"] } satisfies EnrichRule];
    // The actor's loop: enrich an accepted event, then count its type as seen.
    const run = (seen: Set<string>, events: Event[]) =>
      events.map((e) => {
        const fields = enrich(rules, e, seen);
        seen.add(e.type);
        return fields ? { ...fields } : {};
      });
    const stream = ["view", "purchase", "view", "purchase", "purchase", "signup"].map((type, i) => event({ id: `e${i}`, type }));
    const straight = run(new Set(), stream);
    expect(straight).toEqual([{ first_visit: true }, { first_purchase: true }, {}, {}, {}, {}]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const before = new Set<string>();
      const head = run(before, stream.slice(0, cut));
      const restored = seenTypesFromJSON(JSON.parse(JSON.stringify(seenTypesToJSON(before))));
      expect([...head, ...run(restored, stream.slice(cut))]).toEqual(straight);
    }
  });

  test("seen types serialize the same whatever order they were seen in, and bad state is refused", () => {
    expect(seenTypesToJSON(new Set(["view", "purchase", "a"]))).toEqual(seenTypesToJSON(new Set(["a", "purchase", "view"])));
    expect(seenTypesToJSON(new Map([["b", 1], ["a", 2]]).keys())).toEqual(["a", "b"]);
    expect(() => seenTypesFromJSON({ purchase: true })).toThrow();
    expect(() => seenTypesFromJSON([1])).toThrow();
    expect(seenTypesFromJSON(["__proto__"]).has("__proto__")).toBe(true);
  });
});

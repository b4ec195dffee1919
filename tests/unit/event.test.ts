import { describe, expect, test } from "bun:test";
import { DEFAULT_CONFIG, type Config } from "../../src/settings/config.ts";
import { normalizeEvent, parseIsoTimestamp, schemaNormalize, type Event } from "../../src/actor/event.ts";
import type { FieldProblem } from "../../src/actor/event.ts";
import { fakeEnv } from "../support/fake-env.ts";

const NOW = fakeEnv().clock.now(); // 2026-11-21T10:00:00Z

/** An id generator that counts how often it was called. */
function idMaker() {
  let calls = 0;
  const newId = () => `assigned-${++calls}`;
  return { newId, calls: () => calls };
}

function normalize(raw: unknown, config: Config = DEFAULT_CONFIG, now = NOW) {
  return normalizeEvent(raw, config, now, idMaker().newId);
}

/** Normalizes and expects success; returns the event. */
function accept(raw: unknown, config: Config = DEFAULT_CONFIG, now = NOW): Event {
  const result = normalize(raw, config, now);
  if (!result.ok) throw new Error(`expected the event to be accepted, got ${JSON.stringify(result.problems)}`);
  return result.event;
}

/** Normalizes and expects failure; returns the problems. */
function reject(raw: unknown, config: Config = DEFAULT_CONFIG, now = NOW): FieldProblem[] {
  const result = normalize(raw, config, now);
  if (result.ok) throw new Error(`expected the event to be rejected, got ${JSON.stringify(result.event)}`);
  return result.problems;
}

function fields(problems: FieldProblem[]): string[] {
  return problems.map((p) => p.field).sort();
}

/** A minimal valid event with overrides. */
function ev(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { event_id: "e1", event_type: "click", key: "k1", ...overrides };
}

/** properties nested `levels` objects deep: 1 -> {leaf: 1}, 2 -> {a: {leaf: 1}}, ... */
function nested(levels: number): Record<string, unknown> {
  let node: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) node = { a: node };
  return node;
}

describe("normalizeEvent: the example payload", () => {
  test("normalizes to key user123, the given time and value 99.99", () => {
    const raw = JSON.parse(
      '{"event_id":"evt_0001","event_type":"purchase","user_id":"user123","timestamp":"2026-11-21T10:00:00Z","properties":{"amount":99.99,"product":"Widget"}}',
    );
    const ids = idMaker();
    const result = normalizeEvent(raw, DEFAULT_CONFIG, NOW, ids.newId);
    expect(result).toEqual({
      ok: true,
      event: {
        id: "evt_0001",
        assigned: false,
        type: "purchase",
        key: "user123",
        ts: Date.UTC(2026, 10, 21, 10),
        value: 99.99,
        properties: { amount: 99.99, product: "Widget" },
      },
    });
    expect(ids.calls()).toBe(0);
  });
});

describe("normalizeEvent: the whole event", () => {
  test.each([[null], [[]], ["event"], [42], [true], [undefined]])("%p is not an event object", (raw) => {
    expect(reject(raw)).toEqual([{ field: "(event)", message: "must be a JSON object" }]);
  });

  test("a minimal event gets arrival time and no value or properties", () => {
    const event = accept({ event_id: "e1", event_type: "click", key: "k1" });
    expect(event).toEqual({ id: "e1", assigned: false, type: "click", key: "k1", ts: NOW });
    expect("value" in event).toBe(false);
    expect("properties" in event).toBe(false);
  });

  test("unknown top-level fields are ignored", () => {
    expect(accept(ev({ extra: { nested: true } })).key).toBe("k1");
  });
});

describe("normalizeEvent: event_id", () => {
  test("absent event_id: the server assigns one and marks it assigned", () => {
    const ids = idMaker();
    const result = normalizeEvent({ event_type: "click", key: "k" }, DEFAULT_CONFIG, NOW, ids.newId);
    expect(result.ok && result.event).toMatchObject({ id: "assigned-1", assigned: true });
    expect(ids.calls()).toBe(1);
  });

  test("null event_id is treated as absent", () => {
    expect(accept(ev({ event_id: null }))).toMatchObject({ id: "assigned-1", assigned: true });
  });

  test("a given event_id is kept and newId is not called", () => {
    const ids = idMaker();
    const result = normalizeEvent(ev({ event_id: "abc" }), DEFAULT_CONFIG, NOW, ids.newId);
    expect(result.ok && result.event).toMatchObject({ id: "abc", assigned: false });
    expect(ids.calls()).toBe(0);
  });

  test("1 and 128 characters are accepted", () => {
    expect(accept(ev({ event_id: "x" })).id).toBe("x");
    expect(accept(ev({ event_id: "x".repeat(128) })).id).toBe("x".repeat(128));
  });

  test("129 characters are rejected", () => {
    expect(fields(reject(ev({ event_id: "x".repeat(129) })))).toEqual(["event_id"]);
  });

  test("an empty string is rejected, not replaced", () => {
    expect(fields(reject(ev({ event_id: "" })))).toEqual(["event_id"]);
  });

  test("a number is rejected", () => {
    expect(reject(ev({ event_id: 17 }))).toEqual([{ field: "event_id", message: "must be a string" }]);
  });
});

describe("normalizeEvent: event_type", () => {
  test.each(["a", "purchase", "page.view", "ns:thing", "a-b_c.d:e", "0", "x".repeat(64)])("%p is accepted", (type) => {
    expect(accept(ev({ event_type: type })).type).toBe(type);
  });

  test.each(["", "x".repeat(65), "Purchase", "page view", "a/b", "é", "a\n", 5, null])("%p is rejected", (type) => {
    expect(fields(reject(ev({ event_type: type })))).toEqual(["event_type"]);
  });

  test("a missing event_type is reported", () => {
    expect(fields(reject({ key: "k" }))).toEqual(["event_type"]);
  });
});

describe("normalizeEvent: actor key", () => {
  test("user_id is used when key is absent", () => {
    expect(accept({ event_type: "t", user_id: "u1" }).key).toBe("u1");
  });

  test("key wins over user_id", () => {
    expect(accept({ event_type: "t", key: "k1", user_id: "u1" }).key).toBe("k1");
  });

  test("null key falls back to user_id", () => {
    expect(accept({ event_type: "t", key: null, user_id: "u1" }).key).toBe("u1");
  });

  test("integers are stringified", () => {
    expect(accept({ event_type: "t", user_id: 12345 }).key).toBe("12345");
    expect(accept({ event_type: "t", key: 0 }).key).toBe("0");
    expect(accept({ event_type: "t", key: -7 }).key).toBe("-7");
  });

  test("non-integer numbers and other types are rejected", () => {
    expect(fields(reject({ event_type: "t", user_id: 1.5 }))).toEqual(["user_id"]);
    expect(fields(reject({ event_type: "t", key: true }))).toEqual(["key"]);
    expect(fields(reject({ event_type: "t", key: { id: 1 } }))).toEqual(["key"]);
  });

  test("missing key and user_id -> problem on key", () => {
    expect(reject({ event_type: "t" })).toEqual([{ field: "key", message: "is required: give key or user_id" }]);
    expect(fields(reject({ event_type: "t", key: null, user_id: null }))).toEqual(["key"]);
  });

  test("256 characters accepted, 257 rejected", () => {
    expect(accept(ev({ key: "k".repeat(256) })).key).toBe("k".repeat(256));
    expect(fields(reject(ev({ key: "k".repeat(257) })))).toEqual(["key"]);
    expect(fields(reject({ event_type: "t", user_id: "u".repeat(257) }))).toEqual(["user_id"]);
  });

  test("an empty key is rejected", () => {
    expect(fields(reject(ev({ key: "" })))).toEqual(["key"]);
  });

  test.each(["a\u0000b", "tab\there", "line\nbreak", "cr\r", "del\u007f", "\u001b[31m"])("control characters are rejected: %p", (key) => {
    expect(fields(reject(ev({ key })))).toEqual(["key"]);
  });

  test("spaces, punctuation and non-ASCII letters are printable", () => {
    for (const key of ["user 1", "a:b/c?d=e", "ünïcødé", "用户", "😀"]) expect(accept(ev({ key })).key).toBe(key);
  });
});

describe("normalizeEvent: timestamp", () => {
  test("absent or null -> arrival time", () => {
    expect(accept(ev()).ts).toBe(NOW);
    expect(accept(ev({ timestamp: null })).ts).toBe(NOW);
  });

  test("epoch milliseconds are used as is", () => {
    expect(accept(ev({ timestamp: 0 })).ts).toBe(0);
    expect(accept(ev({ timestamp: NOW - 1234 })).ts).toBe(NOW - 1234);
  });

  test("negative epoch milliseconds are rejected", () => {
    expect(fields(reject(ev({ timestamp: -1 })))).toEqual(["timestamp"]);
  });

  test("fractional epoch milliseconds are rejected", () => {
    expect(fields(reject(ev({ timestamp: NOW - 0.5 })))).toEqual(["timestamp"]);
  });

  test("unsafe integers are rejected", () => {
    expect(fields(reject(ev({ timestamp: 2 ** 60 })))).toEqual(["timestamp"]);
  });

  test("epoch milliseconds as a string are not accepted", () => {
    expect(fields(reject(ev({ timestamp: String(NOW) })))).toEqual(["timestamp"]);
  });

  test.each([[true], [{}], [[]]])("other types are rejected: %p", (timestamp) => {
    expect(fields(reject(ev({ timestamp })))).toEqual(["timestamp"]);
  });

  test("an ISO string is parsed", () => {
    expect(accept(ev({ timestamp: "2026-11-21T09:30:00+01:00" })).ts).toBe(Date.UTC(2026, 10, 21, 8, 30));
  });

  test("an unparseable ISO string is reported with its text", () => {
    const problems = reject(ev({ timestamp: "yesterday" }));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.field).toBe("timestamp");
    expect(problems[0]!.message).toContain("yesterday");
  });

  test("an invalid calendar date is rejected", () => {
    expect(fields(reject(ev({ timestamp: "2026-02-30T00:00:00Z" })))).toEqual(["timestamp"]);
  });

  test("a time before 1970 is rejected", () => {
    expect(fields(reject(ev({ timestamp: "1969-12-31T23:59:59Z" })))).toEqual(["timestamp"]);
  });

  test("exactly maxFutureSkewMs in the future is accepted, 1 ms more is rejected", () => {
    expect(DEFAULT_CONFIG.maxFutureSkewMs).toBe(5 * 60_000);
    expect(accept(ev({ timestamp: NOW + 300_000 })).ts).toBe(NOW + 300_000);
    const problems = reject(ev({ timestamp: NOW + 300_001 }));
    expect(fields(problems)).toEqual(["timestamp"]);
    expect(problems[0]!.message).toContain("future");
  });

  test("future skew applies to ISO strings too", () => {
    expect(accept(ev({ timestamp: "2026-11-21T10:05:00Z" })).ts).toBe(NOW + 300_000);
    expect(fields(reject(ev({ timestamp: "2026-11-21T10:05:00.001Z" })))).toEqual(["timestamp"]);
  });

  test("the skew limit comes from the config", () => {
    const strict = { ...DEFAULT_CONFIG, maxFutureSkewMs: 0 };
    expect(accept(ev({ timestamp: NOW }), strict).ts).toBe(NOW);
    expect(fields(reject(ev({ timestamp: NOW + 1 }), strict))).toEqual(["timestamp"]);
  });

  test("the past is unlimited here (lateness is the actor's business)", () => {
    expect(accept(ev({ timestamp: "1970-01-01T00:00:00Z" })).ts).toBe(0);
  });
});

describe("parseIsoTimestamp", () => {
  const TEN = Date.UTC(2026, 10, 21, 10);

  test("Z and no offset both mean UTC", () => {
    expect(parseIsoTimestamp("2026-11-21T10:00:00Z")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21T10:00:00")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21T10:00:00z")).toBe(TEN);
  });

  test("a space or lower-case t may separate date and time", () => {
    expect(parseIsoTimestamp("2026-11-21 10:00:00Z")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21t10:00:00Z")).toBe(TEN);
  });

  test("seconds are optional, a date alone is midnight UTC", () => {
    expect(parseIsoTimestamp("2026-11-21T10:00Z")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21")).toBe(Date.UTC(2026, 10, 21));
  });

  test("positive offsets are subtracted", () => {
    expect(parseIsoTimestamp("2026-11-21T12:00:00+02:00")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21T12:00:00+0200")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21T15:30:00+05:30")).toBe(TEN);
  });

  test("negative offsets are added", () => {
    expect(parseIsoTimestamp("2026-11-21T04:30:00-0530")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21T04:30:00-05:30")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21T00:00:00-10:00")).toBe(TEN);
  });

  test("+00:00 and -00:00 equal Z", () => {
    expect(parseIsoTimestamp("2026-11-21T10:00:00+00:00")).toBe(TEN);
    expect(parseIsoTimestamp("2026-11-21T10:00:00-00:00")).toBe(TEN);
  });

  test("an offset can move the instant across a day boundary", () => {
    expect(parseIsoTimestamp("2026-11-22T01:00:00+03:00")).toBe(Date.UTC(2026, 10, 21, 22));
    expect(parseIsoTimestamp("2026-12-31T23:00:00-02:00")).toBe(Date.UTC(2027, 0, 1, 1));
  });

  test.each([
    ["5", 500],
    ["12", 120],
    ["123", 123],
    ["1234", 123],
    ["12345", 123],
    ["123456", 123],
    ["1234567", 123],
    ["12345678", 123],
    ["999999999", 999],
  ])("fractional seconds .%s -> %d ms (truncated to milliseconds)", (frac, ms) => {
    expect(parseIsoTimestamp(`2026-11-21T10:00:00.${frac}Z`)).toBe(TEN + ms);
  });

  test("fractional seconds with an offset", () => {
    expect(parseIsoTimestamp("2026-11-21T12:00:00.250+02:00")).toBe(TEN + 250);
  });

  test("more than 9 fractional digits are rejected", () => {
    expect(parseIsoTimestamp("2026-11-21T10:00:00.1234567890Z")).toBeUndefined();
  });

  test("leap day only in leap years", () => {
    expect(parseIsoTimestamp("2028-02-29T00:00:00Z")).toBe(Date.UTC(2028, 1, 29));
    expect(parseIsoTimestamp("2026-02-29T00:00:00Z")).toBeUndefined();
    expect(parseIsoTimestamp("2100-02-29T00:00:00Z")).toBeUndefined();
    expect(parseIsoTimestamp("2000-02-29T00:00:00Z")).toBe(Date.UTC(2000, 1, 29));
  });

  test.each([
    "2026-02-30T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-32T00:00:00Z",
    "2026-11-21T24:00:00Z",
    "2026-11-21T10:60:00Z",
    "2026-11-21T10:00:60Z",
  ])("out-of-range fields are rejected: %s", (text) => {
    expect(parseIsoTimestamp(text)).toBeUndefined();
  });

  test.each([
    "",
    "yesterday",
    "2026-11-21T10",
    "2026/11/21",
    "26-11-21",
    "2026-1-21",
    "2026-11-21T10:00:00.Z",
    "2026-11-21T10:00:00+2",
    "2026-11-21T10:00:00 Z",
    " 2026-11-21T10:00:00Z",
    "2026-11-21T10:00:00Z ",
    "2026-11-21T10:00:00Zjunk",
    "1763719200000",
  ])("malformed strings are rejected: %p", (text) => {
    expect(parseIsoTimestamp(text)).toBeUndefined();
  });

  test("extremes of the four-digit years", () => {
    expect(parseIsoTimestamp("1970-01-01T00:00:00Z")).toBe(0);
    expect(parseIsoTimestamp("9999-12-31T23:59:59.999Z")).toBe(Date.UTC(9999, 11, 31, 23, 59, 59, 999));
  });

  test("years below 100 are not shifted into the 1900s", () => {
    expect(parseIsoTimestamp("0075-06-01T00:00:00Z")).toBe(new Date("0075-06-01T00:00:00Z").getTime());
    expect(fields(reject(ev({ timestamp: "0075-06-01T00:00:00Z" })))).toEqual(["timestamp"]);
  });

  test("offsets with minutes above 59 are rejected", () => {
    expect(parseIsoTimestamp("2026-11-21T10:00:00+05:75")).toBeUndefined();
    expect(parseIsoTimestamp("2026-11-21T10:00:00+99:00")).toBeUndefined();
  });
});

describe("normalizeEvent: value and amount", () => {
  test("value is the measure", () => {
    expect(accept(ev({ value: 3.5 })).value).toBe(3.5);
  });

  test("value wins over properties.amount", () => {
    expect(accept(ev({ value: 1, properties: { amount: 99 } })).value).toBe(1);
  });

  test("value 0 wins over properties.amount (0 is not 'absent')", () => {
    expect(accept(ev({ value: 0, properties: { amount: 99 } })).value).toBe(0);
  });

  test("negative values are allowed", () => {
    expect(accept(ev({ value: -12.25 })).value).toBe(-12.25);
  });

  test("properties.amount is used when value is absent or null", () => {
    expect(accept(ev({ properties: { amount: 42 } })).value).toBe(42);
    expect(accept(ev({ value: null, properties: { amount: 42 } })).value).toBe(42);
    expect(accept(ev({ properties: { amount: 0 } })).value).toBe(0);
  });

  test.each([["42"], [null], [true], [[1]], [{ n: 1 }], [Infinity], [NaN]])("a non-numeric amount %p is ignored", (amount) => {
    const event = accept(ev({ properties: { amount } }));
    expect("value" in event).toBe(false);
  });

  test("a nested amount is not the measure", () => {
    expect("value" in accept(ev({ properties: { order: { amount: 5 } } }))).toBe(false);
  });

  test.each([["3"], [true], [[1]], [{}]])("a non-numeric value %p is rejected", (value) => {
    expect(fields(reject(ev({ value })))).toEqual(["value"]);
  });

  test("a non-finite value is rejected", () => {
    expect(fields(reject(ev({ value: Infinity })))).toEqual(["value"]);
    expect(fields(reject(ev({ value: NaN })))).toEqual(["value"]);
  });
});

describe("normalizeEvent: properties", () => {
  test("an object is kept as given", () => {
    const properties = { a: 1, b: [1, "two", null], c: { d: true } };
    expect(accept(ev({ properties })).properties).toEqual(properties);
  });

  test("null properties are treated as absent", () => {
    expect("properties" in accept(ev({ properties: null }))).toBe(false);
  });

  test.each([[[]], ["text"], [5], [true]])("%p is not an object", (properties) => {
    expect(reject(ev({ properties }))).toEqual([{ field: "properties", message: "must be a JSON object" }]);
  });

  test("depth exactly at the default limit (16) is accepted, 17 is rejected", () => {
    expect(DEFAULT_CONFIG.maxPropertiesDepth).toBe(16);
    expect(accept(ev({ properties: nested(16) })).properties).toEqual(nested(16));
    const problems = reject(ev({ properties: nested(17) }));
    expect(fields(problems)).toEqual(["properties"]);
    expect(problems[0]!.message).toContain("16");
  });

  test("depth limit from the config; the top-level object is level 1", () => {
    const config = { ...DEFAULT_CONFIG, maxPropertiesDepth: 2 };
    expect(accept(ev({ properties: { a: { b: 1 } } }), config).properties).toEqual({ a: { b: 1 } });
    expect(fields(reject(ev({ properties: { a: { b: { c: 1 } } } }), config))).toEqual(["properties"]);
  });

  test("arrays count as a level", () => {
    const config = { ...DEFAULT_CONFIG, maxPropertiesDepth: 2 };
    expect(accept(ev({ properties: { a: [1, 2] } }), config).properties).toEqual({ a: [1, 2] });
    expect(fields(reject(ev({ properties: { a: [[1]] } }), config))).toEqual(["properties"]);
    expect(fields(reject(ev({ properties: { a: [{}] } }), config))).toEqual(["properties"]);
  });

  test("scalars do not add a level", () => {
    const config = { ...DEFAULT_CONFIG, maxPropertiesDepth: 1 };
    expect(accept(ev({ properties: { a: 1, b: "x", c: null, d: false } }), config).properties).toBeDefined();
  });

  describe("size", () => {
    const LIMIT = DEFAULT_CONFIG.maxPropertiesBytes;
    // JSON of {s: "<n chars>"} is {"s":"..."} = 8 bytes + the string.
    const withString = (s: string) => ({ s });

    test("the default limit is 32 KiB", () => {
      expect(LIMIT).toBe(32 * 1024);
    });

    test("ASCII: exactly the limit is accepted, one byte more is rejected", () => {
      expect(JSON.stringify(withString("x".repeat(LIMIT - 8))).length).toBe(LIMIT);
      expect(accept(ev({ properties: withString("x".repeat(LIMIT - 8)) })).properties).toBeDefined();
      const problems = reject(ev({ properties: withString("x".repeat(LIMIT - 7)) }));
      expect(fields(problems)).toEqual(["properties"]);
      expect(problems[0]!.message).toContain(String(LIMIT));
    });

    test("two-byte characters are counted as UTF-8 bytes", () => {
      const half = (LIMIT - 8) / 2;
      expect(accept(ev({ properties: withString("é".repeat(half)) })).properties).toBeDefined();
      // 16381 characters: well under the limit in UTF-16 units, 2 bytes over in UTF-8.
      expect(fields(reject(ev({ properties: withString("é".repeat(half + 1)) })))).toEqual(["properties"]);
    });

    test("three-byte characters", () => {
      const bytes = LIMIT - 8; // 32760, divisible by 3
      expect(accept(ev({ properties: withString("€".repeat(bytes / 3)) })).properties).toBeDefined();
      expect(fields(reject(ev({ properties: withString("€".repeat(bytes / 3) + "x") })))).toEqual(["properties"]);
    });

    test("four-byte characters (surrogate pairs)", () => {
      const count = (LIMIT - 8) / 4;
      expect(accept(ev({ properties: withString("😀".repeat(count)) })).properties).toBeDefined();
      expect(fields(reject(ev({ properties: withString("😀".repeat(count) + "x") })))).toEqual(["properties"]);
    });

    test("escapes count at their encoded length", () => {
      const config = { ...DEFAULT_CONFIG, maxPropertiesBytes: 16 };
      // {"s":"\n\n\n\n"} is 16 bytes once encoded; one more newline adds 2 bytes.
      expect(accept(ev({ properties: withString("\n\n\n\n") }), config).properties).toBeDefined();
      expect(fields(reject(ev({ properties: withString("\n\n\n\n\n") }), config))).toEqual(["properties"]);
    });
  });

  describe("forbidden keys", () => {
    test.each(["__proto__", "constructor", "prototype"])("%s at the top level is rejected", (name) => {
      const properties = JSON.parse(`{"ok":1,"${name}":{"x":1}}`);
      const problems = reject(ev({ properties }));
      expect(fields(problems)).toEqual(["properties"]);
      expect(problems[0]!.message).toContain(name);
    });

    test("JSON.parse makes __proto__ an own key (the input the check must catch)", () => {
      const properties = JSON.parse('{"__proto__":{"polluted":true}}');
      expect(Object.keys(properties)).toEqual(["__proto__"]);
      expect(fields(reject(ev({ properties })))).toEqual(["properties"]);
    });

    test("nested in objects", () => {
      const properties = JSON.parse('{"a":{"b":{"constructor":{"prototype":1}}}}');
      expect(reject(ev({ properties }))[0]!.message).toContain("properties.a.b");
    });

    test("nested in arrays", () => {
      const properties = JSON.parse('{"list":[{"ok":1},{"__proto__":{}}]}');
      const problems = reject(ev({ properties }));
      expect(fields(problems)).toEqual(["properties"]);
      expect(problems[0]!.message).toContain("__proto__");
      expect(problems[0]!.message).toContain("list[1]");
    });

    test("in arrays of arrays", () => {
      const properties = JSON.parse('{"m":[[1],[{"prototype":0}]]}');
      expect(fields(reject(ev({ properties })))).toEqual(["properties"]);
    });

    test("forbidden words as values, or in other casings, are fine", () => {
      const properties = JSON.parse('{"name":"__proto__","Constructor":1,"prototypes":["constructor"]}');
      expect(accept(ev({ properties })).properties).toEqual(properties);
    });

    test("the prototype of the accepted properties is not polluted", () => {
      const properties = JSON.parse('{"a":{"__proto__":{"polluted":true}}}');
      reject(ev({ properties }));
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });
});

describe("normalizeEvent: several problems at once", () => {
  test("every bad field is named", () => {
    const problems = reject({
      event_id: "",
      event_type: "Bad Type",
      key: "a\u0000b",
      timestamp: "2026-13-01T00:00:00Z",
      value: "7",
      properties: [],
    });
    expect(fields(problems)).toEqual(["event_id", "event_type", "key", "properties", "timestamp", "value"]);
    for (const p of problems) expect(p.message.length).toBeGreaterThan(0);
  });

  test("a future timestamp and too-deep properties together", () => {
    const config = { ...DEFAULT_CONFIG, maxPropertiesDepth: 1 };
    const problems = reject(ev({ timestamp: NOW + 3_600_000, properties: { a: { b: 1 } } }), config);
    expect(fields(problems)).toEqual(["properties", "timestamp"]);
  });

  test("identical problems are not repeated", () => {
    const problems = reject(ev({ timestamp: -5 }));
    expect(problems).toHaveLength(1);
  });

  test("a missing key is reported along with other problems", () => {
    const problems = reject({ event_type: "BAD" });
    expect(fields(problems)).toEqual(["event_type", "key"]);
  });
});

describe("normalizeEvent: the direct path agrees with the schema", () => {
  test("on 20,000 random events, valid and invalid, both paths give the same result", () => {
    const { SeededRandom } = require("../support/fake-env.ts") as typeof import("../support/fake-env.ts");
    const rng = new SeededRandom(42);
    const now = Date.UTC(2026, 10, 21, 10, 0, 0);
    const pick = (items: unknown[]): unknown => items[rng.int(items.length)];
    // Per field: values the schema accepts, then values it rejects.
    const pools: Record<string, [unknown[], unknown[]]> = {
      event_id: [[undefined, null, "e1", "x".repeat(128), "__proto__", "😀"], ["x".repeat(129), "", 7, {}, "a\ud800", "a\u0000", "\udc00"]],
      event_type: [["purchase", "page_view", "a:b.c-d", "__proto__", "constructor"], [undefined, "Bad", "", "x".repeat(65), 3, "toString"]],
      key: [[undefined, null, "user-1", "ü ключ", "k".repeat(256), 42, "__proto__", "%2F", "...", "😀"], ["", "a\u0001b", "k".repeat(257), 4.5, true, ".", "..", "x\ud800", "\u0000"]],
      user_id: [[undefined, null, "u1", 12, "constructor"], ["", -1.5, [], "line\nbreak", "..", "\udfff"]],
      timestamp: [[undefined, null, now - 5, now + 299_999, "2026-11-21T09:00:00Z", "2026-11-21", "2026-11-21 09:00:00.123+02:00"], [now + 300_001, -1, 1.5, 2 ** 53, "1960-01-01T00:00:00Z", "nope", "2026-02-30", true]],
      value: [[undefined, null, 0, -2.5, 1e308], ["3", {}, false]],
      properties: [
        [undefined, null, {}, { amount: 12.5 }, { amount: "12" }, { nested: { a: [1, 2] } }, { "😀": ["ok"] }, { toString: "x" }],
        [[], "text", { constructor: 1 }, { big: "x".repeat(40_000) }, { note: "a\u0000" }, { ["k\ud800"]: 1 }, { deep: [["\udc00"]] }],
      ],
      extra: [[undefined, "ignored"], []],
    };
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      const raw: Record<string, unknown> = {};
      for (const [field, [good, bad]] of Object.entries(pools)) {
        const v = bad.length && rng.chance(0.05) ? pick(bad) : pick(good);
        if (v !== undefined || rng.chance(0.3)) raw[field] = v;
      }
      let n = 0;
      const ids = () => `assigned-${n++}`;
      const fast = normalizeEvent(raw, DEFAULT_CONFIG, now, ids);
      n = 0;
      const slow = schemaNormalize(raw, DEFAULT_CONFIG, now, ids);
      expect({ raw, result: fast }).toEqual({ raw, result: slow });
      if (fast.ok) valid++;
    }
    // Both kinds of input were exercised, and keys are required, so some "valid" picks still fail.
    expect(valid).toBeGreaterThan(5_000);
    expect(valid).toBeLessThan(17_000);
  });
});

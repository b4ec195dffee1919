/**
 * The generated workload of the hostile-input fuzz test (issue 9): valid events and hostile ones,
 * batches, bodies, content types, every method on every route, each tagged with what the rules say
 * the server must do with it.
 *
 * The rules (README "Events"; issue 9):
 * - event_type: a string matching ^[a-z0-9_.:-]{1,64}$ ("__proto__", "constructor", "prototype" are valid).
 * - event_id: absent/null (server assigns) or a string of 1-128 characters, well-formed, no control characters.
 * - key, else user_id: a string of 1-256 characters, well-formed, no control characters, not "." or "..",
 *   or an integer (its decimal string). Every accepted key is readable at /v1/actors/<encodeURIComponent(key)>.
 * - timestamp: ISO-8601 or non-negative safe-integer epoch ms, at most 5 minutes ahead; default arrival time.
 * - value: finite number or absent/null. The measure is value, else properties.amount if a finite number.
 * - properties: absent/null or an object, at most 16 levels, 32 KiB encoded, no key __proto__/constructor/prototype
 *   at any depth, every string (keys and values) well-formed and without NUL.
 *
 * Everything the server keeps per key is a function of (key, event_id): a resend of an event is the
 * same event in another spelling (key as a number or a string, the timestamp in another zone, the
 * measure as value or as properties.amount, other properties, ignored extra members). So the
 * expected state does not depend on which send of an event arrived first.
 */
import fc from "fast-check";
import { deepArray, deepObject, isWellFormed, JObject, obj, Raw, serialize, show, type J } from "./json.ts";
import { hash32, Rng } from "./rng.ts";

export const MINUTE = 60_000;
export const EVENT_TYPE = /^[a-z0-9_.:-]{1,64}$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Marks bytes that are not UTF-8 in a body: U+E000 becomes FF FE, U+E001 becomes ED A0 80 (a UTF-8-encoded lone surrogate). */
export const BAD_BYTES = "\uE000";
export const CESU_SURROGATE = "\uE001";
/** What a WHATWG UTF-8 decoder makes of those bytes. */
export const decodedMarkers = (s: string) => s.replaceAll(BAD_BYTES, "\uFFFD\uFFFD").replaceAll(CESU_SURROGATE, "\uFFFD\uFFFD\uFFFD");

export function encodeBody(text: string): Uint8Array {
  if (!text.includes(BAD_BYTES) && !text.includes(CESU_SURROGATE)) return new TextEncoder().encode(text);
  const parts: number[] = [];
  const enc = new TextEncoder();
  for (const piece of text.split(/([\uE000\uE001])/)) {
    if (piece === BAD_BYTES) parts.push(0xff, 0xfe);
    else if (piece === CESU_SURROGATE) parts.push(0xed, 0xa0, 0x80);
    else for (const b of enc.encode(piece)) parts.push(b);
  }
  return Uint8Array.from(parts);
}

// ---------------------------------------------------------------------------------------------
// Time: every explicit timestamp is in one of a few fixed minutes, so no event is ever late.

export interface Times {
  now0: number;
  /** Three minutes about 25 minutes ago (hosts run with 1h allowed lateness and idle timeout). */
  past: readonly number[];
  /** A minute 2.5-3.5 minutes ahead (the limit is 5 minutes). */
  future: number;
  /** Window starts whose events all carry explicit timestamps: compared window by window. */
  fixed: ReadonlySet<number>;
}

export function makeTimes(now = Date.now()): Times {
  const m0 = Math.floor((now - 25 * MINUTE) / MINUTE) * MINUTE;
  const past = [m0, m0 + MINUTE, m0 + 2 * MINUTE];
  const future = Math.floor((now + 3.5 * MINUTE) / MINUTE) * MINUTE;
  return { now0: now, past, future, fixed: new Set([0, ...past, future]) };
}

// ---------------------------------------------------------------------------------------------
// Pools: keys, event ids, types, measures.

/** What the server must keep for an acknowledged event. ts "arrival": no timestamp, so arrival time. */
export interface ModelEvent {
  key: string;
  id: string | null;
  type: string;
  ts: number | "arrival";
  measure?: number;
}

export interface Num {
  j: J;
  value: number;
  label?: string;
}

export interface KeyInfo {
  key: string;
  /** How it may be sent: the string, and for integer keys the number too. */
  forms: J[];
  cls: "strict" | "epoch";
  label?: string;
  hot: boolean;
}

export interface Template {
  key: KeyInfo;
  id: string;
  type: string;
  ts: number | "arrival";
  measure?: Num;
  labels: string[];
}

const SPECIAL_KEYS: string[] = [
  "__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "then", "valueOf",
  "%2F", "%00", "%", "%zz", "%2e%2e", "a/b", "/", "?x", "#", "a b", " ", "...", ".a", "a.", "windows",
  "ü", "日本語", "😀", "\u0085", "\u2028", "\ufeff", "\u200b", "\u202e", "\\", "'", '"', "<script>",
  "x".repeat(256), "😀".repeat(128), "é".repeat(256),
];
const INTEGER_KEYS: Array<[string, number]> = [["0", 0], ["42", 42], ["-7", -7], ["9007199254740991", 9007199254740991]];
const SPECIAL_IDS = [
  "__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "then", ".", "..", "%2F", "%00", "a/b", " ",
  "😀", "\u0085", "\u2028", "x".repeat(128), "é".repeat(128),
];
const COMMON_TYPES = ["purchase", "page_view", "signup", "a"];
const SPECIAL_TYPES = ["__proto__", "constructor", "prototype", "then", "valueof", "0", ".", ":", "-", "_", "x".repeat(64), "a.b:c-d_e"];
export const HOSTILE_VALID_TYPES = ["__proto__", "constructor", "prototype", "then"];

const num = (text: string, label?: string): Num => {
  const value = JSON.parse(text) as number;
  return { j: new Raw(text, value), value, label };
};
const SPECIAL_NUMS: Num[] = [
  num("-0", "value -0"),
  num("-0.0", "value -0.0"),
  num("1.0", "value 1.0"),
  num("1E+2", "value 1E+2"),
  num("123456789012345678901234567890", "value 123456789012345678901234567890"),
  num("9007199254740993", "value 9007199254740993"),
  num("1e21", "value 1e21"),
  num("5e-324", "value 5e-324"),
  num("1e300", "value 1e300"),
  num("-1e300", "value -1e300"),
  num("0.1"),
];

export function isValidKeyString(s: string): boolean {
  return s.length >= 1 && [...s].length <= 256 && s.length <= 256 && isWellFormed(s) && !CONTROL.test(s) && s !== "." && s !== "..";
}

const label = (what: string, s: string) => `${what} "${show(s, 24)}"`;

export interface Pool {
  times: Times;
  keys: KeyInfo[];
  hot: KeyInfo[];
  cold: KeyInfo[];
  epoch: KeyInfo;
  specials: Map<string, KeyInfo>;
  templates: Map<string, Template[]>;
  /** Keys only ever sent with invalid events: no actor may exist for them. */
  rejectKeys: string[];
  /** Keys never sent at all. */
  ghostKeys: string[];
}

const numArb: fc.Arbitrary<Num> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -1000, max: 1000 }).map((v) => ({ j: v, value: v })) },
  { weight: 2, arbitrary: fc.integer({ min: -4000, max: 4000 }).map((v) => ({ j: v / 4, value: v / 4 })) },
  { weight: 2, arbitrary: fc.constantFrom(...SPECIAL_NUMS) },
);
const typeArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...COMMON_TYPES) }, { weight: 2, arbitrary: fc.constantFrom(...SPECIAL_TYPES) });

function contentLabels(type: string, ts: number | "arrival", measure: Num | undefined, k: KeyInfo, times: Times): string[] {
  const labels: string[] = [];
  if (SPECIAL_TYPES.includes(type)) labels.push(`event_type "${type.length > 20 ? `${type.slice(0, 8)}…(${type.length})` : type}"`);
  if (measure?.label) labels.push(measure.label);
  if (ts === "arrival") labels.push("no timestamp (arrival time)");
  else if (ts >= times.future) labels.push("timestamp 3 minutes ahead");
  else if (k.cls === "epoch") labels.push(`timestamp ${ts} (1970)`);
  return labels;
}

export function buildPool(seed: number, times: Times, profile: "full" | "small"): Pool {
  const keys: KeyInfo[] = [];
  const add = (key: string, forms: J[], lbl: string | undefined, hot: boolean, cls: KeyInfo["cls"] = "strict") => {
    if (!isValidKeyString(key)) throw new Error(`pool key ${show(key)} is not valid`);
    keys.push({ key, forms, cls, label: lbl, hot });
  };
  const normal = profile === "full" ? 50 : 12;
  for (let i = 0; i < normal; i++) add(`k${i}`, [`k${i}`], undefined, i < (profile === "full" ? 8 : 4));
  for (const s of SPECIAL_KEYS) add(s, [s], label("key", s), ["__proto__", "constructor", "prototype", "%2F", "toString"].includes(s));
  for (const [s, n] of INTEGER_KEYS) add(s, [s, n], `key integer ${s}`, s === "42");
  const randomKeys = fc.sample(
    fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }).filter((s) => isValidKeyString(s) && !/[\uE000\uE001]/.test(s)),
    { seed: seed ^ 0x5eed, numRuns: profile === "full" ? 20 : 6 },
  );
  for (const s of new Set(randomKeys)) if (!keys.some((k) => k.key === s)) add(s, [s], label("key", s), false);
  add("epoch0", ["epoch0"], "key with epoch-0 timestamps", false, "epoch");
  const epoch = keys.at(-1)!;

  const templates = new Map<string, Template[]>();
  keys.forEach((k, index) => {
    const count = k.cls === "epoch" ? 12 : k.hot ? (profile === "full" ? 50 : 25) : 10;
    const ids: string[] = [];
    const specialIds = k.hot ? SPECIAL_IDS : [SPECIAL_IDS[index % SPECIAL_IDS.length]!, SPECIAL_IDS[(index * 7 + 3) % SPECIAL_IDS.length]!];
    if (["__proto__", "constructor", "prototype", "toString"].includes(k.key)) ids.push(k.key);
    for (const id of specialIds) if (!ids.includes(id)) ids.push(id);
    for (let i = 0; ids.length < count; i++) ids.push(`e${i}`);
    const tsArb: fc.Arbitrary<number | "arrival"> =
      k.cls === "epoch"
        ? fc.constantFrom(0, 1, 30_000, 59_999)
        : fc.oneof(
            { weight: 12, arbitrary: fc.tuple(fc.constantFrom(...times.past), fc.integer({ min: 0, max: MINUTE - 1 })).map(([m, o]) => m + o) },
            { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...times.past), fc.integer({ min: 0, max: 59 })).map(([m, s]) => m + s * 1000) },
            { weight: 2, arbitrary: fc.integer({ min: 0, max: MINUTE - 1 }).map((o) => times.future + o) },
            { weight: 3, arbitrary: fc.constant("arrival" as const) },
          );
    const contents = fc.sample(fc.record({ type: typeArb, ts: tsArb, measure: fc.option(numArb, { nil: undefined, freq: 4 }) }), {
      seed: (seed ^ hash32(k.key)) >>> 0,
      numRuns: count,
    });
    const list = ids.map((id, i): Template => {
      let { type, ts, measure } = contents[i]!;
      if (i === 0 && id === k.key) {
        // The event whose every string field is the key itself ("__proto__", "constructor", ...).
        type = EVENT_TYPE.test(k.key) ? k.key : "a";
        ts = times.past[1]! + 1000;
        measure = { j: 1, value: 1 };
      }
      const labels: string[] = [];
      if (k.label) labels.push(k.label);
      if (SPECIAL_IDS.includes(id)) labels.push(label("event_id", id));
      labels.push(...contentLabels(type, ts, measure, k, times));
      return { key: k, id, type, ts, measure, labels };
    });
    templates.set(k.key, list);
  });
  const hot = keys.filter((k) => k.hot && k.cls === "strict");
  const cold = keys.filter((k) => !k.hot && k.cls === "strict");
  return {
    times,
    keys,
    hot,
    cold,
    epoch,
    specials: new Map(keys.filter((k) => k.label).map((k) => [k.key, k])),
    templates,
    rejectKeys: Array.from({ length: 12 }, (_, i) => `rej${i}`),
    ghostKeys: ["ghost0", "ghost-__proto__", "__proto__x", "constructorx", "%2Fx", "ghost ü"],
  };
}

// ---------------------------------------------------------------------------------------------
// Mutations: what makes an event invalid (or of uncertain validity), and which field it breaks.

export type Field = "event_id" | "event_type" | "key" | "timestamp" | "value" | "properties";

export interface Mutation {
  /** The field the rules say is wrong; "key" means the actor field the send used (key or user_id). */
  field: Field | "user_id_side" | "top" | "dup";
  op: "set" | "remove" | "missing-key" | "props-set" | "props-add" | "top-add" | "dup-member";
  value?: J;
  /** props-add: where to add (object path under properties) and the member name. */
  path?: string[];
  name?: string;
  label: string;
  verdict: "invalid" | "uncertain";
  /** The timestamp the event has if the server takes it anyway (undefined: not known). */
  keepsTs: boolean;
}

const m = (field: Mutation["field"], value: J, lbl: string, extra: Partial<Mutation> = {}): Mutation => ({
  field,
  op: "set",
  value,
  label: lbl,
  verdict: "invalid",
  keepsTs: field !== "timestamp",
  ...extra,
});

function invalidMutations(times: Times): Mutation[] {
  const list: Mutation[] = [];
  const idBad: Array<[J, string]> = [
    ["", "empty"], ["x".repeat(129), "129 characters"], ["\ud800", "lone high surrogate"], ["\udc00", "lone low surrogate"],
    ["a\ud800", "trailing lone surrogate"], ["\udc00\ud800", "reversed surrogate pair"], ["a\u0000b", "NUL"], ["\u0001", "\\u0001"],
    ["line\nbreak", "newline"], ["tab\t", "tab"], ["\u001f", "\\u001f"], ["\u007f", "DEL"], [5, "a number"],
    [new Raw("1e309"), "1e309"], [new Raw("-0"), "-0"], [true, "true"], [obj({}), "an object"], [["e1"], "an array"],
  ];
  for (const [v, what] of idBad) list.push(m("event_id", v, `event_id ${what}`));
  const typeBad: Array<[J, string]> = [
    ["toString", '"toString"'], ["Purchase", "upper case"], ["", "empty"], ["x".repeat(65), "65 characters"], ["a b", "space"],
    ["a/b", "slash"], ["pürchase", "non-ASCII"], ["purchase\n", "trailing newline"], ["a\u0000", "NUL"], ["\ud800", "lone surrogate"],
    ["__PROTO__", '"__PROTO__"'], ["hasOwnProperty", '"hasOwnProperty"'], ["valueOf", '"valueOf"'], ["constructor\u200b", "zero-width space"],
    [1, "a number"], [null, "null"], [obj({}), "an object"], [[], "an array"],
  ];
  for (const [v, what] of typeBad) list.push(m("event_type", v, `event_type ${what}`));
  list.push({ ...m("event_type", null, "event_type missing"), op: "remove" });
  const keyBad: Array<[J, string]> = [
    ["", "empty"], [".", '"."'], ["..", '".."'], ["x".repeat(257), "257 characters"], ["\ud800", "lone high surrogate"],
    ["a\udc00", "lone low surrogate"], ["\u0000", "NUL"], ["a\nb", "newline"], ["\u007f", "DEL"], ["\t", "tab"], ["\u001b[31m", "ESC"],
    [new Raw("1.5", 1.5), "1.5"], [new Raw("1e309"), "1e309"], [new Raw("-1e309"), "-1e309"], [true, "true"], [obj({}), "an object"], [["k"], "an array"],
  ];
  for (const [v, what] of keyBad) list.push(m("key", v, `key ${what}`));
  list.push({ ...m("key", null, "key and user_id missing"), op: "missing-key" });
  const iso = (t: number) => new Date(t).toISOString();
  const tsBad: Array<[J, string]> = [
    ["yesterday", '"yesterday"'], ["", "empty"], ["2026-13-01T00:00:00Z", "month 13"], ["2021-02-30T00:00:00Z", "February 30"],
    ["2021-01-01T25:00:00Z", "hour 25"], [iso(times.now0 + 10 * MINUTE), "10 minutes ahead (ISO)"], [times.now0 + 3_600_000, "1 hour ahead (epoch)"],
    [new Raw("1e309"), "1e309"], [new Raw("99999999999999999999"), "99999999999999999999"], [new Raw("9007199254740992"), "2^53"],
    [-1, "-1"], [1.5, "1.5"], [true, "true"], [obj({}), "an object"], [[], "an array"], ["__proto__", '"__proto__"'], ["toString", '"toString"'],
    ["\ud800", "lone surrogate"], [`${iso(times.past[0]!)}\u0000`, "trailing NUL"], [String(times.past[0]), "epoch digits as a string"],
  ];
  for (const [v, what] of tsBad) list.push(m("timestamp", v, `timestamp ${what}`));
  const valueBad: Array<[J, string]> = [
    ["12", '"12"'], ["__proto__", '"__proto__"'], ["NaN", '"NaN"'], ["Infinity", '"Infinity"'], [true, "true"], [obj({}), "an object"],
    [[1], "an array"], [new Raw("1e309"), "1e309"], [new Raw("-1e309"), "-1e309"],
  ];
  for (const [v, what] of valueBad) list.push(m("value", v, `value ${what}`));
  const propsSet: Array<[J, string]> = [
    ["__proto__", 'a string "__proto__"'], [5, "a number"], [true, "true"], [[], "an array"], [[obj({ a: 1 })], "an array of objects"],
    [deepObject(20), "20 levels deep"], [deepObject(5000), "5000 levels deep"], [obj({ blob: "x".repeat(40_000) }), "40 KB"],
    [obj({ blob: "日".repeat(12_000) }), "12,000 CJK characters (36 KB UTF-8)"],
  ];
  for (const [v, what] of propsSet) list.push({ ...m("properties", v, `properties ${what}`), op: "props-set" });
  const propsAdd: Array<[string[], string, J, string]> = [
    [[], "__proto__", obj({ polluted: true }), 'key "__proto__"'],
    [["a", "b"], "__proto__", obj({ polluted: true }), 'key "__proto__" 3 levels down'],
    [[], "list", [obj({ __x: 1 }), obj([["__proto__", obj({ polluted: true })]])], 'key "__proto__" inside an array'],
    [[], "constructor", obj({ prototype: obj({ polluted: true }) }), 'key "constructor"'],
    [["a"], "prototype", obj({ polluted: true }), 'key "prototype" 2 levels down'],
    [[], "note", "a\u0000b", "NUL in a string"],
    [[], "k\u0000", 1, "NUL in a key"],
    [["a", "b"], "note", ["x", "\u0000"], "NUL 3 levels down"],
    [[], "note", "\ud800", "lone surrogate in a string"],
    [[], "\udc00x", 1, "lone surrogate in a key"],
    [["a"], "list", ["ok", "x\ud83d"], "lone surrogate in a nested array"],
    [[], "deep", deepObject(20), "21 levels deep"],
    [[], "deep", deepArray(30), "31 levels deep (arrays)"],
    [[], "blob", "x".repeat(40_000), "40 KB"],
  ];
  for (const [path, name, v, what] of propsAdd) list.push({ ...m("properties", v, `properties ${what}`), op: "props-add", path, name });
  return list;
}

function uncertainMutations(): Mutation[] {
  const u = (field: Mutation["field"], op: Mutation["op"], value: J | undefined, lbl: string, extra: Partial<Mutation> = {}): Mutation => ({
    field,
    op,
    value,
    label: lbl,
    verdict: "uncertain",
    keepsTs: true,
    ...extra,
  });
  return [
    u("user_id_side", "set", "", "user_id empty while key is valid"),
    u("user_id_side", "set", "\u0000", "user_id NUL while key is valid"),
    u("user_id_side", "set", ".", 'user_id "." while key is valid'),
    u("user_id_side", "set", new Raw("5.5", 5.5), "user_id 5.5 while key is valid"),
    u("top", "top-add", deepObject(50), "an ignored member 50 levels deep", { name: "extra" }),
    u("top", "top-add", deepArray(3000), "an ignored member 3000 levels deep", { name: "extra" }),
    u("dup", "dup-member", "BAD TYPE", "event_type given twice (last valid)", { name: "event_type" }),
    u("dup", "dup-member", "", "key given twice (last valid)", { name: "key" }),
    u("properties", "props-add", `a${BAD_BYTES}b`, "bytes FF FE (not UTF-8) in a properties string", { path: [], name: "bytes" }),
  ];
}

/** Timestamp spellings whose acceptance the rules leave open (same instant if accepted). */
const UNCERTAIN_TS_FORMATS = ["lower case t and z", "space instead of T", "offset +0000 without colon", "9 fraction digits"];

export function tsForms(ts: number, r: Rng): { j: J; label?: string } {
  const iso = new Date(ts).toISOString();
  const shift = (minutes: number) => {
    const local = new Date(ts + minutes * 60_000).toISOString().slice(0, 23);
    const sign = minutes < 0 ? "-" : "+";
    const abs = Math.abs(minutes);
    return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  };
  const forms: Array<{ j: J; label?: string }> = [
    { j: iso },
    { j: iso },
    { j: ts },
    { j: ts },
    { j: shift(330), label: "timestamp with offset +05:30" },
    { j: shift(-480), label: "timestamp with offset -08:00" },
    { j: shift(0).replace("Z", ""), label: "timestamp with +00:00" },
    { j: iso.slice(0, -1), label: "timestamp without zone (UTC)" },
    { j: new Raw(`${ts}.0`, ts), label: "epoch ms written with .0" },
  ];
  if (ts % 1000 === 0) forms.push({ j: `${iso.slice(0, 19)}Z`, label: "timestamp without fraction" });
  if (ts === 0) forms.push({ j: new Raw("-0", 0), label: "timestamp -0" }, { j: new Raw("0.0", 0), label: "timestamp 0.0" });
  return r.pick(forms);
}

function uncertainTs(ts: number, which: string): J {
  const iso = new Date(ts).toISOString();
  switch (which) {
    case "lower case t and z":
      return iso.toLowerCase();
    case "space instead of T":
      return iso.replace("T", " ");
    case "offset +0000 without colon":
      return `${iso.slice(0, -1)}+0000`;
    default:
      return `${iso.slice(0, -1)}000000Z`;
  }
}

// ---------------------------------------------------------------------------------------------
// Items: one event of a request, as a recipe (so a failure can be shrunk) and as text.

export type ItemRecipe =
  | { t: "tmpl"; key: string; ti: number; choice: number; muts: Mutation[]; freshId?: string; tsFormat?: string; rejKey?: string }
  | { t: "anon"; key: string; type: string; ts: number | "arrival"; measure?: Num; choice: number; muts: Mutation[]; keyOverride?: J; labels?: string[] }
  | { t: "nonobject"; value: J; label: string }
  | { t: "raw"; draft: J; bad: string[][]; label: string }
  | { t: "malformed"; text: string; label: string };

export interface ItemSpec {
  recipe: ItemRecipe;
  text: string;
  verdict: "valid" | "invalid" | "uncertain";
  /** Fields a rejection must name: each entry lists the names that count. */
  bad: string[][];
  /** The label of the mutation behind each entry of bad. */
  badLabels: string[];
  /** Field names a rejection may name. */
  allowed: string[];
  labels: string[];
  /** What the server keeps if it takes the event (undefined: not predictable). */
  ev?: ModelEvent;
  /** The actor key this item was sent for, where it is a string (for the phantom-actor check). */
  keyString?: string;
  malformed?: boolean;
  /** Error codes a rejection may carry. */
  rejectCodes: string[];
  /** For an event of uncertain validity: what makes it so. */
  openLabel?: string;
}

const EXTRAS: Array<[string, J, string]> = [
  ["__proto__", obj({ event_type: "evil", key: "evil", polluted: true }), 'ignored member "__proto__"'],
  ["constructor", obj({ prototype: obj({ polluted: true }) }), 'ignored member "constructor"'],
  ["prototype", obj({ polluted: 1 }), 'ignored member "prototype"'],
  ["toString", "x", 'ignored member "toString"'],
  ["valueOf", 5, 'ignored member "valueOf"'],
  ["hasOwnProperty", "x", 'ignored member "hasOwnProperty"'],
  ["then", "x", 'ignored member "then"'],
  ["Key", "other", 'ignored member "Key"'],
  ["userId", "nobody", 'ignored member "userId"'],
  ["eventType", "X", 'ignored member "eventType"'],
  ["extra", [1, 2, 3], "ignored member extra"],
];

const PROP_KEYS = ["a", "b", "toString", "valueOf", "hasOwnProperty", "__proto", "constructor_", "Prototype", "", "ü", "😀", "amount_", "x y", "then", "length"];

/** Random valid properties content (no __proto__/constructor/prototype keys, no NUL, well-formed). */
function randomProps(r: Rng, depth = 0): JObject {
  const o = new JObject();
  const n = r.int(depth === 0 ? 5 : 3);
  for (let i = 0; i < n; i++) {
    const k = r.chance(0.7) ? r.pick(PROP_KEYS) : randomString(r, 6);
    if (depth === 0 && k === "amount") continue;
    o.set(k, randomValue(r, depth + 1));
  }
  return o;
}

function randomValue(r: Rng, depth: number): J {
  const c = r.int(depth > 3 ? 5 : 7);
  switch (c) {
    case 0:
      return r.int(2000) - 1000;
    case 1:
      return randomString(r, 10);
    case 2:
      return r.chance(0.5);
    case 3:
      return null;
    case 4:
      return r.pick(SPECIAL_NUMS).j;
    case 5:
      return randomProps(r, depth);
    default:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
  }
}

const STRING_CHARS = ["a", "b", "Z", "0", " ", "\u0001", "\u001f", "\u007f", "\u0085", "\u2028", "\ufeff", "\u200b", "é", "日", "😀", "\\", '"', "/", "<", "%"];
function randomString(r: Rng, max: number): string {
  let s = "";
  for (let i = r.int(max + 1); i > 0; i--) s += r.pick(STRING_CHARS);
  return s;
}

function specialProps(r: Rng): { props: JObject; label: string } {
  switch (r.int(7)) {
    case 0:
      return { props: obj({ blob: "x".repeat(31_000) }), label: "properties 31 KB" };
    case 1:
      return { props: obj({ blob: "日".repeat(10_000) }), label: "properties 10,000 CJK characters (30 KB UTF-8)" };
    case 2:
      return { props: new JObject([["d", deepObject(11)]]), label: "properties 12 levels deep" };
    case 3:
      return { props: obj({ ctl: "\u0001\u0002\u001f\u007f", "\u0001": 1 }), label: "properties with control characters (not NUL)" };
    case 4:
      return { props: obj({ toString: "x", valueOf: 1, hasOwnProperty: null, isPrototypeOf: [], __defineGetter__: obj({}) }), label: "properties with Object.prototype method names" };
    case 5:
      return { props: new JObject(), label: "properties {}" };
    default:
      return { props: obj({ s: "😀\u{10ffff}\ufffe" }), label: "properties with astral and noncharacters" };
  }
}

/** Converts plain JS values (from JSON.parse) into J. */
function fromPlain(v: unknown): J {
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  if (Array.isArray(v)) return v.map(fromPlain);
  return new JObject(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, fromPlain(x)]));
}

function numberOf(v: J | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (v instanceof Raw && v.value !== undefined) return v.value;
  return undefined;
}

/** The event the server keeps for a draft it takes: per the rules, from the draft alone (ts from the caller). */
export function deriveEvent(draft: J, ts: number | "arrival" | undefined): ModelEvent | undefined {
  if (!(draft instanceof JObject) || ts === undefined) return undefined;
  const type = draft.get("event_type");
  if (typeof type !== "string") return undefined;
  const idv = draft.get("event_id");
  const id = typeof idv === "string" ? decodedMarkers(idv) : idv === null || idv === undefined ? null : undefined;
  if (id === undefined) return undefined;
  let kv = draft.get("key");
  if (kv === null || kv === undefined) kv = draft.get("user_id");
  let key: string | undefined;
  if (typeof kv === "string") key = decodedMarkers(kv);
  else {
    const n = numberOf(kv ?? undefined);
    if (n !== undefined && Number.isInteger(n)) key = String(n);
  }
  if (key === undefined) return undefined;
  const v = draft.get("value");
  let measure: number | undefined;
  if (v !== null && v !== undefined) {
    measure = numberOf(v);
    if (measure === undefined || !Number.isFinite(measure)) return undefined;
  } else {
    const props = draft.get("properties");
    if (props instanceof JObject) {
      const amount = numberOf(props.get("amount"));
      if (amount !== undefined && Number.isFinite(amount)) measure = amount;
    }
  }
  const ev: ModelEvent = { key, id, type, ts };
  if (measure !== undefined) ev.measure = measure;
  return ev;
}

export interface Simplify {
  /** Canonical spelling: key member only, ISO timestamp, value as a plain number, no properties, no extras. */
  plain?: boolean;
  key?: boolean;
  id?: boolean;
  type?: boolean;
  measure?: boolean;
  /** An explicit timestamp in the first past minute instead of the template's. */
  ts?: boolean;
}

function applyMutation(draft: JObject, mu: Mutation, actorField: "key" | "user_id"): void {
  switch (mu.op) {
    case "set":
      if (mu.field === "key") draft.set(actorField, mu.value ?? null);
      else if (mu.field === "user_id_side") draft.set("user_id", mu.value ?? null);
      else draft.set(mu.field, mu.value ?? null);
      return;
    case "remove":
      draft.delete(mu.field);
      return;
    case "missing-key":
      draft.delete("key").delete("user_id");
      return;
    case "props-set":
      draft.set("properties", mu.value ?? null);
      return;
    case "props-add": {
      let props = draft.get("properties");
      if (!(props instanceof JObject)) {
        props = new JObject();
        draft.set("properties", props);
      } else {
        props = cloneDeepObj(props);
        draft.set("properties", props);
      }
      let at = props as JObject;
      for (const seg of mu.path ?? []) {
        const next = new JObject();
        at.set(seg, next);
        at = next;
      }
      at.entries.push([mu.name!, mu.value ?? null]);
      return;
    }
    case "top-add":
      draft.entries.push([mu.name!, mu.value ?? null]);
      return;
    case "dup-member": {
      const name = mu.name === "key" ? actorField : mu.name!;
      const at = draft.entries.findIndex(([k]) => k === name);
      draft.entries.splice(Math.max(0, at), 0, [name, mu.value ?? null]);
      return;
    }
  }
}

function cloneDeepObj(o: JObject): JObject {
  return new JObject(o.entries.map(([k, v]) => [k, v instanceof JObject ? cloneDeepObj(v) : v]));
}

const CANON_KEY: KeyInfo = { key: "k-min", forms: ["k-min"], cls: "strict", hot: false };

/** Builds one item: the template's event in a random spelling, with its mutations applied. */
export function materializeItem(recipe: ItemRecipe, pool: Pool, simplify: Simplify = {}): ItemSpec {
  if (recipe.t === "nonobject") {
    return { recipe, text: serialize(recipe.value), verdict: "invalid", bad: [], badLabels: [], allowed: ["*"], labels: [recipe.label], rejectCodes: ["invalid_event"] };
  }
  if (recipe.t === "malformed") {
    return { recipe, text: recipe.text, verdict: "invalid", bad: [], badLabels: [], allowed: ["*"], labels: [recipe.label], malformed: true, rejectCodes: ["malformed_json"] };
  }
  if (recipe.t === "raw") {
    return {
      recipe,
      text: serialize(recipe.draft),
      verdict: "invalid",
      bad: recipe.bad,
      badLabels: recipe.bad.map(() => recipe.label),
      allowed: recipe.bad.flat(),
      labels: [recipe.label],
      ev: undefined,
      rejectCodes: ["invalid_event"],
    };
  }
  const r = new Rng(recipe.choice);
  const labels: string[] = [];
  let keyInfo: KeyInfo;
  let id: string | null;
  let type: string;
  let ts: number | "arrival";
  let measure: Num | undefined;
  if (recipe.t === "tmpl") {
    const list = pool.templates.get(recipe.key)!;
    const t = list[recipe.ti % list.length]!;
    keyInfo = t.key;
    id = recipe.freshId ?? t.id;
    ({ type, ts, measure } = t);
    for (const l of t.labels) if (!(recipe.freshId && l.startsWith("event_id"))) labels.push(l);
  } else {
    keyInfo = pool.keys.find((k) => k.key === recipe.key) ?? CANON_KEY;
    id = null;
    ({ type, ts, measure } = recipe);
    labels.push(...(recipe.labels ?? []));
    if (keyInfo.label) labels.push(keyInfo.label);
    labels.push("no event_id (server assigns)");
    labels.push(...contentLabels(type, ts, measure, keyInfo, pool.times));
  }
  if (simplify.key) keyInfo = CANON_KEY;
  if (simplify.id) {
    if (id === null) labels.splice(0, labels.length, ...labels.filter((l) => l !== "no event_id (server assigns)"));
    id = "e-min";
  }
  if (simplify.type) type = "a";
  if (simplify.measure) measure = undefined;
  if (simplify.ts) ts = keyInfo.cls === "epoch" ? 1000 : pool.times.past[0]! + 1000;
  if (simplify.key || simplify.id || simplify.type || simplify.measure || simplify.ts) {
    const drop = (p: string) => labels.splice(0, labels.length, ...labels.filter((l) => !l.startsWith(p)));
    if (simplify.key) drop("key");
    if (simplify.id) drop("event_id");
    if (simplify.type) drop("event_type");
    if (simplify.measure) drop("value");
    if (simplify.ts) drop("timestamp"), drop("no timestamp");
  }
  const rejKey = recipe.t === "tmpl" ? recipe.rejKey : undefined;

  const draft = new JObject();
  // event_id
  if (id !== null) draft.set("event_id", id);
  else if (!simplify.plain && r.chance(0.3)) draft.set("event_id", null);
  draft.set("event_type", type);
  // key / user_id
  const keyForm: J = rejKey ?? (recipe.t === "anon" && recipe.keyOverride !== undefined ? recipe.keyOverride : simplify.plain ? keyInfo.key : r.pick(keyInfo.forms));
  if (typeof keyForm === "number") labels.push("key sent as a number");
  const modeRoll = r.next();
  const hasSideMutation = recipe.muts.some((mu) => mu.field === "user_id_side");
  const mode: "key" | "user_id" | "both" = hasSideMutation ? "both" : simplify.plain ? "key" : modeRoll < 0.45 ? "key" : modeRoll < 0.85 ? "user_id" : "both";
  if (mode === "key") draft.set("key", keyForm);
  else if (mode === "user_id") draft.set("user_id", keyForm);
  else {
    draft.set("key", keyForm);
    draft.set("user_id", r.chance(0.5) ? "other-user" : keyForm);
    labels.push("both key and user_id");
  }
  const actorField = mode === "user_id" ? "user_id" : "key";
  // timestamp
  if (ts !== "arrival") {
    if (recipe.t === "tmpl" && recipe.tsFormat) {
      draft.set("timestamp", uncertainTs(ts, recipe.tsFormat));
    } else if (simplify.plain) {
      draft.set("timestamp", new Date(ts).toISOString());
    } else {
      const form = tsForms(ts, r);
      draft.set("timestamp", form.j);
      if (form.label) labels.push(form.label);
    }
  }
  // measure and properties
  let props: JObject | undefined;
  if (!simplify.plain && r.chance(0.12)) {
    const sp = specialProps(r);
    props = sp.props;
    labels.push(sp.label);
  } else if (!simplify.plain && r.chance(0.35)) props = randomProps(r);
  if (measure) {
    if (simplify.plain || r.chance(0.65)) {
      draft.set("value", simplify.plain ? measure.value === 0 ? 0 : measure.value : measure.j);
      if (props && r.chance(0.5)) props.set("amount", r.pick<J>([12345, "x", null]));
    } else {
      if (r.chance(0.5)) draft.set("value", null);
      props ??= new JObject();
      props.set("amount", measure.j);
      labels.push("measure in properties.amount");
    }
  } else if (!simplify.plain) {
    const roll = r.int(6);
    if (roll === 1) draft.set("value", null);
    if (roll >= 3) {
      props ??= new JObject();
      const [amount, what] = r.pick<[J, string]>([
        ["12", 'properties.amount "12" (no measure)'],
        [null, "properties.amount null"],
        [new Raw("1e309"), "properties.amount 1e309 (no measure)"],
        [true, "properties.amount true"],
      ]);
      props.set("amount", amount);
      labels.push(what);
    }
  }
  if (props) draft.set("properties", props);
  else if (!simplify.plain && r.chance(0.05)) {
    draft.set("properties", null);
    labels.push("properties null");
  }
  // ignored members
  if (!simplify.plain && r.chance(0.25)) {
    for (let i = 1 + r.int(3); i > 0; i--) {
      const [name, value, what] = r.pick(EXTRAS);
      if (draft.has(name)) continue;
      draft.entries.push([name, value]);
      labels.push(what);
    }
  }
  if (!simplify.plain && r.chance(0.5)) r.shuffle(draft.entries);

  // mutations
  let verdict: ItemSpec["verdict"] = "valid";
  const bad: string[][] = [];
  const badLabels: string[] = [];
  const open: string[] = [];
  const allowed = new Set<string>();
  let tsKnown = true;
  const seen = new Set<string>();
  for (const mu of recipe.muts) {
    if (seen.has(mu.field)) continue;
    seen.add(mu.field);
    applyMutation(draft, mu, actorField);
    // The template's label for a field the mutation replaced no longer describes the event.
    const replaced = mu.field === "key" ? ["key"] : mu.field === "event_id" || mu.field === "event_type" || mu.field === "timestamp" ? [mu.field] : mu.field === "value" ? ["value"] : [];
    if (mu.op === "props-set") replaced.push("properties", "measure in properties");
    for (const prefix of replaced) for (let i = labels.length - 1; i >= 0; i--) if (labels[i]!.startsWith(prefix) || (prefix === "timestamp" && labels[i]!.startsWith("no timestamp"))) labels.splice(i, 1);
    labels.push(mu.label);
    if (!mu.keepsTs) tsKnown = false;
    const names =
      mu.field === "key"
        ? mu.op === "missing-key"
          ? ["key", "user_id"]
          : [actorField]
        : mu.field === "user_id_side"
          ? ["user_id"]
          : mu.field === "top" || mu.field === "dup"
            ? [mu.name === "key" ? actorField : (mu.name ?? "(event)")]
            : [mu.field];
    if (mu.field === "key") names.forEach((n) => allowed.add(n)), allowed.add("key"), allowed.add("user_id");
    names.forEach((n) => allowed.add(n));
    if (mu.verdict === "invalid") {
      verdict = "invalid";
      bad.push(names);
      badLabels.push(mu.label);
    } else {
      open.push(mu.label);
      if (verdict === "valid") verdict = "uncertain";
    }
  }
  if (recipe.t === "tmpl" && recipe.tsFormat) {
    labels.push(`timestamp ${recipe.tsFormat}`);
    open.push(`timestamp ${recipe.tsFormat}`);
    allowed.add("timestamp");
    if (verdict === "valid") verdict = "uncertain";
  }
  if (recipe.t === "anon" && recipe.keyOverride !== undefined) {
    open.push(...(recipe.labels ?? []));
    allowed.add("key");
    allowed.add("user_id");
    if (verdict === "valid") verdict = "uncertain";
  }
  const text = serialize(draft);
  const ev = deriveEvent(draft, tsKnown ? ts : undefined);
  if (verdict === "valid" && (!ev || ev.key !== (rejKey ?? keyInfo.key))) {
    throw new Error(`generator bug: valid item without a predictable event: ${show(text)}`);
  }
  let keyString: string | undefined;
  {
    let kv = draft.get("key");
    if (kv === null || kv === undefined) kv = draft.get("user_id");
    if (typeof kv === "string") keyString = decodedMarkers(kv);
    else if (numberOf(kv ?? undefined) !== undefined && Number.isInteger(numberOf(kv ?? undefined))) keyString = String(numberOf(kv ?? undefined));
  }
  return { recipe, text, verdict, bad, badLabels, allowed: [...allowed], labels, ev, keyString, rejectCodes: ["invalid_event"], openLabel: open.length ? open.join(", ") : undefined };
}

// ---------------------------------------------------------------------------------------------
// Requests.

export type Mode = "single" | "array" | "ndjson";

export interface RequestSpec {
  n: number;
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  /** Text (encoded as UTF-8, BAD_BYTES markers as raw bytes) or bytes. */
  body?: string | Uint8Array;
  mode?: Mode;
  items?: ItemSpec[];
  /** NDJSON: the 1-based line of each item, and each item's index among non-blank lines. */
  lines?: number[];
  expect: Expect;
  labels: string[];
  /** Send this many copies at once (a client retry racing itself). */
  copies?: number;
  /** For shrinking: how the request was built. */
  plan?: EventsPlan;
}

export type Expect =
  | { kind: "events" }
  | { kind: "error"; status: number[]; codes: string[]; position?: boolean; orBatchAllRejected?: boolean }
  | { kind: "route"; route: Route; key?: string; keyClass?: "pool" | "ghost" | "reject" | "other"; query?: QueryExpect }
  | { kind: "generic"; notFound?: boolean };

export type Route = "health" | "events" | "state" | "windows" | "late" | "outbox" | "dlq" | "replay";
export const ROUTES: Route[] = ["health", "events", "state", "windows", "late", "outbox", "dlq", "replay"];
export const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
export const ALLOWED: Record<Route, string[]> = {
  health: ["GET", "HEAD"],
  events: ["POST"],
  state: ["GET", "HEAD"],
  windows: ["GET", "HEAD"],
  late: ["GET", "HEAD"],
  outbox: ["GET", "HEAD"],
  dlq: ["GET", "HEAD"],
  replay: ["POST"],
};

export interface QueryExpect {
  /** 400 invalid_query naming this field (or 404 when the key has no actor). */
  badField?: string;
  /** A valid ?type= filter: every window returned must be of that type. */
  type?: string;
}

export function routePath(route: Route, key?: string): string {
  const k = key === undefined ? "" : encodeURIComponent(key);
  switch (route) {
    case "health":
      return "/health";
    case "events":
      return "/v1/events";
    case "state":
      return `/v1/actors/${k}`;
    case "replay":
      return `/v1/actors/${k}/dlq/replay`;
    default:
      return `/v1/actors/${k}/${route}`;
  }
}

export interface EventsPlan {
  mode: Mode;
  items: ItemRecipe[];
  ct: string;
  choice: number;
  /** Text before the body (a byte-order mark). */
  prefix?: string;
  labels?: string[];
}

const JSON_CTS: Array<[string, string | undefined]> = [
  ["application/json", undefined],
  ["application/json", undefined],
  ["application/json", undefined],
  ["application/json; charset=utf-8", undefined],
  ["Application/JSON", "content-type Application/JSON"],
  ["application/json;charset=UTF-8", undefined],
];
const NDJSON_CTS = ["application/x-ndjson", "application/x-ndjson", "application/x-ndjson; charset=utf-8"];

/** Turns an events plan into a request: items as one object, a JSON array, or NDJSON lines. */
export function materializeEvents(plan: EventsPlan, pool: Pool, n: number, kind: string, simplify: Simplify[] = []): RequestSpec {
  const items = plan.items.map((it, i) => materializeItem(it, pool, simplify[i] ?? {}));
  const r = new Rng(plan.choice);
  let body: string;
  let lines: number[] | undefined;
  if (plan.mode === "single") {
    body = items[0]!.text;
    if (r.chance(0.1)) body = ` \n${body}\r\n `;
  } else if (plan.mode === "array") {
    body = `[${items.map((i) => i.text).join(r.pick([",", ", ", ",\n"]))}]`;
  } else {
    const eol = r.pick(["\n", "\n", "\r\n"]);
    const out: string[] = [];
    lines = [];
    for (const item of items) {
      while (r.chance(0.08)) out.push(r.pick(["", " ", "\t", "  "]));
      out.push(item.text);
      lines.push(out.length);
    }
    body = out.join(eol) + (r.chance(0.5) ? eol : "");
  }
  const labels = [...new Set([...(plan.labels ?? []), ...items.flatMap((i) => i.labels)])];
  return {
    n,
    kind,
    method: "POST",
    path: "/v1/events",
    headers: { "content-type": plan.ct },
    body: (plan.prefix ?? "") + body,
    mode: plan.mode,
    items,
    lines,
    expect: { kind: "events" },
    labels,
    plan,
  };
}

// --- arbitraries ---------------------------------------------------------------------------------

export interface Workload {
  seed: number;
  pool: Pool;
  requests: RequestSpec[];
}

type Builder = (n: number) => RequestSpec;

export function buildWorkload(seed: number, count: number, times: Times, profile: "full" | "small"): Workload {
  const pool = buildPool(seed, times, profile);
  const invalid = invalidMutations(times);
  const uncertain = uncertainMutations();
  const keyArb = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...pool.hot.map((k) => k.key)) },
    { weight: 4, arbitrary: fc.constantFrom(...pool.cold.map((k) => k.key)) },
    { weight: 1, arbitrary: fc.constant(pool.epoch.key) },
  );
  const choice = fc.nat();
  const ti = fc.nat({ max: 10_000 });
  let fresh = 0;
  const freshId = (n: number) => `x${n}-${fresh++}`;

  const validItem = (key: string) => fc.record({ ti, choice }).map(({ ti, choice }): ItemRecipe => ({ t: "tmpl", key, ti, choice, muts: [] }));
  const mutArb = fc.constantFrom(...invalid);
  const invalidItem = (key: string) =>
    fc
      .record({
        ti,
        choice,
        muts: fc.oneof({ weight: 4, arbitrary: mutArb.map((mu) => [mu]) }, { weight: 1, arbitrary: fc.array(mutArb, { minLength: 2, maxLength: 3 }) }),
        keepId: fc.boolean(),
        rej: fc.nat({ max: 9 }),
      })
      .map(({ ti, choice, muts, keepId, rej }) => (n: number): ItemRecipe => ({
        t: "tmpl",
        key,
        ti,
        choice,
        muts,
        freshId: keepId ? undefined : freshId(n),
        rejKey: rej < 2 && !muts.some((mu) => mu.field === "key") ? pool.rejectKeys[(choice >>> 3) % pool.rejectKeys.length] : undefined,
      }));
  const uncertainItem = (key: string) =>
    fc.record({ ti, choice, which: fc.nat({ max: 100 }) }).map(({ ti, choice, which }) => (n: number): ItemRecipe => {
      const templates = pool.templates.get(key)!;
      const t = templates[ti % templates.length]!;
      if (which < 35 && t.ts !== "arrival") return { t: "tmpl", key, ti, choice, muts: [], tsFormat: UNCERTAIN_TS_FORMATS[which % UNCERTAIN_TS_FORMATS.length] };
      if (which < 40 && key === "0") return { t: "tmpl", key, ti, choice, muts: [{ field: "key", op: "set", value: new Raw("-0", -0), label: "key -0", verdict: "uncertain", keepsTs: true }] };
      if (which < 55) {
        // A key of its own whose acceptance the rules leave open: an integer beyond 2^53, 1e21, bytes that are not UTF-8.
        const [value, what] = [
          [new Raw("12345678901234567890", 12345678901234567890), "key 12345678901234567890 (beyond 2^53)"],
          [new Raw("1e21", 1e21), "key 1e21 (an integer written with an exponent)"],
          [`raw-${n}${BAD_BYTES}`, "key with bytes FF FE (not UTF-8)"],
          [`cesu-${n}${CESU_SURROGATE}`, "key with a UTF-8-encoded lone surrogate (ED A0 80)"],
        ][which % 4] as [J, string];
        return { t: "anon", key: "", type: "a", ts: pool.times.past[0]! + 5000, measure: { j: 2, value: 2 }, choice, muts: [], keyOverride: value, labels: [what] };
      }
      return { t: "tmpl", key, ti, choice, muts: [uncertain[which % uncertain.length]!] };
    });
  const anonItem = (key: string) =>
    fc
      .record({ type: typeArb, choice, measure: fc.option(numArb, { nil: undefined }), off: fc.integer({ min: 0, max: MINUTE - 1 }), arrival: fc.nat({ max: 9 }) })
      .map(({ type, choice, measure, off, arrival }): ItemRecipe => {
        const epoch = key === pool.epoch.key;
        const ts = epoch ? off % 1000 : arrival < 3 ? ("arrival" as const) : pool.times.past[off % 3]! + off;
        return { t: "anon", key, type, ts, measure, choice, muts: [] };
      });
  const NONOBJECTS: Array<[J, string]> = [[42, "item 42"], ["str", 'item "str"'], [null, "item null"], [[], "item []"], [[obj({ event_type: "a", key: "k" })], "item [event]"], [true, "item true"], [new Raw("1e309"), "item 1e309"], ["__proto__", 'item "__proto__"']];
  const RAWS: ItemRecipe[] = [
    { t: "raw", draft: obj([["__proto__", obj({ event_type: "a", key: "smuggled" })]]), bad: [["event_type"], ["key", "user_id"]], label: 'event fields only inside a "__proto__" member' },
    { t: "raw", draft: obj([["constructor", obj({ prototype: obj({ event_type: "a" }) })], ["key", "rej0"]]), bad: [["event_type"]], label: 'event_type only inside "constructor.prototype"' },
  ];
  const MALFORMED = ['{"event_type":"a","key":', "{broken", "[1,", '{"a":1}}', "'x'", "NaN", "\u0000", "{\"k\":\"\u0001\"}", "[".repeat(5000)];

  // A single body that is not an event object (arrays would make it a batch).
  const nonObjectSingle = fc.oneof(
    fc.constantFrom(...NONOBJECTS.filter(([v]) => !Array.isArray(v))).map(([value, label]) => (): ItemRecipe => ({ t: "nonobject", value, label })),
    fc.constantFrom(...RAWS).map((it) => () => it),
  );

  // One item of a batch: focus slot picks one of the batch's keys.
  const batchItem = (keys: string[], ndjson: boolean): fc.Arbitrary<(n: number) => ItemRecipe> =>
    fc.nat({ max: 3 }).chain((slot) => {
      const key = keys[slot % keys.length]!;
      return fc.oneof(
        { weight: 55, arbitrary: validItem(key).map((it) => () => it) },
        { weight: 25, arbitrary: invalidItem(key) },
        { weight: 5, arbitrary: uncertainItem(key) },
        { weight: 8, arbitrary: anonItem(key).map((it) => () => it) },
        { weight: 3, arbitrary: fc.constantFrom(...NONOBJECTS).map(([value, label]) => (): ItemRecipe => ({ t: "nonobject", value, label })) },
        { weight: 1, arbitrary: fc.constantFrom(...RAWS).map((it) => () => it) },
        { weight: ndjson ? 4 : 0, arbitrary: fc.constantFrom(...MALFORMED).map((text) => (): ItemRecipe => ({ t: "malformed", text, label: `NDJSON line not JSON: ${show(text, 20)}` })) },
      );
    });

  const batchArb = (mode: "array" | "ndjson") =>
    fc
      .record({
        keys: fc.array(keyArb, { minLength: 1, maxLength: 4 }),
        size: fc.oneof({ weight: 40, arbitrary: fc.integer({ min: 1, max: 5 }) }, { weight: 45, arbitrary: fc.integer({ min: 6, max: 40 }) }, { weight: 15, arbitrary: fc.integer({ min: 41, max: 300 }) }),
        choice,
        ct: fc.nat(),
      })
      .chain(({ keys, size, choice, ct }) =>
        fc.array(batchItem(keys, mode === "ndjson"), { minLength: size, maxLength: size }).map((makers): Builder => (n) => {
          const ctText = mode === "ndjson" ? NDJSON_CTS[ct % NDJSON_CTS.length]! : JSON_CTS[ct % JSON_CTS.length]![0];
          return materializeEvents({ mode, items: makers.map((mk) => mk(n)), ct: ctText, choice }, pool, n, `batch-${mode}`);
        }),
      );

  const single = (item: fc.Arbitrary<(n: number) => ItemRecipe>, kind: string) =>
    fc.record({ item, choice, ct: fc.nat() }).map(({ item, choice, ct }): Builder => (n) => {
      const [ctText, ctLabel] = JSON_CTS[ct % JSON_CTS.length]!;
      return materializeEvents({ mode: "single", items: [item(n)], ct: ctText, choice, labels: ctLabel ? [ctLabel] : [] }, pool, n, kind);
    });

  const allStrings = fc.record({ x: fc.constantFrom("__proto__", "constructor", "prototype", "toString"), tsToo: fc.boolean(), choice }).map(({ x, tsToo, choice }): Builder => (n) => {
    const k = pool.specials.get(x)!;
    const t = pool.templates.get(k.key)![0]!;
    const draft = obj([["event_id", x], ["event_type", x], ["key", x], ["user_id", x], ["timestamp", tsToo ? x : (t.ts as number)], ["value", 1]]);
    const typeOk = EVENT_TYPE.test(x);
    const bad: string[][] = [];
    if (!typeOk) bad.push(["event_type"]);
    if (tsToo) bad.push(["timestamp"]);
    const label = `every string field "${x}"${tsToo ? " (timestamp too)" : ""}`;
    const recipe: ItemRecipe = bad.length ? { t: "raw", draft, bad, label } : { t: "tmpl", key: k.key, ti: 0, choice, muts: [] };
    const spec = materializeEvents({ mode: "single", items: [recipe], ct: "application/json", choice }, pool, n, "all-strings");
    if (!bad.length) {
      // The spelling with every string field equal, instead of a random one of the same event.
      const item = spec.items![0]!;
      item.text = serialize(draft);
      item.labels = [label, ...item.labels];
      spec.body = item.text;
      spec.labels = [...item.labels];
    }
    return spec;
  });

  const race = fc.record({ key: keyArb, ti, choice, copies: fc.integer({ min: 2, max: 4 }) }).map(({ key, ti, choice, copies }): Builder => (n) => {
    const spec = materializeEvents({ mode: "single", items: [{ t: "tmpl", key, ti, choice, muts: [] }], ct: "application/json", choice }, pool, n, "race");
    spec.copies = copies;
    spec.labels = [...spec.labels, `the same event sent ${copies} times at once`];
    return spec;
  });

  // Whole-body problems.
  const BODIES: Array<{ label: string; body: string | Uint8Array; ct?: string; expect: Expect }> = [
    ...['{"event_type":"a","key":"k"', '{"event_type": "x",, }', "{'event_type':'a'}", '{"value": NaN}', '[{"event_type":"a","key":"k"},]', "// c\n{}", '{event_type:"a"}', '{"key":"a\u0000b"}', "{", "undefined", "[".repeat(5000), '{"a":1}garbage', "\u00ff\u00fe", `{"key":"k"}${BAD_BYTES}`].map((body) => ({
      label: `malformed JSON body ${show(body, 30)}`,
      body,
      expect: { kind: "error", status: [400], codes: ["malformed_json"], position: true } as Expect,
    })),
    { label: "empty JSON body", body: "", expect: { kind: "error", status: [400], codes: ["malformed_json", "empty_batch"] } },
    { label: "whitespace-only JSON body", body: "  \n\t ", expect: { kind: "error", status: [400], codes: ["malformed_json", "empty_batch"] } },
    { label: "JSON array 100,000 levels deep", body: "[".repeat(100_000) + "]".repeat(100_000), expect: { kind: "error", status: [400], codes: ["malformed_json", "invalid_event"], orBatchAllRejected: true } },
    { label: "JSON object 100,000 levels deep", body: deepObject(100_000).text, expect: { kind: "error", status: [400], codes: ["malformed_json", "invalid_event"] } },
    { label: "JSON array 3,000 levels deep", body: deepArray(3000).text, expect: { kind: "error", status: [400], codes: ["malformed_json", "invalid_event"], orBatchAllRejected: true } },
    ...["42", "null", '"str"', "true", "1e309", "-0", '"__proto__"'].map((body) => ({ label: `top-level ${body}`, body, expect: { kind: "error", status: [400], codes: ["invalid_event"] } as Expect })),
    { label: "empty array", body: "[]", expect: { kind: "error", status: [400], codes: ["empty_batch"] } },
    { label: "empty array with spaces", body: "[ \n ]", expect: { kind: "error", status: [400], codes: ["empty_batch"] } },
    { label: "empty NDJSON body", body: "", ct: "application/x-ndjson", expect: { kind: "error", status: [400], codes: ["empty_batch"] } },
    { label: "NDJSON of blank lines", body: "\n \n\r\n\t\n", ct: "application/x-ndjson", expect: { kind: "error", status: [400], codes: ["empty_batch"] } },
  ];
  const bodyArb = fc.constantFrom(...BODIES).map((b): Builder => (n) => ({
    n,
    kind: "body",
    method: "POST",
    path: "/v1/events",
    headers: { "content-type": b.ct ?? "application/json" },
    body: b.body,
    expect: b.expect,
    labels: [b.label],
  }));
  // A byte-order mark before a valid event: either accepted or a malformed_json.
  const bomArb = fc.record({ key: keyArb, ti, choice }).map(({ key, ti, choice }): Builder => (n) => {
    const spec = materializeEvents({ mode: "single", items: [{ t: "tmpl", key, ti, choice, muts: [] }], ct: "application/json", choice, prefix: "\ufeff", labels: ["byte-order mark before the body"] }, pool, n, "bom");
    const item = spec.items![0]!;
    item.verdict = "uncertain";
    item.openLabel = "byte-order mark before the body";
    item.rejectCodes = ["malformed_json", "invalid_event"];
    item.allowed = ["*"];
    spec.plan = undefined;
    return spec;
  });

  const WRONG_CTS: Array<string | undefined> = [undefined, "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "application/jsonx", "json", "*/*", "application/javascript", "text/json", "", "application/x-ndjsonx"];
  const wrongCtArb = fc.record({ key: keyArb, ti, choice, ct: fc.constantFrom(...WRONG_CTS), batch: fc.boolean() }).map(({ key, ti, choice, ct, batch }): Builder => (n) => {
    const spec = materializeEvents({ mode: batch ? "array" : "single", items: [{ t: "tmpl", key, ti, choice, muts: [] }], ct: ct ?? "", choice }, pool, n, "content-type");
    if (ct === undefined) {
      spec.headers = {};
      spec.body = encodeBody(spec.body as string);
    }
    spec.expect = { kind: "error", status: [415], codes: ["unsupported_media_type"] };
    spec.labels = [`Content-Type ${ct === undefined ? "missing" : JSON.stringify(ct)}`];
    spec.plan = undefined;
    return spec;
  });

  const anyKey = fc.oneof(
    { weight: 6, arbitrary: keyArb.map((k) => ({ key: k, keyClass: "pool" as const })) },
    { weight: 2, arbitrary: fc.constantFrom(...pool.ghostKeys).map((k) => ({ key: k, keyClass: "ghost" as const })) },
    { weight: 1, arbitrary: fc.constantFrom(...pool.rejectKeys).map((k) => ({ key: k, keyClass: "reject" as const })) },
  );
  const routeArb = fc.record({ route: fc.constantFrom(...ROUTES), method: fc.constantFrom(...METHODS), k: anyKey, body: fc.constantFrom<string | undefined>(undefined, "{}", '{"__proto__":{"x":1}}', "not json") }).map(
    ({ route, method, k, body }): Builder => (n) => {
      const withKey = !["health", "events"].includes(route);
      const spec: RequestSpec = {
        n,
        kind: "route",
        method,
        path: routePath(route, withKey ? k.key : undefined),
        headers: {},
        expect: { kind: "route", route, key: withKey ? k.key : undefined, keyClass: withKey ? k.keyClass : undefined },
        labels: [`${method} ${route === "events" || route === "health" ? routePath(route) : `/v1/actors/:key${route === "state" ? "" : routePath(route, "").slice("/v1/actors/".length)}`}`],
      };
      if (method !== "GET" && method !== "HEAD") {
        const b = route === "events" && method === "POST" ? "{}" : body;
        if (b !== undefined) {
          spec.body = b;
          spec.headers["content-type"] = "application/json";
        }
      }
      return spec;
    },
  );

  const QUERIES: Array<[string, QueryExpect, string]> = [
    ["size=1m", {}, "?size=1m"],
    ["size=7m", { badField: "size" }, "?size=7m"],
    ["size=%00", { badField: "size" }, "?size=%00"],
    ["size=1m&type=__proto__", { type: "__proto__" }, "?type=__proto__"],
    ["size=1m&type=constructor", { type: "constructor" }, "?type=constructor"],
    ["type=prototype", { type: "prototype" }, "?type=prototype"],
    ["type=then", { type: "then" }, "?type=then"],
    ["type=purchase", { type: "purchase" }, "?type=purchase"],
    ["type=toString", { badField: "type" }, "?type=toString"],
    ["type=%00", { badField: "type" }, "?type=%00"],
    ["limit=0", { badField: "limit" }, "?limit=0"],
    ["limit=abc", { badField: "limit" }, "?limit=abc"],
    ["limit=10001", { badField: "limit" }, "?limit=10001"],
    ["limit=1e3", { badField: "limit" }, "?limit=1e3"],
    ["from=soon", { badField: "from" }, "?from=soon"],
    ["from=5&to=1", { badField: "from" }, "?from=5&to=1"],
    ["to=__proto__", { badField: "to" }, "?to=__proto__"],
    ["from=1e309", { badField: "from" }, "?from=1e309"],
    ["size=1m&size=1h", {}, "?size twice"],
    ["size=%F0%9F", {}, "?size= with broken percent-encoding"],
  ];
  const queryArb = fc.record({ k: anyKey, q: fc.constantFrom(...QUERIES) }).map(({ k, q: [query, qe, what] }): Builder => (n) => ({
    n,
    kind: "query",
    method: "GET",
    path: `${routePath("windows", k.key)}?${query}`,
    headers: {},
    expect: qe.badField || qe.type ? { kind: "route", route: "windows", key: k.key, keyClass: k.keyClass, query: qe } : { kind: "generic" },
    labels: [`GET /windows${what}`],
  }));
  const REPLAY_QUERIES: Array<[string, string | undefined]> = [["sink=__proto__", "sink"], ["sink=constructor", "sink"], ["sink=redis", "sink"], ["ids=abc", "ids"], ["ids=1,2", undefined], ["ids=__proto__", "ids"], ["", undefined]];
  const replayArb = fc.record({ k: anyKey, q: fc.constantFrom(...REPLAY_QUERIES) }).map(({ k, q: [query, field] }): Builder => (n) => ({
    n,
    kind: "query",
    method: "POST",
    path: `${routePath("replay", k.key)}${query ? `?${query}` : ""}`,
    headers: {},
    expect: { kind: "route", route: "replay", key: k.key, keyClass: k.keyClass, query: field ? { badField: field } : undefined },
    labels: [`POST /dlq/replay?${query}`],
  }));
  const HOSTILE_PATHS: Array<[string, boolean]> = [
    ["/v1/actors/%ZZ", false], ["/v1/actors/%ED%A0%80", false], ["/v1/actors/%00", false], ["/v1/actors/%2E%2E", false], ["/v1/actors/%2e", false],
    ["/v1/actors/a%2F..%2F..%2Fhealth", false], ["/v1/actors//windows", false], ["/v1/actors/x/windows/", false], ["/v1/events/", false],
    ["/V1/EVENTS", true], [`/v1/actors/${"a".repeat(10_000)}`, false], ["/%", false], ["/v1/nothing", true], ["/", true], ["/v1", true],
    ["/v1/actors", true], ["/v1/actors/__proto__/__proto__", true], ["/v1/actors/constructor/constructor", true], ["/health/x", true],
    ["/v1/actors/k0/windows/extra", true], ["/v1/actors/%F0%9F%98", false], ["/v1/actors/%C0%AE%C0%AE", false], ["/v1/actors/k0?x=%", false],
  ];
  const pathArb = fc.record({ p: fc.constantFrom(...HOSTILE_PATHS), method: fc.constantFrom("GET", "POST", "DELETE") }).map(({ p: [path, notFound], method }): Builder => (n) => ({
    n,
    kind: "path",
    method,
    path,
    headers: (method === "POST" ? { "content-type": "application/json" } : {}) as Record<string, string>,
    body: method === "POST" ? "{}" : undefined,
    expect: { kind: "generic", notFound: notFound && method === "GET" },
    labels: [`${method} ${show(path, 40)}`],
  }));

  const requestArb: fc.Arbitrary<Builder> = fc.oneof(
    { weight: 22, arbitrary: keyArb.chain((k) => single(validItem(k).map((it) => () => it), "single-valid")) },
    { weight: 16, arbitrary: keyArb.chain((k) => single(invalidItem(k), "single-invalid")) },
    { weight: 4, arbitrary: keyArb.chain((k) => single(uncertainItem(k), "single-uncertain")) },
    { weight: 3, arbitrary: keyArb.chain((k) => single(anonItem(k).map((it) => () => it), "single-anon")) },
    { weight: 1, arbitrary: single(nonObjectSingle, "single-nonobject") },
    { weight: 2, arbitrary: allStrings },
    { weight: 2, arbitrary: race },
    { weight: 13, arbitrary: batchArb("array") },
    { weight: 9, arbitrary: batchArb("ndjson") },
    { weight: 5, arbitrary: bodyArb },
    { weight: 1, arbitrary: bomArb },
    { weight: 4, arbitrary: wrongCtArb },
    { weight: 10, arbitrary: routeArb },
    { weight: 5, arbitrary: queryArb },
    { weight: 1, arbitrary: replayArb },
    { weight: 2, arbitrary: pathArb },
  );

  const builders = fc.sample(requestArb, { seed, numRuns: count });
  const requests: RequestSpec[] = builders.map((b, n) => b(n));
  // Every method on every route at least once, with a key that has events and one that has none.
  let n = requests.length;
  for (const route of ROUTES) {
    for (const method of METHODS) {
      for (const k of route === "health" || route === "events" ? [undefined] : [pool.hot[0]!.key, pool.ghostKeys[0]!]) {
        requests.push({
          n: n++,
          kind: "route",
          method,
          path: routePath(route, k),
          headers: method === "POST" && route === "events" ? { "content-type": "application/json" } : {},
          body: method === "POST" && route === "events" ? "{}" : undefined,
          expect: { kind: "route", route, key: k, keyClass: k === undefined ? undefined : k === pool.ghostKeys[0] ? "ghost" : "pool" },
          labels: [`${method} ${route}`],
        });
      }
    }
  }
  // Heavy requests, at seeded places.
  const heavy: RequestSpec[] = [];
  const rejKey = "heavy";
  const tooMany = Array.from({ length: 10_001 }, (_, i) => `{"event_id":"t${i}","event_type":"a","key":"${rejKey}"}`);
  heavy.push({ n: 0, kind: "heavy", method: "POST", path: "/v1/events", headers: { "content-type": "application/json" }, body: `[${tooMany.join(",")}]`, expect: { kind: "error", status: [413], codes: ["too_many_events"] }, labels: ["10,001 events in a JSON array"] });
  heavy.push({ n: 0, kind: "heavy", method: "POST", path: "/v1/events", headers: { "content-type": "application/x-ndjson" }, body: tooMany.join("\n"), expect: { kind: "error", status: [413], codes: ["too_many_events"] }, labels: ["10,001 events in NDJSON"] });
  heavy.push({ n: 0, kind: "heavy", method: "POST", path: "/v1/events", headers: { "content-type": "application/json" }, body: `{"event_type":"a","key":"${rejKey}","properties":{"blob":"${"x".repeat(5 * 1024 * 1024)}"}}`, expect: { kind: "error", status: [413], codes: ["payload_too_large"] }, labels: ["body over 5 MiB"] });
  if (profile === "full") {
    // The largest batch allowed: 10,000 valid events of the hot keys.
    const items: ItemRecipe[] = Array.from({ length: 10_000 }, (_, i) => ({ t: "tmpl", key: pool.hot[i % pool.hot.length]!.key, ti: i * 7, choice: (seed + i) >>> 0, muts: [] }));
    const spec = materializeEvents({ mode: "ndjson", items, ct: "application/x-ndjson", choice: seed }, pool, 0, "heavy", items.map(() => ({ plain: true })));
    heavy.push({ ...spec, labels: ["10,000 events in NDJSON", ...spec.labels], plan: undefined });
  }
  const placeRng = new Rng(seed ^ 0xbeef);
  for (const h of heavy) requests.splice(placeRng.int(requests.length), 0, h);
  requests.forEach((r, i) => (r.n = i));
  return { seed, pool, requests };
}

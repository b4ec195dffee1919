/**
 * JSON values for hostile requests. A JavaScript object cannot hold everything the fuzz test must
 * send (a member named "__proto__", the same name twice, 1e309, -0, integers beyond 2^53), so
 * objects are ordered entry lists and numbers may carry their exact source text.
 */

export type J = null | boolean | string | number | Raw | J[] | JObject;

/** An object as an ordered list of members: "__proto__" is an ordinary member here. */
export class JObject {
  constructor(public entries: Array<[string, J]> = []) {}

  get(name: string): J | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]![0] === name) return this.entries[i]![1];
    return undefined;
  }

  has(name: string): boolean {
    return this.entries.some(([k]) => k === name);
  }

  /** Replaces every member `name` with one, in the position of the first (or at the end). */
  set(name: string, value: J): this {
    const at = this.entries.findIndex(([k]) => k === name);
    if (at < 0) this.entries.push([name, value]);
    else {
      this.entries[at] = [name, value];
      this.entries = this.entries.filter(([k], i) => k !== name || i === at);
    }
    return this;
  }

  delete(name: string): this {
    this.entries = this.entries.filter(([k]) => k !== name);
    return this;
  }

  clone(): JObject {
    return new JObject(this.entries.map(([k, v]) => [k, v]));
  }
}

/** Verbatim JSON text (a number such as 1e309, -0 or 123456789012345678901234567890, or deep nesting). */
export class Raw {
  constructor(
    public text: string,
    /** What JSON.parse makes of it, where that is a number. */
    public value?: number,
  ) {}
}

export const obj = (entries: Record<string, J> | Array<[string, J]>): JObject =>
  new JObject(Array.isArray(entries) ? entries : Object.entries(entries));

/** JSON text; strings go through JSON.stringify, which escapes lone surrogates as \udxxx. */
export function serialize(value: J): string {
  if (value === null) return "null";
  if (value instanceof Raw) return value.text;
  if (value instanceof JObject) return `{${value.entries.map(([k, v]) => `${JSON.stringify(k)}:${serialize(v)}`).join(",")}}`;
  if (Array.isArray(value)) return `[${value.map(serialize).join(",")}]`;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`not a JSON number: ${value}`);
    return Object.is(value, -0) ? "-0" : JSON.stringify(value);
  }
  return JSON.stringify(value);
}

/** Nested objects `depth` levels deep (the outermost counts as 1), as text (no recursion limit). */
export function deepObject(depth: number, leaf = "1", name = "a"): Raw {
  return new Raw(`{"${name}":`.repeat(depth - 1) + `{"${name}":${leaf}}` + "}".repeat(depth - 1));
}

export function deepArray(depth: number, leaf = "1"): Raw {
  return new Raw("[".repeat(depth) + leaf + "]".repeat(depth));
}

/** A string for display: JSON-escaped (lone surrogates and control characters visible) and shortened. */
export function show(text: string, max = 400): string {
  const escaped = JSON.stringify(text).slice(1, -1);
  return escaped.length <= max ? escaped : `${escaped.slice(0, max)}… (${text.length} chars)`;
}

/** True when every surrogate in `s` is part of a pair. */
export function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

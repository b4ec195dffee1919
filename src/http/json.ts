export interface JsonSyntaxError {
  message: string;
  position: number;
  line: number;
  column: number;
}

export type JsonResult = { ok: true; value: unknown } | { ok: false; error: JsonSyntaxError };

/** JSON.parse, plus the position of the first syntax error (engines disagree on reporting it). */
export function parseJson(text: string): JsonResult {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, error: locateSyntaxError(text) };
  }
}

/** A small validating scanner, run only after JSON.parse failed, to name where and why. */
export function locateSyntaxError(text: string): JsonSyntaxError {
  let i = 0;
  const fail = (message: string): never => {
    throw { message, position: i };
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const describe = () => (i >= text.length ? "unexpected end of input" : `unexpected character ${JSON.stringify(text[i])}`);
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(describe());
  };
  const string = () => {
    i++;
    while (i < text.length) {
      const ch = text.charCodeAt(i);
      if (ch === 34) return void i++;
      if (ch < 32) fail("control character in string");
      if (ch === 92) {
        i++;
        const esc = text[i];
        if (esc === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail("bad \\u escape in string");
          i += 5;
        } else if (esc !== undefined && '"\\/bfnrt'.includes(esc)) i++;
        else fail("bad escape in string");
      } else i++;
    }
    fail("unterminated string");
  };
  const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const number = () => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail(describe());
    i += m![0].length;
  };
  const value = (depth: number): void => {
    if (depth > 10_000) fail("nesting too deep");
    ws();
    const ch = text[i];
    if (ch === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a property name, ${describe()}`);
        string();
        ws();
        if (text[i] !== ":") fail(`expected ':', ${describe()}`);
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return void i++;
        else fail(`expected ',' or '}', ${describe()}`);
      }
    } else if (ch === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return void i++;
        else fail(`expected ',' or ']', ${describe()}`);
      }
    } else if (ch === '"') string();
    else if (ch === "t") literal("true");
    else if (ch === "f") literal("false");
    else if (ch === "n") literal("null");
    else if (ch === "-" || (ch !== undefined && ch >= "0" && ch <= "9")) number();
    else fail(describe());
  };
  let found: { message: string; position: number } = { message: "invalid JSON", position: 0 };
  try {
    value(0);
    ws();
    if (i < text.length) fail(`unexpected data after the JSON value`);
    found = { message: "invalid JSON", position: i };
  } catch (e) {
    found = e as { message: string; position: number };
  }
  const before = text.slice(0, found.position);
  const line = before.split("\n").length;
  const column = found.position - before.lastIndexOf("\n");
  return { ...found, line, column };
}

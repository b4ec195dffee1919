import { describe, expect, test } from "bun:test";
import { locateSyntaxError, parseJson, type JsonSyntaxError } from "../../src/http/json.ts";

/** Parses and expects a syntax error; returns it. */
function syntaxError(text: string): JsonSyntaxError {
  const result = parseJson(text);
  if (result.ok) throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
  return result.error;
}

describe("parseJson: valid input", () => {
  test.each([
    ['{"a":1}', { a: 1 }],
    ["[1,2,3]", [1, 2, 3]],
    ['"text"', "text"],
    ["42", 42],
    ["-0.5e+2", -50],
    ["true", true],
    ["false", false],
    ["null", null],
    [' \t\r\n{ "a" : [ ] , "b" : { } } \n', { a: [], b: {} }],
    ['"\\u00e9\\n\\"\\\\\\/"', 'é\n"\\/'],
  ])("%s", (text, value) => {
    expect(parseJson(text)).toEqual({ ok: true, value });
  });

  test("__proto__ becomes an own key, like JSON.parse", () => {
    const result = parseJson('{"__proto__":{"x":1}}');
    expect(result.ok).toBe(true);
    if (result.ok) expect(Object.keys(result.value as object)).toEqual(["__proto__"]);
  });
});

describe("parseJson: error positions", () => {
  test("trailing comma in an object points at the closing brace", () => {
    const text = '{"a":1,}';
    expect(syntaxError(text)).toMatchObject({ position: 7, line: 1, column: 8 });
    expect(syntaxError(text).message).toContain("property name");
  });

  test("trailing comma in an array points at the closing bracket", () => {
    expect(syntaxError("[1,2,]")).toMatchObject({ position: 5, line: 1, column: 6 });
  });

  test("unterminated string points at the end of input", () => {
    const text = '{"a":"abc';
    const error = syntaxError(text);
    expect(error.position).toBe(text.length);
    expect(error.message).toContain("unterminated string");
  });

  test("unterminated property name", () => {
    expect(syntaxError('{"abc').position).toBe(5);
  });

  test("missing colon points at what came instead", () => {
    const error = syntaxError('{"a" 1}');
    expect(error.position).toBe(5);
    expect(error.message).toContain("':'");
  });

  test("missing comma between members", () => {
    expect(syntaxError('{"a":1 "b":2}').position).toBe(7);
    expect(syntaxError("[1 2]").position).toBe(3);
  });

  test("garbage after a complete value points at the garbage", () => {
    const error = syntaxError('{"a":1} x');
    expect(error.position).toBe(8);
    expect(error.message).toContain("after the JSON value");
    expect(syntaxError("[] []").position).toBe(3);
    expect(syntaxError("1 2").position).toBe(2);
  });

  test("two JSON lines are one error at the start of the second value", () => {
    expect(syntaxError('{"a":1}\n{"b":2}')).toMatchObject({ position: 8, line: 2, column: 1 });
  });

  test("bad escape points at the escaped character", () => {
    const error = syntaxError('"ab\\x"');
    expect(error.position).toBe(4);
    expect(error.message).toContain("escape");
  });

  test("bad \\u escape points into the escape", () => {
    const text = '"\\u12G4"';
    const error = syntaxError(text);
    expect(error.message).toContain("\\u");
    expect(error.position).toBeGreaterThanOrEqual(text.indexOf("\\"));
    expect(error.position).toBeLessThanOrEqual(text.indexOf("G"));
  });

  test("a short \\u escape at the end of input", () => {
    const error = syntaxError('"\\u12');
    expect(error.message).toContain("\\u");
    expect(error.position).toBeLessThanOrEqual(5);
  });

  test("a backslash at the very end of input", () => {
    const error = syntaxError('"abc\\');
    expect(error.position).toBe(5);
  });

  test("empty input", () => {
    expect(syntaxError("")).toEqual({ message: "unexpected end of input", position: 0, line: 1, column: 1 });
  });

  test("whitespace-only input points past the whitespace", () => {
    expect(syntaxError("  \n ")).toMatchObject({ position: 4, line: 2, column: 2 });
  });

  test("a raw control character in a string points at it", () => {
    const text = '{"a":"x\ty"}';
    const error = syntaxError(text);
    expect(error.position).toBe(text.indexOf("\t"));
    expect(error.message).toContain("control character");
  });

  test("a raw newline in a string points at it, on the line where it starts", () => {
    const text = '["ab\ncd"]';
    expect(syntaxError(text)).toMatchObject({ position: 4, line: 1, column: 5 });
  });

  test("a NUL character in a string", () => {
    expect(syntaxError('"a\u0000"').position).toBe(2);
  });

  test("unexpected end inside an object or array", () => {
    expect(syntaxError("{").position).toBe(1);
    expect(syntaxError('{"a":').position).toBe(5);
    expect(syntaxError('{"a":1').position).toBe(6);
    expect(syntaxError("[1,2").position).toBe(4);
    expect(syntaxError("[").position).toBe(1);
  });

  test("non-string property names", () => {
    expect(syntaxError("{a:1}").position).toBe(1);
    expect(syntaxError("{'a':1}").position).toBe(1);
    expect(syntaxError("{1:1}").position).toBe(1);
  });

  test.each([
    ["01", 1],
    ["1.", 1],
    [".5", 0],
    ["-", 0],
    ["+1", 0],
    ["[1e]", 2],
    ["[0x10]", 2],
    ["NaN", 0],
  ])("bad number %s -> position %d", (text, position) => {
    expect(syntaxError(text).position).toBe(position);
  });

  test("misspelled literals point into the literal", () => {
    for (const [text, wrong] of [
      ["[tru]", 4],
      ["[nul1]", 4],
      ["{\"a\":fals}", 9],
    ] as const) {
      const error = syntaxError(text);
      expect(error.position).toBeGreaterThanOrEqual(text.search(/[tfn]/));
      expect(error.position).toBeLessThanOrEqual(wrong);
    }
  });

  test("single quotes are not strings", () => {
    expect(syntaxError("'a'").position).toBe(0);
  });

  test("a byte-order mark is not whitespace", () => {
    expect(syntaxError("\uFEFF{}").position).toBe(0);
  });

  test("a mismatched closing bracket", () => {
    expect(syntaxError('{"a":[1}').position).toBe(7);
    expect(syntaxError("[1}").position).toBe(2);
  });

  test("messages name the unexpected character", () => {
    expect(syntaxError("[1;2]").message).toContain('";"');
  });

  test("a long but valid number does not move the error", () => {
    const text = "[" + "1".repeat(500) + ",]";
    expect(JSON.parse("[" + "1".repeat(500) + "]")).toHaveLength(1);
    expect(syntaxError(text).position).toBe(text.length - 1);
  });

  test("deep nesting reports a position instead of overflowing the stack", () => {
    const error = syntaxError("[".repeat(20_000));
    expect(typeof error.position).toBe("number");
    expect(error.position).toBeGreaterThan(0);
    expect(error.position).toBeLessThanOrEqual(20_000);
  });
});

describe("parseJson: line and column", () => {
  test("columns are 1-based on the first line", () => {
    expect(syntaxError("}")).toMatchObject({ position: 0, line: 1, column: 1 });
    expect(syntaxError("[1,]")).toMatchObject({ position: 3, line: 1, column: 4 });
  });

  test("multi-line input", () => {
    const text = '{\n  "a": 1,\n  "b" 2\n}';
    expect(syntaxError(text)).toMatchObject({ position: text.indexOf("2"), line: 3, column: 7 });
  });

  test("error at the start of a line", () => {
    expect(syntaxError("[1,\n]")).toMatchObject({ position: 4, line: 2, column: 1 });
  });

  test("error at the end of multi-line input", () => {
    const text = '{\n  "a": 1\n';
    expect(syntaxError(text)).toMatchObject({ position: text.length, line: 3, column: 1 });
  });

  test("CRLF line endings count one line per \\n", () => {
    const text = '{\r\n  "a" 1\r\n}';
    expect(syntaxError(text)).toMatchObject({ position: text.indexOf("1"), line: 2, column: 7 });
  });

  test("a tab counts as one column", () => {
    expect(syntaxError('{\n\t"a" 1}')).toMatchObject({ line: 2, column: 6 });
  });

  test("many lines", () => {
    const lines = Array.from({ length: 50 }, (_, i) => `  ${i},`);
    const text = "[\n" + lines.join("\n") + "\n]";
    expect(syntaxError(text)).toMatchObject({ position: text.length - 1, line: 52, column: 1 });
  });
});

describe("locateSyntaxError", () => {
  test("agrees with parseJson", () => {
    const text = '{"a":\n  [1, 2,, 3]}';
    expect(locateSyntaxError(text)).toEqual(syntaxError(text));
    expect(locateSyntaxError(text)).toMatchObject({ line: 2, column: 9 });
  });

  test("for valid text it falls back to a generic message at the end", () => {
    expect(locateSyntaxError('{"a":[1]}')).toEqual({ message: "invalid JSON", position: 9, line: 1, column: 10 });
  });
});

/**
 * A storage write as one string, for handing it to another thread: each row is its kind ("P" put,
 * "D" delete), then each string as its length, ":", and itself. Copying one string between threads
 * is cheap; structured-cloning arrays of strings, or escaping values that are JSON already, is not.
 */
export function encodeRowFrames(puts: ReadonlyArray<readonly [string, string]>, deletes: readonly string[]): string {
  const parts: string[] = [];
  for (const key of deletes) parts.push("D", String(key.length), ":", key);
  for (const [key, value] of puts) parts.push("P", String(key.length), ":", key, String(value.length), ":", value);
  return parts.join("");
}

export function decodeRowFrames(text: string): { puts: Array<[string, string]>; deletes: string[] } {
  const puts: Array<[string, string]> = [];
  const deletes: string[] = [];
  let at = 0;
  const next = () => {
    const colon = text.indexOf(":", at);
    const length = Number(text.slice(at, colon));
    if (colon < 0 || !Number.isInteger(length) || length < 0 || colon + 1 + length > text.length) throw new Error(`bad row frame at ${at}`);
    at = colon + 1 + length;
    return text.slice(colon + 1, at);
  };
  while (at < text.length) {
    const kind = text[at++];
    if (kind === "D") deletes.push(next());
    else if (kind === "P") puts.push([next(), next()]);
    else throw new Error(`bad row frame kind at ${at - 1}`);
  }
  return { puts, deletes };
}

import { createHash } from "node:crypto";

/**
 * The event_id given to an event that has none: derived from its line number and the line's own
 * bytes, so that running the same file again (or resuming past a batch that was in flight) sends the
 * same ids, and the server answers them as duplicates instead of counting them twice. Two identical
 * lines still get different ids (their line numbers differ); editing a file above a line changes its id.
 */
export function derivedId(line: number, content: Uint8Array | string): string {
  const hash = createHash("sha256").update(content).digest("hex").slice(0, 24);
  return `bf-${line}-${hash}`;
}

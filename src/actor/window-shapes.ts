import type { WindowShape, WindowShapeName } from "./analytics.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { parseWindowSpec, specName } from "./windows.ts";

/** "1m" tumbling, "5m/1m" hopping, "sliding:10m", "session:30m"; a string says what is wrong. */
export function parseWindowShape(text: string): WindowShape | string {
  const colon = text.indexOf(":");
  const kind = colon < 0 ? "" : text.slice(0, colon).trim();
  const rest = text.slice(colon + 1);
  if (kind === "sliding" || kind === "session") {
    const ms = parseDuration(rest);
    if (!ms) return `"${text}": ${kind} windows need a positive duration, like ${kind}:10m`;
    return kind === "sliding" ? { kind, sizeMs: ms } : { kind, gapMs: ms };
  }
  if (kind) return `"${text}" is not a window: use 1m, 5m/1m, sliding:10m or session:30m`;
  const spec = parseWindowSpec(text);
  if (typeof spec === "string") return spec;
  return spec.hop === spec.size ? { kind: "tumbling", sizeMs: spec.size } : { kind: "hopping", sizeMs: spec.size, hopMs: spec.hop };
}

/** The one name of a shape, in records, rules and queries: "1m", "5m/1m", "sliding:10m", "session:30m". */
export function windowShapeName(shape: WindowShape): WindowShapeName {
  switch (shape.kind) {
    case "tumbling":
      return specName(shape.sizeMs, shape.sizeMs);
    case "hopping":
      return specName(shape.sizeMs, shape.hopMs);
    case "sliding":
      return `sliding:${formatDuration(shape.sizeMs)}`;
    case "session":
      return `session:${formatDuration(shape.gapMs)}`;
  }
}

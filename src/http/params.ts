/** What requests may carry: checked by app.ts, documented by openapi.ts. */

export const NDJSON = new Set(["application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"]);
export const DEFAULT_WINDOW_LIMIT = 1_000;
export const MAX_WINDOW_LIMIT = 10_000;
export const DEFAULT_TOP_KEYS = 10;
export const MAX_TOP_KEYS = 100;

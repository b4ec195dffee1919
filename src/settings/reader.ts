import type { z } from "zod";
import { parseDuration } from "../actor/duration.ts";

export type EnvVars = Record<string, string | undefined>;

/** Reads variables and collects every problem, each naming its variable, to report them all at once. */
export class EnvReader {
  readonly problems: string[] = [];

  constructor(readonly env: EnvVars) {}

  /** The first of `names` that is set (non-empty). */
  get(...names: string[]): { name: string; value: string } | undefined {
    for (const name of names) {
      const value = this.env[name];
      if (value) return { name, value };
    }
    return undefined;
  }

  text(name: string, fallback: string): string {
    return this.env[name] || fallback;
  }

  check<T>(schema: z.ZodType<T>, name: string, value: string): T | undefined {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    this.problem(name, value, parsed.error.issues.map((i) => i.message).join("; "));
    return undefined;
  }

  required(what: string, ...names: string[]): string | undefined {
    const found = this.get(...names);
    if (!found) this.problems.push(`${names.join(" or ")} is required when ${what} is set`);
    return found?.value;
  }

  durationMs(name: string, fallback: string): number {
    const text = this.text(name, fallback);
    const ms = parseDuration(text);
    if (ms === undefined) this.problem(name, text, "not a duration like 500ms, 10s, 1m");
    return ms ?? 0;
  }

  whole(name: string, fallback: number): number {
    const text = this.env[name];
    if (!text) return fallback;
    if (!/^\d+$/.test(text)) this.problem(name, text, "must be a whole number");
    return Number(text);
  }

  problem(name: string, value: string, message: string): void {
    this.problems.push(`${name}=${JSON.stringify(value)}: ${message}`);
  }
}

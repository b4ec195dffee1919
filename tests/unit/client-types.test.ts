/**
 * The client's hand-written API types (src/client/types.ts) against the server's zod schemas
 * (src/http/schemas.ts): the client may not import the server's layers (tests/unit/layout.test.ts),
 * so this file, type-checked by `tsc --noEmit`, is what keeps the two from drifting apart. The
 * runtime test below checks the same on real answers' shapes, and the package's `exports`.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import type * as S from "../../src/http/schemas.ts";
import type * as C from "../../src/client/index.ts";
import { ROOT } from "../support/process.ts";

/** True only when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Mutually assignable: what a zod type with `?: T | undefined` fields can be held to. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

type Infer<T extends z.ZodType> = z.infer<T>;

// Each line fails to compile if the client's type and the API's schema part ways.
const sameShapes: [
  Same<C.ActorView, Infer<typeof S.ActorViewSchema>>,
  Same<C.WindowView, Infer<typeof S.WindowViewSchema>>,
  Same<C.Aggregate, Infer<typeof S.AggregateViewSchema>>,
  Same<C.LateEntry, Infer<typeof S.LateViewSchema>>,
  Same<C.EventRecord, Infer<typeof S.EventRecordViewSchema>>,
  Same<C.WindowRecord, Infer<typeof S.WindowRecordViewSchema>>,
  Same<C.AlertRecord, Infer<typeof S.AlertRecordViewSchema>>,
  Same<C.IngestBatchResult, Infer<typeof S.IngestBatchSchema>>,
  Same<C.ErrorBody, Infer<typeof S.ErrorBodySchema>>,
  Same<{ key: string; windows: C.WindowView[] }, Infer<typeof S.WindowsSchema>>,
  Same<{ key: string; late: C.LateEntry[] }, Infer<typeof S.LateSchema>>,
  Same<{ key: string; alerts: C.AlertRecord[] }, Infer<typeof S.AlertsSchema>>,
] = [true, true, true, true, true, true, true, true, true, true, true, true];

// The checker itself: it must tell different types apart.
const checkerWorks: [Equal<{ a: string }, { a: string }>, Same<{ a: string }, { a: number }>, Same<{ a?: string }, { a: string }>] = [true, false, false];

describe("client types", () => {
  test("match the API's schemas (checked by tsc; this test keeps the file in the suite)", () => {
    expect(sameShapes.every(Boolean)).toBe(true);
    expect(checkerWorks).toEqual([true, false, false]);
  });

  test('package.json exports "./client" to src/client/index.ts, and "keyflow/client" resolves to it', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    expect(pkg.exports["./client"]).toBe("./src/client/index.ts");
    expect(existsSync(join(ROOT, pkg.exports["./client"]))).toBe(true);
    const viaPackage = await import("keyflow/client");
    const direct = await import("../../src/client/index.ts");
    expect(viaPackage.createClient).toBe(direct.createClient);
    expect(viaPackage.KeyflowError).toBe(direct.KeyflowError);
  });
});

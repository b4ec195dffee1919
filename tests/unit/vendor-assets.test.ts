import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { VENDORED, vendoredPaths } from "../../scripts/vendor-assets.ts";

test("the committed copies of the pages' libraries equal node_modules' (bun scripts/vendor-assets.ts after an upgrade)", () => {
  for (const file of VENDORED) {
    const { source, copy } = vendoredPaths(file);
    expect(readFileSync(copy).equals(readFileSync(source)), `src/http/public/${file.to} differs from node_modules/${file.from}: run bun scripts/vendor-assets.ts`).toBe(true);
  }
});

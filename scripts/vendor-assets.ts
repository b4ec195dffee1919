/**
 * The browser libraries the packaged pages load (src/http/public/), copied from node_modules and
 * committed, so that users run no build step and no page loads anything from a CDN. After
 * upgrading one of them: `bun scripts/vendor-assets.ts`, then commit. tests/unit/vendor-assets.test.ts
 * fails while a committed copy differs from node_modules'.
 */
import { copyFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");

/** node_modules path → path under src/http/public/. */
export const VENDORED: ReadonlyArray<{ from: string; to: string }> = [
  // uPlot (MIT) for the /dashboard charts.
  { from: "uplot/dist/uPlot.iife.min.js", to: "assets/uPlot.iife.min.js" },
  { from: "uplot/dist/uPlot.min.css", to: "assets/uPlot.min.css" },
  { from: "uplot/LICENSE", to: "assets/uPlot.LICENSE.txt" },
  // Scalar's API reference (MIT; its package ships no licence file) for /docs: one script, styles included.
  { from: "@scalar/api-reference/dist/browser/standalone.js", to: "assets/scalar.js" },
];

export const vendoredPaths = ({ from, to }: { from: string; to: string }) => ({
  source: join(ROOT, "node_modules", from),
  copy: join(ROOT, "src/http/public", to),
});

if (import.meta.main) {
  for (const file of VENDORED) {
    const { source, copy } = vendoredPaths(file);
    copyFileSync(source, copy);
    console.log(`${file.from} -> src/http/public/${file.to}`);
  }
}

/**
 * GET /docs in a real headless Chromium (Debian's chromium, driven by playwright-core) against a
 * real Bun server: the vendored Scalar renders the operations of /openapi.json under the page's
 * CSP, loading nothing from anywhere else. Fails, naming the package, where chromium is not installed.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { BUN_SERVER, CONTRACT_ENV, spawnServer, tempDir } from "../support/targets.ts";

const CHROMIUM = process.env.KEYFLOW_CHROMIUM ?? "/usr/bin/chromium";

test("/docs renders every tag and operation of /openapi.json, loading nothing from elsewhere", async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set KEYFLOW_CHROMIUM`);
  }
  const dir = tempDir("docs");
  const host = await spawnServer(BUN_SERVER, { ...CONTRACT_ENV, PORT: "0", HOST: "127.0.0.1", KEYFLOW_DATA_DIR: dir.path });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const origin = new URL(host.url).origin;
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    const foreign: string[] = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
    page.on("request", (r) => new URL(r.url()).origin !== origin && foreign.push(r.url()));
    const res = await page.goto(`${host.url}/docs`);
    expect(res!.status()).toBe(200);
    expect(res!.headers()["content-security-policy"]).toContain("script-src 'self'");
    await page.getByText("Send events").first().waitFor({ timeout: 30_000 });

    const spec = (await (await fetch(`${host.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, { summary: string; tags: string[] }>> };
    const operations = Object.values(spec.paths).flatMap((item) => Object.values(item));
    for (const tag of new Set(operations.flatMap((op) => op.tags))) {
      const group = page.locator("aside, nav").getByText(tag, { exact: true }).first();
      await group.click();
    }
    const text = await page.evaluate(() => document.body.innerText);
    const missing = operations.map((op) => op.summary).filter((summary) => !text.includes(summary));
    expect(missing).toEqual([]);
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
  } finally {
    await browser.close();
    await host.stop();
    dir.remove();
  }
}, 60_000);

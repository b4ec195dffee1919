/**
 * The packaged web pages (/dashboard, /docs) and their scripts, served from src/http/public/ and
 * never from a CDN. On Workers the platform serves that directory itself ([assets] in
 * wrangler.toml, headers from public/_headers); the self-hosted server reads it through `ReadAsset`.
 */

/** The bytes of a file under src/http/public/, or null when there is none. */
export type ReadAsset = (path: string) => Promise<Uint8Array<ArrayBuffer> | null>;

/** The pages: route → file. */
export const PAGES = new Map([
  ["/dashboard", "dashboard.html"],
  ["/docs", "docs.html"],
]);

/** A file the pages load: one level under assets/, plain names only (no "..", no hidden files). */
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9]+)+$/;

const CONTENT_TYPES = new Map([
  ["html", "text/html; charset=utf-8"],
  ["js", "text/javascript; charset=utf-8"],
  ["css", "text/css; charset=utf-8"],
  ["json", "application/json; charset=utf-8"],
  ["svg", "image/svg+xml"],
  ["png", "image/png"],
]);

/**
 * The pages talk only to this server and load only its files. style-src allows inline styles (the
 * charting and reference libraries set them on elements); scripts stay 'self' only. Kept equal to
 * public/_headers, which Workers applies (a test checks).
 */
export const PAGE_SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The file under public/ that an asset name maps to, or undefined for a name that is not one. */
export function assetFile(name: string): string | undefined {
  return ASSET_NAME.test(name) && CONTENT_TYPES.has(extension(name)) ? `assets/${name}` : undefined;
}

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES.get(extension(file)) ?? "application/octet-stream";
}

const extension = (file: string) => file.slice(file.lastIndexOf(".") + 1).toLowerCase();

/** A file's response: pages are revalidated on each load, scripts cached for an hour. */
export async function assetResponse(read: ReadAsset, file: string): Promise<Response | null> {
  const bytes = await read(file);
  if (!bytes) return null;
  const page = file.endsWith(".html");
  const headers: Record<string, string> = {
    "content-type": contentTypeOf(file),
    "cache-control": page ? "no-cache" : "public, max-age=3600",
    ...(page ? PAGE_SECURITY_HEADERS : { "x-content-type-options": "nosniff" }),
  };
  return new Response(bytes, { status: 200, headers });
}

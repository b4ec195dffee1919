/**
 * Browsers: a page being hidden may be the last chance to send. The client listens for
 * `visibilitychange` to `hidden` (on the document) and `pagehide` (on the window) — not `unload`,
 * which mobile browsers do not fire reliably and which disables the back/forward cache — and then
 * sends what waits with `fetch(…, { keepalive: true })`, which outlives the page.
 *
 * A page's keepalive requests share a 64 KiB budget of bodies in flight (the Fetch standard: over
 * it, the request fails with a network error the page never sees), so those bodies are cut into
 * chunks of at most `keepaliveMaxBytes` (60 KiB by default, leaving room for other scripts) and sent
 * one after another.
 */

export interface PageLifecycle {
  /** Calls `onHide` whenever the page is hidden or unloaded; the returned function stops listening. */
  subscribe(onHide: () => void): () => void;
}

export interface ListenerTarget {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** The page's lifecycle from a document and window (the globals by default); undefined outside a page. */
export function browserPage(
  doc: (ListenerTarget & { visibilityState?: string }) | undefined = (globalThis as { document?: ListenerTarget & { visibilityState?: string } }).document,
  win: ListenerTarget | undefined = globalThis as unknown as ListenerTarget,
): PageLifecycle | undefined {
  if (!doc || typeof doc.addEventListener !== "function" || !win || typeof win.addEventListener !== "function") return undefined;
  return {
    subscribe(onHide) {
      const visibility = () => {
        if (doc.visibilityState === "hidden") onHide();
      };
      doc.addEventListener("visibilitychange", visibility);
      win.addEventListener("pagehide", onHide);
      return () => {
        doc.removeEventListener("visibilitychange", visibility);
        win.removeEventListener("pagehide", onHide);
      };
    },
  };
}

/** The keepalive budget the Fetch standard gives a page (64 KiB), less room for other keepalive requests. */
export const KEEPALIVE_MAX_BYTES = 60 * 1024;

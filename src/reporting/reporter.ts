import type { ErrorReporter } from "./types.ts";

export type { ErrorContext, ErrorReporter } from "./types.ts";

/**
 * Sentry, loaded on the first error: toucan-js and the Sentry core it brings are evaluated only when
 * SENTRY_DSN is set and something went wrong. In the Worker bundle an eager import slowed every
 * Durable Object's start and made local workerd restart under a 500-key fan-out.
 */
export function lazySentry(dsn: string, environment: string, release: string): ErrorReporter {
  let loaded: Promise<ErrorReporter> | undefined;
  return (error, context) => {
    loaded ??= import("./sentry.ts").then((m) => m.sentryReporter(dsn, environment, release));
    const sent = loaded.then((report) => report(error, context)).catch(() => undefined);
    context.waitUntil?.(sent);
  };
}

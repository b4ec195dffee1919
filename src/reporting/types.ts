/** What an unexpected error is reported with: the request (method and path only), its tenant and correlation ID. */
export interface ErrorContext {
  request: Request;
  requestId?: string;
  tenant?: string;
  /** Keeps the report's delivery alive after the response (Workers' ctx.waitUntil); in the background otherwise. */
  waitUntil?: (promise: Promise<unknown>) => void;
}

export type ErrorReporter = (error: unknown, context: ErrorContext) => void;

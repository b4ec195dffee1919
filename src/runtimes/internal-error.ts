/** The answer to an error that escaped the app, on every host: JSON, nothing of the error itself (that goes to the log). */
export function internalErrorResponse(error: unknown): Response {
  console.error("keyflow: unhandled error", error);
  return Response.json({ error: { code: "internal", message: "internal error" } }, { status: 500 });
}

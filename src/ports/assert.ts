/** An invariant of the code itself (not of its input): a failure is a bug, and stops the operation. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}

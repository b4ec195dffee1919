// kafkajs 2.2.4 (unmaintained since 2023) re-arms a timer after every pending-queue check, and when
// nothing is pending and nothing throttled its delay is `-1 - Date.now()`: every broker connection
// then spins on a 1 ms timer for as long as it is open (tulios/kafkajs#1704; the warning it prints
// under Bun and Node ≥ 24 is #1751). The fix proposed there (PR #1768's review) is applied here: with
// nothing pending and no throttle, schedule nothing — a request that cannot go at once re-schedules
// the check when it is queued, and one in flight checks the queue when it completes.
// @ts-expect-error kafkajs ships no types for its internals.
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

/** The delay kafkajs uses between checks while requests are pending (CHECK_PENDING_REQUESTS_INTERVAL). */
const CHECK_PENDING_MS = 10;

interface Queue {
  throttledUntil: number;
  pending: unknown[];
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
}

const proto = (RequestQueue as { prototype?: Record<string, unknown> }).prototype;
let patched = false;
if (proto && typeof proto.scheduleCheckPendingRequests === "function" && typeof proto.checkPendingRequests === "function") {
  proto.scheduleCheckPendingRequests = function (this: Queue): void {
    if (this.throttleCheckTimeoutId) return;
    let delayMs = this.throttledUntil - Date.now();
    if (this.pending.length > 0) delayMs = delayMs > 0 ? delayMs : CHECK_PENDING_MS;
    else if (delayMs <= 0) return;
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, delayMs);
  };
  patched = true;
}

/** Whether the fix is in place (not if a kafkajs release changed the queue's shape). */
export const KAFKAJS_IDLE_FIX = patched;

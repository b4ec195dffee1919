import { expect, test } from "bun:test";
import { KAFKAJS_IDLE_FIX } from "../../src/sinks/kafka/kafkajs-idle-fix.ts";
// @ts-expect-error kafkajs ships no types for its internals.
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

const logger = { debug() {}, info() {}, warn() {}, error() {} };
const queue = () => new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1_000, enforceRequestTimeout: true, clientId: "t", broker: "b", logger });

test("an idle kafkajs request queue arms no timer (tulios/kafkajs#1704: it spun on a 1 ms one)", () => {
  expect(KAFKAJS_IDLE_FIX).toBe(true);
  const idle = queue();
  idle.scheduleCheckPendingRequests();
  expect(idle.throttleCheckTimeoutId).toBeNull();
});

test("pending requests, or a throttle, still get their check", () => {
  const pending = queue();
  pending.pending.push({});
  pending.scheduleCheckPendingRequests();
  expect(pending.throttleCheckTimeoutId).not.toBeNull();
  clearTimeout(pending.throttleCheckTimeoutId);

  const throttled = queue();
  throttled.throttledUntil = Date.now() + 60_000;
  throttled.scheduleCheckPendingRequests();
  expect(throttled.throttleCheckTimeoutId).not.toBeNull();
  clearTimeout(throttled.throttleCheckTimeoutId);
});

import { contractSuite } from "./contract.ts";
import { processTarget, WORKERD_SERVER } from "../support/targets.ts";

contractSuite("Cloudflare Worker + Durable Objects (workerd)", async () => {
  const target = processTarget(WORKERD_SERVER);
  await target.start();
  return target;
});

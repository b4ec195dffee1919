import { contractSuite } from "./contract.ts";
import { processTarget, WORKERD_SERVER } from "../support/targets.ts";

contractSuite("Cloudflare Worker + Durable Objects (workerd)", async (env) => {
  const target = processTarget(WORKERD_SERVER, env);
  await target.start();
  return target;
});

import { contractSuite } from "./contract.ts";
import { BUN_SERVER, processTarget } from "../support/targets.ts";

contractSuite("Bun server (bun:sqlite)", async (env) => {
  const target = processTarget(BUN_SERVER, env);
  await target.start();
  return target;
});

import { contractSuite } from "./contract.ts";
import { DENO_SERVER, processTarget } from "../support/targets.ts";

contractSuite("Deno server (node:sqlite)", async (env) => {
  const target = processTarget(DENO_SERVER, env);
  await target.start();
  return target;
});

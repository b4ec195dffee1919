import { contractSuite } from "./contract.ts";
import { DENO_SERVER, processTarget } from "../support/targets.ts";

contractSuite("Deno server (node:sqlite)", async () => {
  const target = processTarget(DENO_SERVER);
  await target.start();
  return target;
});

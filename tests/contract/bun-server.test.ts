import { contractSuite } from "./contract.ts";
import { BUN_SERVER, processTarget } from "../support/targets.ts";

contractSuite("Bun server (bun:sqlite)", async () => {
  const target = processTarget(BUN_SERVER);
  await target.start();
  return target;
});

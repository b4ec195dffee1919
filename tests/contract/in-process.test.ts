import { contractSuite } from "./contract.ts";
import { inProcessTarget } from "../support/targets.ts";

contractSuite("in-process app (SQLite)", async (env) => inProcessTarget(env));

import { z } from "zod";

export const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
export const postgresUrl = z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// URL" });
/** https:// (Upstash's REST API) or redis:// / rediss:// (a Redis server, natively: the self-hosted server only). */
export const redisUrl = z.url({ protocol: /^(https?|rediss?)$/, error: "must be a redis://, rediss:// or https:// URL" });

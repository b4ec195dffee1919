import { z } from "zod";

export const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });
export const postgresUrl = z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// URL" });

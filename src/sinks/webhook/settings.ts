import type { EnvReader } from "../../settings/reader.ts";
import { httpUrl } from "../urls.ts";
import { secretProblems } from "./signing.ts";
import type { WebhookSinkOptions } from "./sink.ts";

/**
 * KEYFLOW_WEBHOOK_URL turns the webhook sink on; it needs KEYFLOW_WEBHOOK_SECRET to sign: a Standard
 * Webhooks secret `whsec_<base64 of 24-64 random bytes>`, or several separated by spaces during a
 * rotation (the current one first). A secret without the prefix is used as its UTF-8 bytes (deprecated).
 * A problem with the secret names the variable and never shows its value.
 */
export function webhookSettings(r: EnvReader, timeoutMs: number): WebhookSinkOptions | undefined {
  const found = r.get("KEYFLOW_WEBHOOK_URL");
  if (!found) return undefined;
  const url = r.check(httpUrl, found.name, found.value);
  const secret = r.required("KEYFLOW_WEBHOOK_URL", "KEYFLOW_WEBHOOK_SECRET");
  const problems = secret === undefined ? [] : secretProblems(secret);
  for (const problem of problems) r.problem("KEYFLOW_WEBHOOK_SECRET", "<redacted>", problem);
  if (!url || !secret || problems.length) return undefined;
  return { url, secret, timeoutMs };
}

import type { EnvReader } from "../../settings/reader.ts";
import { httpUrl } from "../urls.ts";
import type { WebhookSinkOptions } from "./sink.ts";

/** KEYFLOW_WEBHOOK_URL turns the webhook sink on; it needs KEYFLOW_WEBHOOK_SECRET to sign. */
export function webhookSettings(r: EnvReader, timeoutMs: number): WebhookSinkOptions | undefined {
  const found = r.get("KEYFLOW_WEBHOOK_URL");
  if (!found) return undefined;
  const url = r.check(httpUrl, found.name, found.value);
  const secret = r.required("KEYFLOW_WEBHOOK_URL", "KEYFLOW_WEBHOOK_SECRET");
  if (!url || !secret) return undefined;
  return { url, secret, timeoutMs };
}

import { SinkError } from "../delivery/sink.ts";

/** fetch with a timeout; network failures and timeouts become transient SinkErrors. */
export async function post(url: string, init: RequestInit, timeoutMs: number, what: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, method: "POST", signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const reason = (error as Error)?.name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : (error as Error)?.message;
    throw new SinkError(`${what}: ${reason}`, false);
  }
}

/** 408, 429 and 5xx are worth retrying; any other 4xx means the sink refuses the payload. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export async function statusError(res: Response, what: string, index?: number): Promise<SinkError> {
  const body = (await res.text().catch(() => "")).slice(0, 500);
  return new SinkError(`${what}: HTTP ${res.status} ${body}`.trim(), !isTransientStatus(res.status), index, res.status === 413);
}

const utf8 = new TextEncoder();
const nativeBase64 = typeof (Uint8Array.prototype as { toBase64?: unknown }).toBase64 === "function";

/** Base64 of the UTF-8 bytes of `text`: Uint8Array.prototype.toBase64 where the runtime has it (Bun, recent V8). */
export function base64(text: string): string {
  const bytes = utf8.encode(text);
  if (nativeBase64) return (bytes as Uint8Array & { toBase64(): string }).toBase64();
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

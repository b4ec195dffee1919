/**
 * An incremental text/event-stream parser, as the HTML standard's "event stream interpretation"
 * has it: lines end in CRLF, LF or CR (also across chunk boundaries); a line starting with ":" is a
 * comment (keyflow's heartbeats); `data:` lines join with "\n"; a blank line dispatches the message,
 * unless it had no data; `id` (without NUL) persists for later messages, as the Last-Event-ID to
 * resume from; `retry` takes digits only; a leading BOM is skipped; other fields are ignored.
 */

export interface SseMessage {
  /** "message" when the server named none. */
  event: string;
  data: string;
  /** The last event ID set so far in the stream (this message's or an earlier one's). */
  id: string | undefined;
}

export class SseParser {
  private pending = "";
  private started = false;
  /** The previous chunk ended in CR: a LF starting the next one belongs to that line end. */
  private afterCr = false;
  private event = "";
  private data: string[] = [];
  private hasData = false;
  /** The stream's last event ID (kept across messages, as EventSource's spec has it). */
  lastEventId: string | undefined;
  /** The reconnection time the server asked for (`retry:`), in ms. */
  retryMs: number | undefined;

  constructor(lastEventId?: string) {
    this.lastEventId = lastEventId;
  }

  /** Feeds decoded text; returns the messages it completed. */
  push(text: string): SseMessage[] {
    if (!this.started && text.length) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.afterCr && text.startsWith("\n")) text = text.slice(1);
    this.afterCr = false;
    const out: SseMessage[] = [];
    let buffer = this.pending + text;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(buffer.slice(start, i), out);
      if (c === 13) {
        if (i + 1 === buffer.length) this.afterCr = true;
        else if (buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.pending = buffer.slice(start);
    buffer = "";
    return out;
  }

  /** The stream ended: an unterminated message is discarded, as the standard says. */
  end(): void {
    this.pending = "";
    this.reset();
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === "") return this.dispatch(out);
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
  }

  private dispatch(out: SseMessage[]): void {
    if (this.hasData) out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.lastEventId || undefined });
    this.reset();
  }

  private reset(): void {
    this.event = "";
    this.data = [];
    this.hasData = false;
  }
}

/** One dispatched Server-Sent Event. */
export interface ServerSentEvent {
  /** The `event:` field, "message" when absent. */
  event: string;
  /** The `data:` lines, joined with "\n". */
  data: string;
  /** The last `id:` field seen, if any. */
  id?: string;
}

/**
 * An incremental parser of a `text/event-stream` body, after the HTML
 * standard's "event stream interpretation": lines end in CRLF, LF or CR
 * (also split across chunks), `:` starts a comment, a blank line
 * dispatches, an event without data is dropped.
 */
export class SSEParser {
  private buf = "";
  private afterCR = false;
  private data: string[] = [];
  private event = "";
  private lastId: string | undefined;
  private first = true;

  constructor(
    private readonly onEvent: (e: ServerSentEvent) => void,
    private readonly onComment?: (text: string) => void,
  ) {}

  /** Feeds decoded text. */
  push(chunk: string): void {
    let s = this.buf + chunk;
    if (this.first && s.length > 0) {
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1); // a leading BOM is ignored
      this.first = false;
    }
    let start = 0;
    if (this.afterCR && s[0] === "\n") start = 1;
    this.afterCR = false;
    for (;;) {
      let i = start;
      while (i < s.length && s[i] !== "\n" && s[i] !== "\r") i++;
      if (i >= s.length) break;
      this.line(s.slice(start, i));
      if (s[i] === "\r") {
        if (i + 1 < s.length) {
          start = s[i + 1] === "\n" ? i + 2 : i + 1;
        } else {
          this.afterCR = true;
          start = i + 1;
        }
      } else {
        start = i + 1;
      }
    }
    this.buf = s.slice(start);
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line[0] === ":") {
      this.onComment?.(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      default: // "retry" and unknown fields: ignored
    }
  }

  private dispatch(): void {
    if (this.data.length === 0) {
      this.event = "";
      return;
    }
    const e: ServerSentEvent = { event: this.event || "message", data: this.data.join("\n") };
    if (this.lastId !== undefined) e.id = this.lastId;
    this.data = [];
    this.event = "";
    this.onEvent(e);
  }
}

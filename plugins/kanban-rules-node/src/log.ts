// Logs for the host: one JSON object per line on stderr, in hclog's JSON
// format (@level, @message, @timestamp, then fields), which go-plugin's host
// parses and re-logs at the given level with the fields (a line it cannot
// parse is logged verbatim at debug level). stdout belongs to the handshake.

export type Level = "trace" | "debug" | "info" | "warn" | "error";

export type Fields = Record<string, string | number | boolean | undefined>;

function write(level: Level, message: string, fields: Fields = {}): void {
  const line: Record<string, unknown> = {
    "@level": level,
    "@message": message,
    "@module": "kanban-rules-node",
    "@timestamp": timestamp(new Date()),
  };
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) {
      line[k] = v;
    }
  }
  try {
    process.stderr.write(JSON.stringify(line) + "\n");
  } catch {
    // stderr is gone: nothing left to tell.
  }
}

export const log = {
  debug: (message: string, fields?: Fields) => write("debug", message, fields),
  info: (message: string, fields?: Fields) => write("info", message, fields),
  warn: (message: string, fields?: Fields) => write("warn", message, fields),
  error: (message: string, fields?: Fields) => write("error", message, fields),
};

/**
 * hclog's timestamp layout, 2006-01-02T15:04:05.000000Z07:00: go-plugin
 * parses exactly six fractional digits and drops the whole line to a raw
 * debug message otherwise.
 */
export function timestamp(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

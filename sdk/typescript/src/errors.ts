/** What {@link SyncplaneError} is built from. */
export interface SyncplaneErrorInit {
  /** What was attempted: "push", "pull" or "events". */
  operation: string;
  /** HTTP status, or 0 when no usable answer came back (protocol error). */
  status: number;
  /** The server's `{"error": "..."}`, when the body had one. */
  serverMessage?: string | undefined;
  /** The server's `details`, when the body had them. */
  details?: string[] | undefined;
  /** From `Retry-After`, in milliseconds, when the answer had one. */
  retryAfterMs?: number | undefined;
  /** Message to use when there is no server message. */
  message?: string | undefined;
  /** Appended to the message, e.g. "after 3 retries". */
  note?: string | undefined;
}

/**
 * A request to syncplane that failed: a non-2xx answer the kit does not
 * handle itself, or a 401/429/503 that retrying did not cure.
 */
export class SyncplaneError extends Error {
  readonly operation: string;
  readonly status: number;
  readonly serverMessage: string | undefined;
  readonly details: string[] | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(init: SyncplaneErrorInit) {
    const what = init.serverMessage ?? init.message ?? "request failed";
    const status = init.status ? `HTTP ${init.status}: ` : "";
    const details = init.details?.length ? ` (${init.details.slice(0, 5).join("; ")}${init.details.length > 5 ? "; …" : ""})` : "";
    const note = init.note ? ` (${init.note})` : "";
    super(`syncplane ${init.operation} failed: ${status}${what}${details}${note}`);
    this.name = "SyncplaneError";
    this.operation = init.operation;
    this.status = init.status;
    this.serverMessage = init.serverMessage;
    this.details = init.details;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** Reads `{"error": "...", "details": [...]}` out of an error body, if it is one. */
export function parseErrorBody(text: string): { error?: string; details?: string[] } {
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const out: { error?: string; details?: string[] } = {};
      if (typeof o.error === "string") out.error = o.error;
      if (Array.isArray(o.details)) out.details = o.details.filter((d): d is string => typeof d === "string");
      return out;
    }
  } catch {
    // not JSON: a proxy's page, say
  }
  return {};
}

/**
 * Parses a `Retry-After` value (delta seconds or an HTTP date) into
 * milliseconds from `now`; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (v === "") return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[a-z]/i.test(v)) return undefined; // an HTTP date names its month
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

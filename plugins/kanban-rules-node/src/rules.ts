// The kanban rules: pure functions over the events of one pushed batch, kept
// apart from the gRPC plumbing so they can be tested on their own.

/** The longest todo title, in Unicode code points (as Go's utf8.RuneCountInString counts). */
export const MAX_TITLE_LENGTH = 200;

/** One event of a ValidateRequest (syncplane.validator.v1.Event, field names as in the proto). */
export interface Event {
  id: string;
  model: string;
  /** create, update or delete */
  operation: string;
  /** JSON array of the primary key values */
  key_json: string;
  /** the validated record as a JSON object */
  payload_json: string;
  scope: string;
}

/** The verdict on one event (syncplane.validator.v1.Verdict). */
export interface Verdict {
  allow: boolean;
  /** why it is rejected (allow = false); empty when allowed */
  message: string;
}

/**
 * A contract violation by the host (a payload that is not a JSON object).
 * Not a verdict: the call fails, and the host treats it as a plugin failure.
 */
export class BadRequestError extends Error {
  override name = "BadRequestError";
}

const allow: Verdict = Object.freeze({ allow: true, message: "" });

function reject(message: string): Verdict {
  return { allow: false, message };
}

/** Returns one verdict per event, in the order of the events. */
export function check(events: readonly Event[]): Verdict[] {
  return events.map((ev, i) => checkEvent(ev, i));
}

function checkEvent(ev: Event, index: number): Verdict {
  // A delete carries no new title or name to check.
  if (ev.operation !== "create" && ev.operation !== "update") {
    return allow;
  }
  switch (ev.model) {
    case "Todo": {
      const title = payload(ev, index)["title"];
      if (typeof title === "string") {
        const n = codePoints(title);
        if (n > MAX_TITLE_LENGTH) {
          return reject(`todo title must be at most ${MAX_TITLE_LENGTH} characters (it has ${n})`);
        }
      }
      return allow;
    }
    case "Board": {
      const name = payload(ev, index)["name"];
      if (typeof name !== "string" || name.trim() === "") {
        return reject("board name must not be empty");
      }
      return allow;
    }
    default:
      return allow;
  }
}

function payload(ev: Event, index: number): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(ev.payload_json);
  } catch {
    v = undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new BadRequestError(`event ${index} (${ev.model} ${ev.id}): payload_json is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

/** The length of s in Unicode code points (a surrogate pair counts once). */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) {
    n++;
  }
  return n;
}

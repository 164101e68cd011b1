import { memoryCursor } from "./cursor.js";
import { SyncplaneError } from "./errors.js";
import { Transport, errorOf, type ConnectionOptions, type RetryOptions } from "./http.js";
import {
  PAYLOAD_TOO_LARGE,
  type ChangelogEntry,
  type CursorStore,
  type OutboxEvent,
  type PullPage,
  type PushErrorType,
  type PushResult,
} from "./types.js";

/** What {@link createSyncplaneHandlers} is told. */
export interface SyncplaneHandlersOptions extends ConnectionOptions, RetryOptions {
  /**
   * Pull only this scope (its cursor is then the last entry's id). Default:
   * every scope the subject may pull, behind one opaque `c1.…` cursor.
   */
  scopeKey?: string;
  /** Entries per pull page (default: the tenant's `pullPageSize`). */
  pullLimit?: number;
  /** Where the pull cursor is kept (default: {@link memoryCursor}). */
  cursor?: CursorStore;
  /**
   * Called when a pull is answered 410 (the cursor is older than the
   * tombstones the tenant retains, so deletions may have been missed).
   * Reset the local data here if stale records matter (records deleted on
   * the server while the device was away would otherwise stay). When it
   * returns, the kit clears the stored cursor and pulls again from the
   * beginning; when it throws, the cursor is left as it is and the pull
   * fails (so the next sync asks again).
   */
  onResync?: (info: { cursor: string | undefined; message: string }) => void | Promise<void>;
  /** Passed to the worker as `push.batchSize` (prisma-idb's default is 10). */
  batchSize?: number;
  /**
   * Never send more than this many events in one request: a larger batch is
   * sent in chunks, one after the other. Default: no limit (a 413 splits the
   * batch anyway; the demo tenant's `maxBatch` is 100).
   */
  maxEventsPerRequest?: number;
}

/**
 * The handlers, in the shape of prisma-idb's `createSyncWorker` options:
 * `client.createSyncWorker({ ...handlers, schedule })`.
 */
export interface SyncplaneHandlers<Log = ChangelogEntry> {
  push: {
    /** Pushes the events and returns one result per event, in order. */
    handler: (events: readonly OutboxEvent[]) => Promise<PushResult[]>;
    batchSize?: number;
  };
  pull: {
    /** Pulls the page after `cursor` (from the beginning when undefined). */
    handler: (cursor?: string) => Promise<PullPage<Log>>;
    getCursor: CursorStore["getCursor"];
    setCursor: CursorStore["setCursor"];
  };
}

/** The fields of an outbox event the server knows (it refuses unknown ones). */
const EVENT_FIELDS = [
  "id",
  "entityType",
  "operation",
  "payload",
  "createdAt",
  "tries",
  "lastError",
  "synced",
  "syncedAt",
  "retryable",
  "lastAttemptedAt",
] as const;

function wireEvent(e: OutboxEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of EVENT_FIELDS) {
    const v = (e as unknown as Record<string, unknown>)[f];
    if (v !== undefined) out[f] = v;
  }
  return out;
}

/**
 * Creates prisma-idb sync handlers that talk to syncplane:
 * `POST {baseUrl}/v1/tenants/{tenant}/push` and `.../pull`.
 *
 * - 401: the token is refreshed once (`getToken({forceRefresh: true})`) and
 *   the request sent again.
 * - 413 on push: the batch is split in halves, recursively, and the results
 *   merged in order; an event that alone is still too large gets a
 *   non-retryable `PAYLOAD_TOO_LARGE` result.
 * - 429/503: the request is sent again after `Retry-After` (seconds or an
 *   HTTP date), at most `maxRetries` times; then the handler throws.
 * - 410 on pull: `onResync`, then the cursor is cleared and the pull starts
 *   over from the beginning.
 * - any other non-2xx: throws a {@link SyncplaneError} with the status and
 *   the server's message.
 *
 * `Log` is the type of the pulled entries; it is inferred from where the
 * handlers are used (prisma-idb's `LogWithStringifiedRecord<typeof validators>`
 * inside `createSyncWorker`).
 */
export function createSyncplaneHandlers<Log = ChangelogEntry>(options: SyncplaneHandlersOptions): SyncplaneHandlers<Log> {
  const transport = new Transport(options, options);
  const store = options.cursor ?? memoryCursor();
  const maxPerRequest = options.maxEventsPerRequest;
  if (maxPerRequest !== undefined && !(Number.isInteger(maxPerRequest) && maxPerRequest >= 1)) {
    throw new RangeError("maxEventsPerRequest must be a positive integer");
  }

  async function pushChunk(events: readonly OutboxEvent[]): Promise<PushResult[]> {
    const answer = await transport.post("push", JSON.stringify({ events: events.map(wireEvent) }));
    if (answer.status === 413) {
      if (events.length === 1) {
        const e = events[0]!;
        const server = errorOf("push", answer).serverMessage;
        return [
          {
            id: e.id,
            appliedChangelogId: null,
            error: {
              type: PAYLOAD_TOO_LARGE as PushErrorType, // see SyncplaneErrorType
              message: `the event alone is larger than the server accepts${server ? `: ${server}` : ""}`,
              retryable: false,
            },
          },
        ];
      }
      const mid = Math.ceil(events.length / 2);
      const first = await pushChunk(events.slice(0, mid));
      const second = await pushChunk(events.slice(mid));
      return [...first, ...second];
    }
    if (answer.status < 200 || answer.status > 299) throw errorOf("push", answer);
    const results = parseJSON("push", answer.text);
    if (!Array.isArray(results) || results.length !== events.length) {
      throw new SyncplaneError({
        operation: "push",
        status: answer.status,
        message: `expected an array of ${events.length} results, got ${Array.isArray(results) ? `${results.length}` : typeof results}`,
      });
    }
    return results as PushResult[];
  }

  async function push(events: readonly OutboxEvent[]): Promise<PushResult[]> {
    if (events.length === 0) return [];
    if (maxPerRequest === undefined || events.length <= maxPerRequest) return pushChunk(events);
    const out: PushResult[] = [];
    for (let i = 0; i < events.length; i += maxPerRequest) {
      out.push(...(await pushChunk(events.slice(i, i + maxPerRequest))));
    }
    return out;
  }

  async function pullOnce(cursor: string | undefined) {
    const body = JSON.stringify({ lastChangelogId: cursor, limit: options.pullLimit, scopeKey: options.scopeKey });
    return transport.post("pull", body);
  }

  async function pull(cursor?: string): Promise<PullPage<Log>> {
    let answer = await pullOnce(cursor);
    if (answer.status === 410) {
      const message = errorOf("pull", answer).serverMessage ?? "cursor too old";
      await options.onResync?.({ cursor, message });
      await store.setCursor(undefined);
      answer = await pullOnce(undefined);
    }
    if (answer.status < 200 || answer.status > 299) throw errorOf("pull", answer);
    const page = parseJSON("pull", answer.text) as { cursor?: unknown; logsWithRecords?: unknown } | null;
    if (!page || typeof page !== "object" || !Array.isArray(page.logsWithRecords)) {
      throw new SyncplaneError({ operation: "pull", status: answer.status, message: "expected {cursor, logsWithRecords}" });
    }
    const next = typeof page.cursor === "string" ? page.cursor : undefined;
    return { cursor: next, logsWithRecords: page.logsWithRecords as Log[] };
  }

  const handlers: SyncplaneHandlers<Log> = {
    push: { handler: push },
    pull: { handler: pull, getCursor: store.getCursor, setCursor: store.setCursor },
  };
  if (options.batchSize !== undefined) handlers.push.batchSize = options.batchSize;
  return handlers;
}

function parseJSON(operation: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new SyncplaneError({ operation, status: 0, message: `the answer is not JSON: ${text.slice(0, 100)}` });
  }
}

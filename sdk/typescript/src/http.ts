import { SyncplaneError, parseErrorBody, parseRetryAfter } from "./errors.js";
import type { FetchLike, GetToken } from "./types.js";

/** Connection settings shared by the handlers and the subscription. */
export interface ConnectionOptions {
  /** The server's origin and base path, e.g. `https://sync.example.com`. */
  baseUrl: string;
  /** The tenant id, e.g. `demo`. */
  tenant: string;
  /**
   * Returns the bearer token (a JWT signed with the tenant's key). Called
   * before each request with `forceRefresh: false`, so cache it; called with
   * `forceRefresh: true` once after the server answers 401.
   */
  getToken: GetToken;
  /** The fetch to use (default: the global `fetch`). */
  fetch?: FetchLike;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** Retry settings for push and pull requests. */
export interface RetryOptions {
  /**
   * How many times a request answered 429 or 503 is sent again before the
   * handler throws (default 3). The worker's own backoff takes over then.
   */
  maxRetries?: number;
  /**
   * The longest wait between two tries (default 30 000 ms). A `Retry-After`
   * longer than this is not waited for: the handler throws at once, with
   * the wait in `SyncplaneError.retryAfterMs`.
   */
  maxRetryDelayMs?: number;
  /** Base wait when a 429/503 has no `Retry-After` (default 500 ms, doubled per try). */
  retryBaseDelayMs?: number;
  /** Time limit of one request, body included (default 60 000 ms; 0: none). */
  timeoutMs?: number;
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** Builds `{baseUrl}/v1/tenants/{tenant}/{route}`. */
export function tenantUrl(baseUrl: string, tenant: string, route: string): string {
  return `${baseUrl.replace(/\/+$/, "")}/v1/tenants/${encodeURIComponent(tenant)}/${route}`;
}

export function resolveFetch(f: FetchLike | undefined): FetchLike {
  if (f) return f;
  if (typeof globalThis.fetch !== "function") {
    throw new Error("@syncplane/client: no global fetch; pass the fetch option");
  }
  return (input, init) => globalThis.fetch(input, init);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Posts a JSON body and reads the whole answer. It refreshes the token once
 * on 401 and retries 429/503 (honouring `Retry-After`) up to maxRetries
 * times; every other status, and a 401/429/503 it gives up on, is returned
 * or thrown as the caller's `check` decides.
 */
export class Transport {
  private readonly fetch: FetchLike;
  private readonly maxRetries: number;
  private readonly maxRetryDelayMs: number;
  private readonly retryBaseDelayMs: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly conn: ConnectionOptions,
    retry: RetryOptions = {},
  ) {
    this.fetch = resolveFetch(conn.fetch);
    this.maxRetries = retry.maxRetries ?? 3;
    this.maxRetryDelayMs = retry.maxRetryDelayMs ?? 30_000;
    this.retryBaseDelayMs = retry.retryBaseDelayMs ?? 500;
    this.timeoutMs = retry.timeoutMs ?? 60_000;
  }

  async post(route: string, body: string): Promise<Answer> {
    const url = tenantUrl(this.conn.baseUrl, this.conn.tenant, route);
    let refreshed = false;
    let token = await this.conn.getToken({ forceRefresh: false });
    for (let tries = 0; ; ) {
      const answer = await this.once(url, token, body);
      if (answer.status === 401 && !refreshed) {
        refreshed = true;
        token = await this.conn.getToken({ forceRefresh: true });
        continue;
      }
      if (answer.status === 429 || answer.status === 503) {
        const retryAfterMs = parseRetryAfter(answer.headers.get("retry-after"));
        const wait = retryAfterMs ?? this.retryBaseDelayMs * 2 ** tries * (0.5 + Math.random() / 2);
        if (tries >= this.maxRetries) {
          throw errorOf(route, answer, retryAfterMs, tries ? `gave up after ${tries} ${tries === 1 ? "retry" : "retries"}` : undefined);
        }
        if (wait > this.maxRetryDelayMs) {
          throw errorOf(route, answer, retryAfterMs, `the server asks to wait ${Math.ceil(wait / 1000)} s, more than maxRetryDelayMs`);
        }
        tries++;
        await sleep(wait);
        continue;
      }
      return answer;
    }
  }

  private async once(url: string, token: string, body: string): Promise<Answer> {
    const ac = this.timeoutMs > 0 ? new AbortController() : undefined;
    const timer = ac ? setTimeout(() => ac.abort(new Error(`request timed out after ${this.timeoutMs} ms`)), this.timeoutMs) : undefined;
    try {
      const init: RequestInit = {
        method: "POST",
        headers: {
          ...this.conn.headers,
          Authorization: `Bearer ${token}`,
          "Content-Type": "application/json",
          Accept: "application/json",
        },
        body,
      };
      if (ac) init.signal = ac.signal;
      const res = await this.fetch(url, init);
      const text = await res.text();
      return { status: res.status, headers: res.headers, text };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}

/** The error for a non-2xx answer. */
export function errorOf(operation: string, answer: Answer, retryAfterMs?: number, note?: string): SyncplaneError {
  const { error, details } = parseErrorBody(answer.text);
  const raw = answer.text.trim();
  return new SyncplaneError({
    operation,
    status: answer.status,
    serverMessage: error,
    details,
    retryAfterMs,
    message: raw ? raw.slice(0, 200) : "no error message",
    note,
  });
}

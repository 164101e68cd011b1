import { SyncplaneError, parseRetryAfter } from "./errors.js";
import { errorOf, resolveFetch, sleep, tenantUrl, type ConnectionOptions } from "./http.js";
import { SSEParser } from "./sse.js";

/** A "poke": a scope the subject may pull got a commit. A hint, not data. */
export interface Poke {
  scopeKey: string;
  /** The scope's last changelog id after the commit. */
  changelogId: string;
}

/** What {@link subscribe} is told. */
export interface SubscribeOptions extends ConnectionOptions {
  /**
   * Called for each poke; typically `syncWhenIdle(worker)`. While the
   * promise it (or onOpen) returned is pending, further pokes are coalesced
   * into one more call (with the latest poke) once it settles.
   */
  onPoke: (poke: Poke) => unknown;
  /**
   * Called each time the stream is (re)connected. Commits made while no
   * stream was open are not poked, so sync here too (typically
   * `syncWhenIdle(worker)`). It runs one at a time with onPoke.
   */
  onOpen?: (info: { reconnected: boolean }) => unknown;
  /**
   * Called when the stream fails or ends and before each reconnect wait,
   * and when onPoke/onOpen throw or reject. Default: nothing.
   */
  onError?: (error: unknown, info: { retryInMs?: number }) => void;
  /** First reconnect wait (default 1 000 ms; doubled per failed try, with jitter). */
  minDelayMs?: number;
  /** Longest reconnect wait (default 30 000 ms). */
  maxDelayMs?: number;
  /**
   * Reconnect when nothing (not even the server's 15 s heartbeat) arrives
   * for this long (default 45 000 ms; 0: never).
   */
  idleTimeoutMs?: number;
  /** Aborting it closes the subscription. */
  signal?: AbortSignal;
}

/** A live subscription; see {@link subscribe}. */
export interface Subscription {
  /** Ends the stream and stops reconnecting. Safe to call more than once. */
  close(): void;
  /** True once the stream is open and until it ends. */
  readonly connected: boolean;
  /** Settles once the subscription is closed and its stream ended. */
  readonly closed: Promise<void>;
}

/**
 * Opens `GET {baseUrl}/v1/tenants/{tenant}/events` (Server-Sent Events) with
 * the bearer token and calls `onPoke` on each `poke` event. It reads the
 * stream with fetch (EventSource cannot send an Authorization header),
 * reconnects with exponential backoff and jitter when the stream fails or
 * ends (honouring `Retry-After` on 429/503), refreshes the token once when
 * the server answers 401, and runs until {@link Subscription.close}.
 */
export function subscribe(options: SubscribeOptions): Subscription {
  const f = resolveFetch(options.fetch);
  const url = tenantUrl(options.baseUrl, options.tenant, "events");
  const minDelay = options.minDelayMs ?? 1000;
  const maxDelay = Math.max(minDelay, options.maxDelayMs ?? 30_000);
  const idleTimeout = options.idleTimeoutMs ?? 45_000;
  const stop = new AbortController();
  let current: AbortController | undefined;
  let connected = false;
  let openedThisTry = false;
  let lastUnauthorized: SyncplaneError | undefined;

  const report = (err: unknown, retryInMs?: number) => {
    try {
      options.onError?.(err, retryInMs === undefined ? {} : { retryInMs });
    } catch {
      // a failing onError must not end the subscription
    }
  };

  // onPoke and onOpen run one at a time: what comes while a call is
  // pending becomes one more call (the latest) once it settles.
  let running = false;
  let pending: (() => unknown) | undefined;
  const run = (call: () => unknown) => {
    if (running) {
      pending = call;
      return;
    }
    running = true;
    void (async () => {
      try {
        await call();
      } catch (err) {
        report(err);
      } finally {
        running = false;
        const next = pending;
        pending = undefined;
        if (next && !stop.signal.aborted) run(next);
      }
    })();
  };
  const deliver = (p: Poke) => run(() => options.onPoke(p));

  const close = () => {
    stop.abort();
    current?.abort();
  };
  if (options.signal) {
    if (options.signal.aborted) close();
    else options.signal.addEventListener("abort", close, { once: true });
  }

  async function connectOnce(forceRefresh: boolean, opened: boolean): Promise<"unauthorized" | "ended"> {
    const ac = new AbortController();
    current = ac;
    if (stop.signal.aborted) ac.abort();
    const token = await options.getToken({ forceRefresh });
    const res = await f(url, {
      method: "GET",
      // Only headers that syncplane's CORS preflight allows (Authorization)
      // or that need none (Accept): a browser page on another origin
      // must be able to open the stream.
      headers: { ...options.headers, Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
      signal: ac.signal,
    });
    if (res.status === 401) {
      lastUnauthorized = errorOf("events", { status: 401, headers: res.headers, text: await res.text().catch(() => "") });
      return "unauthorized";
    }
    if (res.status < 200 || res.status > 299) {
      const text = await res.text().catch(() => "");
      throw errorOf("events", { status: res.status, headers: res.headers, text }, parseRetryAfter(res.headers.get("retry-after")));
    }
    const type = res.headers.get("content-type") ?? "";
    if (!res.body || !type.toLowerCase().startsWith("text/event-stream")) {
      await res.body?.cancel().catch(() => {});
      throw new SyncplaneError({ operation: "events", status: res.status, message: `expected text/event-stream, got "${type}"` });
    }
    connected = true;
    openedThisTry = true;
    try {
      const onOpen = options.onOpen;
      if (onOpen) run(() => onOpen({ reconnected: opened }));
      const parser = new SSEParser((e) => {
        if (e.event !== "poke") return;
        let poke: Poke;
        try {
          poke = JSON.parse(e.data) as Poke;
        } catch (err) {
          report(new SyncplaneError({ operation: "events", status: res.status, message: `poke data is not JSON: ${e.data.slice(0, 100)}` }));
          return;
        }
        deliver(poke);
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let idle: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        if (idleTimeout <= 0) return;
        if (idle !== undefined) clearTimeout(idle);
        idle = setTimeout(() => ac.abort(new Error(`no data for ${idleTimeout} ms`)), idleTimeout);
      };
      try {
        arm();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          arm();
          parser.push(decoder.decode(value, { stream: true }));
        }
      } finally {
        if (idle !== undefined) clearTimeout(idle);
        reader.releaseLock();
        await res.body.cancel().catch(() => {});
      }
      return "ended";
    } finally {
      connected = false;
    }
  }

  const closed = (async () => {
    let failures = 0;
    let opened = false;
    let forceRefresh = false;
    while (!stop.signal.aborted) {
      let err: unknown;
      let retryAfterMs: number | undefined;
      openedThisTry = false;
      try {
        const outcome = await connectOnce(forceRefresh, opened);
        if (outcome === "unauthorized") {
          if (!forceRefresh) {
            forceRefresh = true; // refresh the token once and reconnect at once
            continue;
          }
          err = lastUnauthorized ?? new SyncplaneError({ operation: "events", status: 401, message: "unauthorized" });
          forceRefresh = false;
        } else {
          forceRefresh = false;
          err = new SyncplaneError({ operation: "events", status: 0, message: "the stream ended" });
        }
      } catch (e) {
        if (stop.signal.aborted) break;
        err = e;
        if (e instanceof SyncplaneError) retryAfterMs = e.retryAfterMs;
        forceRefresh = false;
      }
      if (stop.signal.aborted) break;
      if (openedThisTry) {
        opened = true;
        failures = 0; // the connection worked: start the backoff over
      }
      const base = Math.min(maxDelay, minDelay * 2 ** failures);
      let wait = base / 2 + Math.random() * (base / 2);
      if (retryAfterMs !== undefined) wait = Math.max(wait, Math.min(retryAfterMs, maxDelay));
      failures++;
      report(err, Math.round(wait));
      await sleep(wait, stop.signal);
    }
  })();

  return {
    close,
    get connected() {
      return connected;
    },
    closed,
  };
}

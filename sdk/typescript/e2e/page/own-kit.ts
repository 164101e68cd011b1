// A minimal stand-in for the shared kit (sdk/typescript/src/index.ts), with
// the subset of its API that the e2e page uses. build.mjs bundles the shared
// kit; this one only with SYNCPLANE_E2E_OWN_KIT=1, to tell a kit bug from a
// server bug.

export interface KitOptions {
  baseUrl: string;
  tenant: string;
  getToken: (opts: { forceRefresh: boolean }) => string | Promise<string>;
}

export function localStorageCursor(key: string) {
  return {
    getCursor: async () => localStorage.getItem(key) ?? undefined,
    setCursor: async (c: string | undefined) => {
      if (c === undefined || c === null) localStorage.removeItem(key);
      else localStorage.setItem(key, c);
    },
  };
}

function endpoint(o: KitOptions, path: string): string {
  return `${o.baseUrl.replace(/\/+$/, "")}/v1/tenants/${encodeURIComponent(o.tenant)}/${path}`;
}

async function post(o: KitOptions, path: string, body: unknown): Promise<any> {
  const res = await fetch(endpoint(o, path), {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${await o.getToken({ forceRefresh: false })}` },
    body: JSON.stringify(body),
  });
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new Error(`${path} failed with status ${res.status}: ${text.slice(0, 500)}`);
  }
  return res.json();
}

export function createSyncplaneHandlers(
  o: KitOptions & { cursor: ReturnType<typeof localStorageCursor>; batchSize?: number },
): any {
  return {
    push: {
      handler: async (events: unknown[]) => post(o, "push", { events }),
      batchSize: o.batchSize,
    },
    pull: {
      handler: async (cursor?: string) => post(o, "pull", cursor ? { lastChangelogId: cursor } : {}),
      getCursor: o.cursor.getCursor,
      setCursor: o.cursor.setCursor,
    },
  };
}

export interface SubscribeOptions extends KitOptions {
  onPoke: (poke: { scopeKey: string; changelogId: string }) => void;
  onOpen?: (info: { reconnected: boolean }) => unknown;
  onError?: (err: unknown, info: { retryInMs?: number }) => void;
  minDelayMs?: number;
}

// subscribe reads GET /v1/tenants/{t}/events (Server-Sent Events) with fetch,
// since EventSource cannot send an Authorization header, and reconnects
// after retryMs when the stream ends or fails.
export function subscribe(o: SubscribeOptions): { close: () => void; readonly connected: boolean } {
  let closed = false;
  let ctrl: AbortController | null = null;
  const retryMs = o.minDelayMs ?? 500;
  let opened = false;
  let connected = false;
  const run = async () => {
    while (!closed) {
      ctrl = new AbortController();
      try {
        const res = await fetch(endpoint(o, "events"), {
          headers: { Authorization: `Bearer ${await o.getToken({ forceRefresh: false })}`, Accept: "text/event-stream" },
          signal: ctrl.signal,
        });
        if (!res.ok || !res.body) throw new Error(`events failed with status ${res.status}`);
        connected = true;
        void o.onOpen?.({ reconnected: opened });
        opened = true;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i: number;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let event = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
            }
            if (event === "poke" && data.length > 0) {
              try {
                o.onPoke(JSON.parse(data.join("\n")));
              } catch (err) {
                o.onError?.(err, {});
              }
            }
          }
        }
      } catch (err) {
        connected = false;
        if (closed) return;
        o.onError?.(err, { retryInMs: retryMs });
      }
      connected = false;
      if (!closed) await new Promise((r) => setTimeout(r, retryMs));
    }
  };
  void run();
  return {
    close() {
      closed = true;
      ctrl?.abort();
    },
    get connected() {
      return connected;
    },
  };
}

// syncWhenIdle: syncNow() once the worker has no cycle in progress.
export function syncWhenIdle(worker: any): () => Promise<void> {
  const busy = (s: string) => s === "PUSHING" || s === "PULLING";
  return async () => {
    await new Promise<void>((resolve) => {
      const off = worker.on("statuschange", (e: any) => {
        if (!busy(e.detail?.status)) {
          off();
          resolve();
        }
      });
      if (!busy(worker.status.status)) {
        off();
        resolve();
      }
    });
    await worker.syncNow();
  };
}

// Unit tests of the pieces that need no server: the SSE parser, Retry-After
// parsing and the cursor stores.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SSEParser, createSyncplaneHandlers, localStorageCursor, memoryCursor, parseRetryAfter, subscribe, syncWhenIdle } from "../dist/index.js";

function parse(chunks) {
  const events = [];
  const comments = [];
  const p = new SSEParser(
    (e) => events.push(e),
    (c) => comments.push(c),
  );
  for (const c of chunks) p.push(c);
  return { events, comments };
}

test("SSE: syncplane's stream", () => {
  const { events, comments } = parse([
    ': connected\n\nevent: poke\ndata: {"scopeKey": "u1", "changelogId": "019a"}\n\n: heartbeat\n\n',
  ]);
  assert.deepEqual(comments, ["connected", "heartbeat"]);
  assert.deepEqual(events, [{ event: "poke", data: '{"scopeKey": "u1", "changelogId": "019a"}' }]);
});

test("SSE: any split into chunks, CRLF and CR line ends", () => {
  const text = "event: poke\r\ndata: a\r\ndata:b\r\rdata: c\n\nid: 7\nevent: x\ndata\n\n";
  const want = [
    { event: "poke", data: "a\nb" },
    { event: "message", data: "c" },
    { event: "x", data: "", id: "7" },
  ];
  for (let size = 1; size <= text.length; size++) {
    const chunks = [];
    for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
    assert.deepEqual(parse(chunks).events, want, `chunks of ${size}`);
  }
});

test("SSE: an event without data is dropped; an unfinished event is not dispatched; BOM", () => {
  assert.deepEqual(parse(["\ufeffevent: poke\n\ndata: x\n\ndata: half"]).events, [{ event: "message", data: "x" }]);
});

test("parseRetryAfter: seconds, HTTP date, junk", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("5", now), 5000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:07 GMT", now), 7000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0, "a past date: no wait");
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter("-1", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter("", now), undefined);
});

test("memoryCursor", async () => {
  const c = memoryCursor();
  assert.equal(await c.getCursor(), undefined);
  await c.setCursor("c1.a");
  const { getCursor } = c; // unbound use, as createSyncWorker does
  assert.equal(await getCursor(), "c1.a");
  await c.setCursor(undefined);
  assert.equal(await c.getCursor(), undefined);
  assert.equal(await memoryCursor("x").getCursor(), "x");
});

test("localStorageCursor", async () => {
  const m = new Map();
  const storage = { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
  const c = localStorageCursor("sync:cursor", storage);
  assert.equal(await c.getCursor(), undefined);
  await c.setCursor("c1.b");
  assert.equal(m.get("sync:cursor"), "c1.b");
  assert.equal(await c.getCursor(), "c1.b");
  await c.setCursor(undefined);
  assert.equal(m.has("sync:cursor"), false);

  // The global localStorage is looked up when used, not when created.
  const saved = Object.getOwnPropertyDescriptor(globalThis, "localStorage");
  try {
    Object.defineProperty(globalThis, "localStorage", { value: undefined, configurable: true, writable: true });
    const g = localStorageCursor("k");
    await assert.rejects(g.getCursor(), /localStorage is not available/);
    globalThis.localStorage = storage;
    await g.setCursor("c1.c");
    assert.equal(m.get("k"), "c1.c");
  } finally {
    if (saved) Object.defineProperty(globalThis, "localStorage", saved);
    else delete globalThis.localStorage;
  }
});

test("requests carry only headers a cross-origin page may send to syncplane", async () => {
  // syncplane's CORS preflight allows Authorization, Content-Type,
  // Last-Event-ID and X-Request-Id; Accept needs no preflight.
  const allowed = new Set(["authorization", "content-type", "accept", "last-event-id", "x-request-id"]);
  const sent = [];
  const fakeFetch = async (url, init) => {
    sent.push({ url, headers: Object.keys(init.headers).map((h) => h.toLowerCase()) });
    if (url.endsWith("/events")) return new Response(": connected\n\n", { status: 200, headers: { "Content-Type": "text/event-stream" } });
    if (url.endsWith("/push")) return Response.json(JSON.parse(init.body).events.map((e) => ({ id: e.id, appliedChangelogId: "1", error: null })));
    return Response.json({ cursor: null, logsWithRecords: [] });
  };
  const conn = { baseUrl: "https://sync.example.com", tenant: "demo", getToken: () => "t", fetch: fakeFetch };
  const h = createSyncplaneHandlers(conn);
  await h.push.handler([{ id: "e1", entityType: "User", operation: "create", payload: {}, createdAt: new Date() }]);
  await h.pull.handler();
  let opened;
  const openedP = new Promise((r) => (opened = r));
  const sub = subscribe({ ...conn, onPoke: () => {}, onOpen: opened, minDelayMs: 10_000 });
  await openedP;
  sub.close();
  await sub.closed;
  assert.deepEqual(
    sent.map((s) => new URL(s.url).pathname),
    ["/v1/tenants/demo/push", "/v1/tenants/demo/pull", "/v1/tenants/demo/events"],
  );
  for (const s of sent) for (const h of s.headers) assert.ok(allowed.has(h), `${s.url} sends ${h}`);
});

test("syncWhenIdle waits for a sync in progress, then syncs once", async () => {
  // A stand-in for prisma-idb's SyncWorker: status plus statuschange events.
  const target = new EventTarget();
  const worker = {
    status: { status: "PULLING" },
    syncs: 0,
    async syncNow() {
      this.syncs++;
    },
    on(event, cb) {
      target.addEventListener(event, cb);
      return () => target.removeEventListener(event, cb);
    },
    set(status) {
      this.status = { status };
      target.dispatchEvent(new CustomEvent("statuschange", { detail: { status } }));
    },
  };
  const sync = syncWhenIdle(worker);
  const p = sync();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(worker.syncs, 0, "no syncNow while the worker pulls");
  worker.set("IDLE");
  await p;
  assert.equal(worker.syncs, 1);
  await sync(); // idle: at once
  assert.equal(worker.syncs, 2);

  worker.set("PUSHING");
  const start = Date.now();
  await syncWhenIdle(worker, 50)(); // bounded wait
  assert.ok(Date.now() - start >= 45);
  assert.equal(worker.syncs, 3);
});

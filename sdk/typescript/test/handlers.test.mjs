// createSyncplaneHandlers against a real `syncplane serve` (demo tenant).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { SyncplaneError, createSyncplaneHandlers, memoryCursor } from "../dist/index.js";
import { boardEvent, drainPull, mintToken, startServer, todoEvent, userEvent } from "./helpers.mjs";

/** A fetch that records each request's method, path and status. */
function recordingFetch() {
  const calls = [];
  const f = async (url, init) => {
    const res = await fetch(url, init);
    const body = init.body ? JSON.parse(init.body) : undefined;
    calls.push({ path: new URL(url).pathname, status: res.status, events: body?.events?.length });
    return res;
  };
  return { f, calls };
}

/**
 * Every pushed event is pulled exactly once. Other entries may only be the
 * User the demo tenant creates from the token (rootFromToken), which the
 * pushed User create may or may not replace in the changelog.
 */
function assertPulledOnce(logs, events) {
  const want = new Set(events.map((e) => e.id));
  const got = logs.filter((l) => want.has(l.outboxEventId)).map((l) => l.outboxEventId);
  assert.equal(got.length, want.size, "each pushed event pulled once");
  assert.deepEqual(new Set(got), want);
  for (const l of logs) {
    if (!want.has(l.outboxEventId)) assert.match(l.outboxEventId, /^syncplane-root-/, `unexpected entry ${JSON.stringify(l)}`);
  }
  assert.deepEqual([...logs.map((l) => l.id)].sort(), logs.map((l) => l.id), "oldest first");
}

function handlersFor(server, sub, extra = {}) {
  return createSyncplaneHandlers({ baseUrl: server.url, tenant: "demo", getToken: () => server.token(sub), ...extra });
}

test("push, then pull every page until an empty one; the cursor is stored and sent back", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const store = memoryCursor();
  const h = handlersFor(server, u, { cursor: store, pullLimit: 3, batchSize: 50 });
  assert.equal(h.push.batchSize, 50);

  const events = [userEvent(u), boardEvent(`${u}-b1`, u), ...Array.from({ length: 6 }, (_, i) => todoEvent(`${u}-t${i}`, `${u}-b1`))];
  const results = await h.push.handler(events);
  assert.deepEqual(
    results.map((r) => r.id),
    events.map((e) => e.id),
  );
  for (const r of results) {
    assert.equal(r.error, null, JSON.stringify(r));
    assert.match(r.appliedChangelogId, /^[0-9a-f-]{36}$/);
  }

  assert.equal(await store.getCursor(), undefined);
  const first = await drainPull(h.pull);
  assertPulledOnce(first.logs, events);
  assert.equal(first.pages, Math.ceil(first.logs.length / 3) + 1, "pages of 3 entries, then the empty page");
  const todo = first.logs.find((l) => l.model === "Todo");
  assert.equal(todo.record.boardId, `${u}-b1`);
  assert.equal(todo.changelogId, todo.id);
  const cursor = await store.getCursor();
  assert.match(cursor, /^c1\./, "without scopeKey the cursor is the opaque multi-scope one");

  // Nothing new: one empty page, the cursor stays.
  const again = await drainPull(h.pull);
  assert.equal(again.logs.length, 0);
  assert.equal(await store.getCursor(), cursor);

  // A new write is pulled alone, after the stored cursor.
  const late = todoEvent(`${u}-late`, `${u}-b1`);
  const [r] = await h.push.handler([late]);
  assert.equal(r.error, null);
  const next = await drainPull(h.pull);
  assert.deepEqual(
    next.logs.map((l) => l.outboxEventId),
    [late.id],
  );
  assert.notEqual(await store.getCursor(), cursor);

  // Pushing the same event again is idempotent: the original changelog id.
  const [dup] = await h.push.handler([late]);
  assert.equal(dup.appliedChangelogId, r.appliedChangelogId);
});

test("pull with scopeKey: the cursor is the last entry's id", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const h = handlersFor(server, u, { scopeKey: u });
  const events = [userEvent(u), boardEvent(`${u}-b`, u)];
  await h.push.handler(events);
  const { logs } = await drainPull(h.pull);
  assertPulledOnce(logs, events);
  assert.ok(logs.every((l) => l.scopeKey === u));
  const last = logs.at(-1).id;
  assert.equal(await h.pull.getCursor(), last);
  const empty = await h.pull.handler(last);
  assert.deepEqual(empty, { cursor: last, logsWithRecords: [] }, "an empty page answers the request's cursor");
});

test("per-event errors come back as results, in order", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const h = handlersFor(server, u);
  const events = [
    userEvent(u),
    todoEvent(`${u}-orphan`, `${u}-nowhere`), // parent never existed: MISSING_PARENT, retryable
    { ...userEvent(`${u}-other`) }, // another root: SCOPE_VIOLATION
    { ...boardEvent(`${u}-x`, u), entityType: "Nope" },
  ];
  const results = await h.push.handler(events);
  assert.deepEqual(
    results.map((r) => [r.id, r.error?.type ?? null]),
    [
      [events[0].id, null],
      [events[1].id, "MISSING_PARENT"],
      [events[2].id, "SCOPE_VIOLATION"],
      [events[3].id, "INVALID_MODEL"],
    ],
  );
  assert.equal(results[1].error.retryable, true);
  assert.equal(results[2].error.retryable, false);
});

test("401: the token is refreshed once and the request sent again", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const asked = [];
  const bad = mintToken("x".repeat(64), u); // signed with the wrong key
  const { f, calls } = recordingFetch();
  const h = createSyncplaneHandlers({
    baseUrl: server.url,
    tenant: "demo",
    fetch: f,
    getToken: async ({ forceRefresh }) => {
      asked.push(forceRefresh);
      return forceRefresh ? server.token(u) : bad;
    },
  });
  const [r] = await h.push.handler([userEvent(u)]);
  assert.equal(r.error, null);
  assert.deepEqual(asked, [false, true]);
  assert.deepEqual(
    calls.map((c) => c.status),
    [401, 200],
  );

  // A token that stays bad: one refresh, then a SyncplaneError with the server's reason.
  asked.length = 0;
  const never = createSyncplaneHandlers({
    baseUrl: server.url,
    tenant: "demo",
    getToken: async ({ forceRefresh }) => {
      asked.push(forceRefresh);
      return bad;
    },
  });
  await assert.rejects(never.pull.handler(), (err) => {
    assert.ok(err instanceof SyncplaneError);
    assert.equal(err.status, 401);
    assert.equal(err.operation, "pull");
    assert.match(err.serverMessage, /invalid token/);
    return true;
  });
  assert.deepEqual(asked, [false, true]);
});

test("413: a batch over maxBatch is split in halves and every event applies, in order", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const { f, calls } = recordingFetch();
  const h = handlersFor(server, u, { fetch: f });
  const events = [userEvent(u), ...Array.from({ length: 149 }, (_, i) => boardEvent(`${u}-b${i}`, u))];
  const results = await h.push.handler(events);
  assert.deepEqual(
    calls.map((c) => [c.events, c.status]),
    [
      [150, 413],
      [75, 200],
      [75, 200],
    ],
  );
  assert.deepEqual(
    results.map((r) => r.id),
    events.map((e) => e.id),
  );
  assert.ok(results.every((r) => r.error === null && r.appliedChangelogId));
  const { logs } = await drainPull(handlersFor(server, u, { pullLimit: 500 }).pull);
  assertPulledOnce(logs, events);
});

test("413: an event that alone is over maxBodyBytes gets a non-retryable PAYLOAD_TOO_LARGE result", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const { f, calls } = recordingFetch();
  const h = handlersFor(server, u, { fetch: f });
  const events = [userEvent(u), boardEvent(`${u}-huge`, u, "x".repeat(1_100_000)), boardEvent(`${u}-b`, u)];
  const results = await h.push.handler(events);
  assert.deepEqual(
    results.map((r) => r.id),
    events.map((e) => e.id),
  );
  assert.equal(results[0].error, null);
  assert.equal(results[2].error, null);
  assert.equal(results[1].appliedChangelogId, null);
  assert.equal(results[1].error.type, "PAYLOAD_TOO_LARGE");
  assert.equal(results[1].error.retryable, false);
  assert.match(results[1].error.message, /exceeds the limit/);
  assert.deepEqual(
    calls.map((c) => [c.events, c.status]),
    [
      [3, 413],
      [2, 413],
      [1, 200],
      [1, 413],
      [1, 200],
    ],
  );
});

test("maxEventsPerRequest sends a large batch in chunks without a 413", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const { f, calls } = recordingFetch();
  const h = handlersFor(server, u, { fetch: f, maxEventsPerRequest: 100 });
  const events = [userEvent(u), ...Array.from({ length: 119 }, (_, i) => boardEvent(`${u}-b${i}`, u))];
  const results = await h.push.handler(events);
  assert.deepEqual(
    calls.map((c) => [c.events, c.status]),
    [
      [100, 200],
      [20, 200],
    ],
  );
  assert.ok(results.every((r, i) => r.id === events[i].id && r.error === null));
  assert.deepEqual(await h.push.handler([]), []);
  assert.equal(calls.length, 2, "an empty batch sends nothing");
});

test("other non-2xx answers throw a SyncplaneError with the status and the server's message", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;

  await assert.rejects(handlersFor(server, u, { pullLimit: 0 }).pull.handler(), (err) => {
    assert.ok(err instanceof SyncplaneError);
    assert.equal(err.status, 400);
    assert.ok(err.serverMessage, "the server's error message");
    assert.match(err.message, /^syncplane pull failed: HTTP 400: /);
    return true;
  });

  const bad = { ...userEvent(u), surprise: 1 }; // unknown fields are left out on the wire...
  const [ok] = await handlersFor(server, u).push.handler([bad]);
  assert.equal(ok.error, null);
  const noPayload = { ...userEvent(u), payload: undefined }; // ...a missing payload is the server's 400
  await assert.rejects(handlersFor(server, u).push.handler([noPayload]), (err) => {
    assert.equal(err.status, 400);
    assert.ok(err.details?.length, "details name the event");
    return true;
  });

  await assert.rejects(
    createSyncplaneHandlers({ baseUrl: server.url, tenant: "nope", getToken: () => server.token(u) }).pull.handler(),
    (err) => err instanceof SyncplaneError && err.status === 404 && /unknown tenant/.test(err.serverMessage),
  );
});

test("a browser page on another origin may send the kit's requests (the demo allows any origin)", async (t) => {
  const server = await startServer(t);
  for (const [route, method, headers] of [
    ["push", "POST", "authorization,content-type"],
    ["pull", "POST", "authorization,content-type"],
    ["events", "GET", "authorization"],
  ]) {
    const res = await fetch(`${server.url}/v1/tenants/demo/${route}`, {
      method: "OPTIONS",
      headers: { Origin: "https://app.example.com", "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers },
    });
    assert.ok(res.status >= 200 && res.status < 300, `${route}: preflight ${res.status}`);
    assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example.com", route);
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const h of headers.split(",")) assert.ok(allowed.includes(h), `${route}: ${h} allowed (${allowed})`);
  }
});

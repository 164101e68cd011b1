// The kit's own logic for 429/503 (Retry-After), 410 (resync) and odd
// answers, against a tiny node:http server that answers as told: the real
// server answers these only under load, on a storage outage, or with a
// tombstone retention, which a test cannot provoke reliably.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";

import { SyncplaneError, createSyncplaneHandlers, memoryCursor } from "../dist/index.js";
import { drainPull, userEvent } from "./helpers.mjs";

/** Starts a server whose answers come from `script(req, body)` in order. */
async function fakeServer(t, script) {
  const seen = [];
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const parsed = body ? JSON.parse(body) : undefined;
    seen.push({ method: req.method, path: req.url, auth: req.headers.authorization, body: parsed, at: Date.now() });
    const a = script(req, parsed, seen.length - 1);
    res.writeHead(a.status, { "Content-Type": a.contentType ?? "application/json", ...a.headers });
    res.end(typeof a.body === "string" ? a.body : JSON.stringify(a.body));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${server.address().port}`, seen };
}

const okPush = (body) => ({ status: 200, body: body.events.map((e) => ({ id: e.id, appliedChangelogId: "0001", error: null })) });

test("503 with Retry-After in seconds: waits, sends again, succeeds", async (t) => {
  const srv = await fakeServer(t, (req, body, i) =>
    i === 0 ? { status: 503, headers: { "Retry-After": "1" }, body: { error: "storage unavailable, retry later" } } : okPush(body),
  );
  const h = createSyncplaneHandlers({ baseUrl: srv.url, tenant: "demo", getToken: () => "tok" });
  const [r] = await h.push.handler([userEvent("u1")]);
  assert.equal(r.error, null);
  assert.equal(srv.seen.length, 2);
  const waited = srv.seen[1].at - srv.seen[0].at;
  assert.ok(waited >= 950, `waited ${waited} ms, want about 1000`);
  assert.equal(srv.seen[0].path, "/v1/tenants/demo/push");
  assert.equal(srv.seen[1].auth, "Bearer tok");
});

test("429 with Retry-After as an HTTP date", async (t) => {
  const srv = await fakeServer(t, (req, body, i) =>
    i === 0
      ? { status: 429, headers: { "Retry-After": new Date(Date.now() + 1500).toUTCString() }, body: { error: "rate limit" } }
      : { status: 200, body: { cursor: null, logsWithRecords: [] } },
  );
  const h = createSyncplaneHandlers({ baseUrl: `${srv.url}/`, tenant: "demo", getToken: () => "tok" });
  assert.deepEqual(await h.pull.handler(), { cursor: undefined, logsWithRecords: [] });
  assert.equal(srv.seen.length, 2);
  assert.equal(srv.seen[0].path, "/v1/tenants/demo/pull", "a trailing slash on baseUrl is fine");
  assert.ok(srv.seen[1].at - srv.seen[0].at >= 400, "waited until the date (it has a resolution of a second)");
});

test("429/503 that persist: bounded retries, then a SyncplaneError", async (t) => {
  const srv = await fakeServer(t, () => ({ status: 503, headers: { "Retry-After": "0" }, body: { error: "storage unavailable, retry later" } }));
  const h = createSyncplaneHandlers({ baseUrl: srv.url, tenant: "demo", getToken: () => "tok", maxRetries: 2 });
  await assert.rejects(h.push.handler([userEvent("u1")]), (err) => {
    assert.ok(err instanceof SyncplaneError);
    assert.equal(err.status, 503);
    assert.equal(err.serverMessage, "storage unavailable, retry later");
    assert.equal(err.retryAfterMs, 0);
    assert.match(err.message, /gave up after 2 retries/);
    return true;
  });
  assert.equal(srv.seen.length, 3);
});

test("a Retry-After longer than maxRetryDelayMs is not waited for", async (t) => {
  const srv = await fakeServer(t, () => ({ status: 429, headers: { "Retry-After": "120" }, body: { error: "slow down" } }));
  const h = createSyncplaneHandlers({ baseUrl: srv.url, tenant: "demo", getToken: () => "tok", maxRetryDelayMs: 5000 });
  const start = Date.now();
  await assert.rejects(h.pull.handler("c1.x"), (err) => err.status === 429 && err.retryAfterMs === 120_000);
  assert.ok(Date.now() - start < 2000);
  assert.equal(srv.seen.length, 1);
});

test("503 without Retry-After: exponential backoff from retryBaseDelayMs", async (t) => {
  const srv = await fakeServer(t, (req, body, i) => (i < 2 ? { status: 503, body: "<html>busy</html>", contentType: "text/html" } : okPush(body)));
  const h = createSyncplaneHandlers({ baseUrl: srv.url, tenant: "demo", getToken: () => "tok", retryBaseDelayMs: 50 });
  const [r] = await h.push.handler([userEvent("u1")]);
  assert.equal(r.error, null);
  assert.equal(srv.seen.length, 3);
});

test("410 on pull: onResync, the cursor is cleared, the pull starts over from empty", async (t) => {
  const srv = await fakeServer(t, (req, body) => {
    if (body.lastChangelogId === "c1.old") return { status: 410, body: { error: "cursor is older than the retained tombstones" } };
    if (body.lastChangelogId === undefined) {
      return { status: 200, body: { cursor: "c1.new", logsWithRecords: [{ id: "0002", changelogId: "0002", model: "User" }] } };
    }
    return { status: 200, body: { cursor: body.lastChangelogId, logsWithRecords: [] } };
  });
  const store = memoryCursor("c1.old");
  const resyncs = [];
  const h = createSyncplaneHandlers({
    baseUrl: srv.url,
    tenant: "demo",
    getToken: () => "tok",
    cursor: store,
    scopeKey: "u1",
    pullLimit: 10,
    onResync: async (info) => {
      resyncs.push({ ...info, storedThen: await store.getCursor() });
    },
  });
  const { logs } = await drainPull(h.pull);
  assert.deepEqual(resyncs, [{ cursor: "c1.old", message: "cursor is older than the retained tombstones", storedThen: "c1.old" }]);
  assert.equal(logs.length, 1);
  assert.equal(await store.getCursor(), "c1.new");
  assert.deepEqual(
    srv.seen.map((s) => s.body),
    [
      { lastChangelogId: "c1.old", limit: 10, scopeKey: "u1" },
      { limit: 10, scopeKey: "u1" },
      { lastChangelogId: "c1.new", limit: 10, scopeKey: "u1" },
    ],
  );
});

test("410 when onResync throws: the cursor stays and the pull fails (the next sync asks again)", async (t) => {
  const srv = await fakeServer(t, () => ({ status: 410, body: { error: "gone" } }));
  const store = memoryCursor("c1.old");
  const h = createSyncplaneHandlers({
    baseUrl: srv.url,
    tenant: "demo",
    getToken: () => "tok",
    cursor: store,
    onResync: () => {
      throw new Error("cannot reset now");
    },
  });
  await assert.rejects(h.pull.handler("c1.old"), /cannot reset now/);
  assert.equal(await store.getCursor(), "c1.old");
  assert.equal(srv.seen.length, 1);

  // Without onResync, and gone again from empty: an error, no loop.
  const h2 = createSyncplaneHandlers({ baseUrl: srv.url, tenant: "demo", getToken: () => "tok", cursor: store });
  await assert.rejects(h2.pull.handler("c1.old"), (err) => err.status === 410 && err.serverMessage === "gone");
  assert.equal(await store.getCursor(), undefined);
  assert.equal(srv.seen.length, 3);
});

test("answers that break the protocol are errors, not silent data loss", async (t) => {
  const answers = [
    { status: 200, body: [] }, // push: fewer results than events
    { status: 200, body: "not json", contentType: "text/plain" },
    { status: 200, body: { cursor: "x" } }, // pull without logsWithRecords
    { status: 500, body: { error: "internal error (request id r1)" } },
  ];
  const srv = await fakeServer(t, (req, body, i) => answers[i]);
  const h = createSyncplaneHandlers({ baseUrl: srv.url, tenant: "demo", getToken: () => "tok" });
  await assert.rejects(h.push.handler([userEvent("u1")]), /expected an array of 1 results, got 0/);
  await assert.rejects(h.push.handler([userEvent("u1")]), /not JSON/);
  await assert.rejects(h.pull.handler(), /expected \{cursor, logsWithRecords\}/);
  await assert.rejects(h.pull.handler(), (err) => err.status === 500 && err.serverMessage === "internal error (request id r1)");
});

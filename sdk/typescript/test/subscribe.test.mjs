// subscribe() against a real `syncplane serve`: pokes, the token refresh on
// 401, and reconnecting after the server restarts.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { test } from "node:test";

import { createSyncplaneHandlers, subscribe } from "../dist/index.js";
import { boardEvent, mintToken, startServer, userEvent, waitFor } from "./helpers.mjs";

function recorder() {
  const r = { pokes: [], opens: [], errors: [] };
  r.hooks = {
    onPoke: (p) => {
      r.pokes.push(p);
    },
    onOpen: (info) => {
      r.opens.push(info);
    },
    onError: (err) => {
      r.errors.push(err);
    },
  };
  return r;
}

test("a push by another device pokes the stream; it reconnects after the server restarts", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const device = createSyncplaneHandlers({ baseUrl: server.url, tenant: "demo", getToken: () => server.token(u) });
  const [r0] = await device.push.handler([userEvent(u)]); // the scope exists before the stream opens
  assert.equal(r0.error, null);

  const rec = recorder();
  const sub = subscribe({
    baseUrl: server.url,
    tenant: "demo",
    getToken: () => server.token(u),
    minDelayMs: 100,
    maxDelayMs: 400,
    ...rec.hooks,
  });
  t.after(() => sub.close());
  await waitFor(() => rec.opens.length === 1, { what: "the stream to open" });
  assert.deepEqual(rec.opens, [{ reconnected: false }]);
  assert.equal(sub.connected, true);

  const [r1] = await device.push.handler([boardEvent(`${u}-b1`, u)]);
  await waitFor(() => rec.pokes.some((p) => p.changelogId === r1.appliedChangelogId), { what: "the poke of the push" });
  assert.deepEqual(rec.pokes.at(-1), { scopeKey: u, changelogId: r1.appliedChangelogId });

  // Restart the server on the same port and data directory.
  await server.stop();
  await waitFor(() => !sub.connected, { what: "the stream to end" });
  await server.start();
  await waitFor(() => rec.opens.length === 2, { what: "the stream to reopen", timeoutMs: 15_000 });
  assert.deepEqual(rec.opens[1], { reconnected: true });
  assert.ok(rec.errors.length >= 1, "the end of the stream was reported");

  const [r2] = await device.push.handler([boardEvent(`${u}-b2`, u)]);
  await waitFor(() => rec.pokes.some((p) => p.changelogId === r2.appliedChangelogId), { what: "the poke after the restart" });

  sub.close();
  await sub.closed;
  assert.equal(sub.connected, false);
});

test("401: the token is refreshed once, then the stream opens", async (t) => {
  const server = await startServer(t);
  const u = `u-${randomUUID()}`;
  const asked = [];
  const rec = recorder();
  const sub = subscribe({
    baseUrl: server.url,
    tenant: "demo",
    getToken: ({ forceRefresh }) => {
      asked.push(forceRefresh);
      return forceRefresh ? server.token(u) : mintToken("y".repeat(64), u);
    },
    ...rec.hooks,
  });
  t.after(() => sub.close());
  await waitFor(() => rec.opens.length === 1, { what: "the stream to open" });
  assert.deepEqual(asked, [false, true]);
  assert.deepEqual(rec.errors, []);
  sub.close();
  await sub.closed;
});

test("a token that stays bad: reported, retried with backoff, close() ends it", async (t) => {
  const server = await startServer(t);
  const asked = [];
  const rec = recorder();
  const ac = new AbortController();
  const sub = subscribe({
    baseUrl: server.url,
    tenant: "demo",
    getToken: ({ forceRefresh }) => {
      asked.push(forceRefresh);
      return mintToken("y".repeat(64), "u1");
    },
    minDelayMs: 50,
    maxDelayMs: 100,
    signal: ac.signal,
    ...rec.hooks,
  });
  await waitFor(() => rec.errors.length >= 2, { what: "two failed tries" });
  assert.equal(rec.errors[0].status, 401);
  assert.match(rec.errors[0].serverMessage, /invalid token/, "the server's reason");
  assert.deepEqual(asked.slice(0, 4), [false, true, false, true], "one refresh per try");
  ac.abort(); // the signal closes it too
  await sub.closed;
  assert.equal(rec.opens.length, 0);
});

test("pokes that come while onPoke runs are coalesced into one more call", async (t) => {
  // A stream of three pokes at once, from a fake server, then kept open.
  const http = createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    res.write(": connected\n\n");
    for (const id of ["1", "2", "3"]) res.write(`event: poke\ndata: {"scopeKey":"s","changelogId":"${id}"}\n\n`);
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  t.after(() => {
    http.closeAllConnections();
    return new Promise((r) => http.close(r));
  });
  const calls = [];
  let release;
  const gate = new Promise((r) => (release = r));
  const sub = subscribe({
    baseUrl: `http://127.0.0.1:${http.address().port}`,
    tenant: "demo",
    getToken: () => "tok",
    onPoke: async (p) => {
      calls.push(p.changelogId);
      if (calls.length === 1) await gate;
    },
  });
  t.after(() => sub.close());
  await waitFor(() => calls.length === 1, { what: "the first poke" });
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(calls, ["1"], "no second call while the first runs");
  release();
  await waitFor(() => calls.length === 2, { what: "the trailing call" });
  assert.deepEqual(calls, ["1", "3"]);
  sub.close();
  await sub.closed;
});

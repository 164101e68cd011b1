// The e2e page: the prisma-idb client generated from the demo tenant's schema
// folder, its sync worker wired to syncplane through the TypeScript kit, and
// a live subscription that syncs on every poke. driver.mjs drives it through
// window.e2e (Playwright's page.evaluate). "#gen/..." is the generated
// client and "#kit" the kit; build.mjs resolves both.

import { PrismaIDBClient } from "#gen/client/prisma-idb-client";
import { createSyncplaneHandlers, localStorageCursor, subscribe, syncWhenIdle } from "#kit";

type Model = "User" | "Board" | "Todo";
const MODELS: Model[] = ["User", "Board", "Todo"];
const delegate = (c: PrismaIDBClient, m: Model): any => (c as any)[m[0]!.toLowerCase() + m.slice(1)];

interface Cycle {
  reason: string;
  start: number;
  end?: number;
  pushed: number;
  pushResults: { id: string; appliedChangelogId: string | null; error: { type: string; message: string; retryable: boolean } | null }[];
  pullPages: number;
  pulled: boolean; // the pull phase ran to its end (pullcompleted)
  pullStats?: { applied: number; missing: number; stale: number; validationErrors: string[] };
  errors: string[];
  retryableLeft?: boolean;
}

let client: PrismaIDBClient;
let worker: ReturnType<PrismaIDBClient["createSyncWorker"]>;
let live: { close(): void } | undefined;
let current: (Cycle & { lastErrorAtStart: unknown }) | undefined;
let pendingReason: string | undefined;
const cycles: (Cycle & { done?: Promise<unknown> })[] = [];
const pokes: { at: number; scopeKey: string; changelogId: string }[] = [];
const liveErrors: string[] = [];
let liveOpens = 0;

const msg = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));
const busy = (s: string) => s === "PUSHING" || s === "PULLING";

function json(v: unknown): any {
  return JSON.parse(JSON.stringify(v ?? null));
}

// Every sync cycle of the worker is recorded, whoever started it (the test,
// or the kit's live subscription through syncWhenIdle): it begins when the
// worker's status turns PUSHING or PULLING and ends when it turns IDLE or
// STOPPED.
function trackCycles() {
  worker.on("statuschange", (e: any) => {
    const { status, lastError } = e.detail;
    if (busy(status)) {
      if (!current) {
        current = { reason: pendingReason ?? "live", start: Date.now(), pushed: 0, pushResults: [], pullPages: 0, pulled: false, errors: [], lastErrorAtStart: lastError };
        pendingReason = undefined;
        cycles.push(current);
      } else if (lastError && lastError !== current.lastErrorAtStart && current.errors.length === 0) {
        current.errors.push(`worker: ${msg(lastError)}`);
      }
      return;
    }
    const c = current;
    if (!c) return;
    current = undefined;
    c.end = Date.now();
    (c as any).done = client.$outbox.hasAnyRetryableUnsynced().then((v) => (c.retryableLeft = v));
  });
  worker.on("pullcompleted", (e: any) => {
    const c = current;
    if (!c) return;
    c.pulled = true;
    const d = e.detail;
    c.pullStats = {
      applied: d.totalAppliedRecords,
      missing: d.missingRecords,
      stale: d.staleRecords,
      validationErrors: d.validationErrors.map((v: any) => `${v.model}: ${msg(v.error)}`),
    };
  });
}

function whenIdle(): Promise<void> {
  return new Promise((resolve) => {
    const off = worker.on("statuschange", (e: any) => {
      if (!busy(e.detail.status)) {
        off();
        resolve();
      }
    });
    if (!busy(worker.status.status)) {
      off();
      resolve();
    }
  });
}

function strip(c: any): Cycle {
  const { lastErrorAtStart, done, ...rest } = c;
  return json(rest);
}

// runSync runs one sync cycle for the test: it waits until no cycle is in
// progress (prisma-idb's syncNow() returns at once, doing nothing, while
// one is) and calls syncNow(); when a live sync slipped in first, it tries
// again. The answer merges the cycles that started after the call (so a
// cycle the live subscription started meanwhile counts too).
async function runSync(reason: string): Promise<Cycle> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await whenIdle();
    const mark = cycles.length;
    pendingReason = reason;
    try {
      await worker.syncNow();
    } catch (e) {
      cycles.at(-1)?.errors.push(`syncNow: ${msg(e)}`);
    }
    if (pendingReason === reason) pendingReason = undefined;
    if (cycles.length === mark) continue;
    await whenIdle();
    const mine = cycles.slice(mark);
    await Promise.all(mine.map((c) => c.done));
    const last = mine.at(-1)!;
    return {
      reason,
      start: mine[0]!.start,
      end: last.end,
      pushed: mine.reduce((n, c) => n + c.pushed, 0),
      pushResults: mine.flatMap((c) => c.pushResults),
      pullPages: mine.reduce((n, c) => n + c.pullPages, 0),
      pulled: last.pulled,
      pullStats: last.pullStats,
      errors: mine.flatMap((c) => c.errors),
      retryableLeft: last.retryableLeft,
    };
  }
  throw new Error("runSync: no sync cycle started after 50 tries");
}

async function readState(): Promise<Record<Model, any[]>> {
  const out = {} as Record<Model, any[]>;
  for (const m of MODELS) out[m] = json(await client._db.getAll(m as any));
  return out;
}

const api = {
  async init(o: { baseUrl: string; tenant: string; token: string; live: boolean; batchSize?: number; backoffMs?: number }) {
    client = await PrismaIDBClient.createClient();
    const getToken = () => o.token;
    const handlers: any = createSyncplaneHandlers({
      baseUrl: o.baseUrl,
      tenant: o.tenant,
      getToken,
      cursor: localStorageCursor("syncplane-e2e-cursor"),
      batchSize: o.batchSize ?? 50,
    } as any);
    const push = handlers.push.handler;
    const pull = handlers.pull.handler;
    worker = client.createSyncWorker({
      push: {
        batchSize: handlers.push.batchSize ?? o.batchSize ?? 50,
        handler: async (events: any[]) => {
          const c = current;
          if (c) c.pushed += events.length;
          try {
            const r = await push(events);
            if (c) c.pushResults.push(...json(r));
            return r;
          } catch (e) {
            if (c) c.errors.push(`push: ${msg(e)}`);
            throw e;
          }
        },
      },
      pull: {
        handler: async (cursor?: string) => {
          const c = current;
          try {
            const r = await pull(cursor);
            if (c) c.pullPages++;
            return r;
          } catch (e) {
            if (c) c.errors.push(`pull: ${msg(e)}`);
            throw e;
          }
        },
        getCursor: handlers.pull.getCursor,
        setCursor: handlers.pull.setCursor,
      },
      // The kanban example's interval; a short backoff so that a device
      // back online retries its failed events within the test.
      schedule: { intervalMs: 60_000, backoffMs: o.backoffMs ?? 300 },
    });
    trackCycles();
    if (o.live) {
      // The kit's wiring (sdk/typescript/README.md): every poke, and every
      // (re)connect, runs syncNow() once the worker is idle.
      const sync = syncWhenIdle(worker as any);
      live = subscribe({
        baseUrl: o.baseUrl,
        tenant: o.tenant,
        getToken,
        minDelayMs: 200,
        maxDelayMs: 1000,
        onPoke: (p: any) => {
          pokes.push({ at: Date.now(), scopeKey: p.scopeKey, changelogId: p.changelogId });
          return sync();
        },
        onOpen: () => {
          liveOpens++;
          return sync();
        },
        onError: (e: unknown) => {
          liveErrors.push(msg(e));
        },
      } as any);
    }
    return { kit: (globalThis as any).__E2E_KIT__ ?? "unknown" };
  },

  liveInfo() {
    return { opens: liveOpens, connected: (live as any)?.connected ?? false, pokes: pokes.length, errors: liveErrors.slice(-5) };
  },

  // What the kanban app does after sign-in: the session's user goes into
  // IndexedDB without an outbox event (the server already has it).
  async signIn(user: { id: string; name: string; email: string }) {
    const existing = await client.user.findUnique({ where: { id: user.id } });
    if (existing) return json(existing);
    const now = new Date();
    try {
      return json(
        await client.user.create(
          { data: { ...user, emailVerified: false, image: null, createdAt: now, updatedAt: now, isAnonymous: null } },
          { addToOutbox: false },
        ),
      );
    } catch (e) {
      // The live subscription's first sync may have pulled the User (the
      // server made it from the token) between the lookup and the create;
      // the kanban app then finds it at its next check.
      const pulled = await client.user.findUnique({ where: { id: user.id } });
      if (pulled) return json(pulled);
      throw e;
    }
  },

  async create(model: Model, data: any, opts?: { addToOutbox?: boolean }) {
    return json(await delegate(client, model).create({ data }, opts));
  },
  async update(model: Model, id: string, data: any) {
    return json(await delegate(client, model).update({ where: { id }, data }));
  },
  async remove(model: Model, id: string) {
    return json(await delegate(client, model).delete({ where: { id } }));
  },
  // A board and its todos in one nested create: the generated client
  // writes each todo (and its outbox event) before the board's. (No
  // `include`: prisma-idb 0.38.1 would put the included todos into the
  // board's outbox payload.)
  async createBoardWithTodos(board: any, todos: any[]) {
    return json(await client.board.create({ data: { ...board, todos: { create: todos } } }));
  },
  // Runs the operations back to back with the clock stopped, so that their
  // outbox events share one createdAt millisecond, as on a fast device: the
  // worker then sends them in the order of their random ids.
  async atOneInstant(ops: [("create" | "update" | "remove"), ...any[]][]) {
    const RealDate = Date;
    const t = RealDate.now();
    class FrozenDate extends RealDate {
      constructor(...a: any[]) {
        if (a.length === 0) super(t);
        else super(...(a as [any]));
      }
      static now() {
        return t;
      }
    }
    (globalThis as any).Date = FrozenDate;
    try {
      const out = [];
      for (const [op, ...a] of ops) out.push(await (api as any)[op](...a));
      return out;
    } finally {
      (globalThis as any).Date = RealDate;
    }
  },
  // An outbox event written as is, bypassing the client's own checks: what
  // a buggy or tampered client (or an older app version) would push.
  async rawOutboxEvent(entityType: string, operation: "create" | "update" | "delete", payload: any) {
    return json(await client.$outbox.create({ data: { entityType, operation, payload } }));
  },

  sync(reason = "test") {
    return runSync(reason).then(json);
  },
  // Syncs until no retryable event is left (the worker skips events still in
  // their backoff), at most `max` cycles; returns the cycles.
  async syncSettled(max = 8) {
    const out: Cycle[] = [];
    for (let i = 0; i < max; i++) {
      const c = await runSync(i === 0 ? "test" : "test-retry");
      out.push(json(c));
      if (!c.retryableLeft) break;
      await new Promise((r) => setTimeout(r, 350));
    }
    return out;
  },
  async idle() {
    await whenIdle();
    await Promise.all(cycles.map((c) => c.done));
  },
  cycles(since = 0) {
    return cycles.slice(since).map(strip);
  },
  cycleCount() {
    return cycles.length;
  },
  state: readState,
  async outbox() {
    return json(await client._db.getAll("OutboxEvent"));
  },
  async outboxStats() {
    return json(await client.$outbox.stats());
  },
  // Resolves with Date.now() once every listed key is present (or absent)
  // in IndexedDB, polling every 5 ms; rejects after timeoutMs.
  async waitFor(want: { present?: Partial<Record<Model, string[]>>; absent?: Partial<Record<Model, string[]>> }, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const tx = client._db.transaction(MODELS as any, "readonly");
      let ok = true;
      for (const [m, ids] of Object.entries(want.present ?? {})) {
        for (const id of ids!) if ((await tx.objectStore(m as any).get([id] as any)) === undefined) ok = false;
      }
      for (const [m, ids] of Object.entries(want.absent ?? {})) {
        for (const id of ids!) if ((await tx.objectStore(m as any).get([id] as any)) !== undefined) ok = false;
      }
      if (ok) return Date.now();
      if (Date.now() > deadline) throw new Error(`waitFor: not reached after ${timeoutMs} ms: ${JSON.stringify(want)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  },
  close() {
    live?.close();
  },
};

(globalThis as any).e2e = api;
(globalThis as any).e2eReady = true;

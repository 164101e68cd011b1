// Type-level test (`npm run check`): the kit's handlers drop into the
// createSyncWorker of a prisma-idb 0.38.1 client, in the ways the README
// shows. It is compiled, never run.
import {
  createSyncplaneHandlers,
  localStorageCursor,
  memoryCursor,
  subscribe,
  syncWhenIdle,
  type CursorStore,
  type PushResult as KitPushResult,
} from "../../dist/index.js";
import type { CreateSyncWorkerOptions, LogWithStringifiedRecord, PrismaIDBClient, PushResult } from "./prisma-idb-0.38.1.js";

declare const client: PrismaIDBClient;
declare function getToken(opts: { forceRefresh: boolean }): Promise<string>;

// 1. Spread into the options: Log is inferred from createSyncWorker.
const worker = client.createSyncWorker({
  ...createSyncplaneHandlers({ baseUrl: "https://sync.example.com", tenant: "demo", getToken, cursor: localStorageCursor("syncplane:cursor") }),
  schedule: { intervalMs: 60_000 },
});

// 2. Kept in a variable first: name the entry type.
const handlers = createSyncplaneHandlers<LogWithStringifiedRecord>({
  baseUrl: "https://sync.example.com",
  tenant: "demo",
  getToken,
  cursor: memoryCursor(),
  batchSize: 50,
  onResync: async () => {},
});
const options: CreateSyncWorkerOptions = { push: handlers.push, pull: handlers.pull };
client.createSyncWorker(options);

// 3. The kit's PushResult is prisma-idb's.
const r: PushResult = {} as KitPushResult;
void r;

// 4. The cursor stores fit getCursor/setCursor.
const store: CursorStore = localStorageCursor("k");
const pullOpts: Pick<CreateSyncWorkerOptions["pull"], "getCursor" | "setCursor"> = store;
void pullOpts;

// 5. subscribe wires to the worker.
const sub = subscribe({
  baseUrl: "https://sync.example.com",
  tenant: "demo",
  getToken,
  onPoke: () => worker.syncNow(),
  onOpen: syncWhenIdle(worker),
});
sub.close();

// 6. Without the entry type and out of context, Log defaults to the kit's
//    ChangelogEntry, whose `model: string` prisma-idb's per-model union does
//    not take (so the checks above do check something).
const plain = createSyncplaneHandlers({ baseUrl: "https://sync.example.com", tenant: "demo", getToken });
// @ts-expect-error model: string is wider than "User" | "Board" | "Todo"
const wide: CreateSyncWorkerOptions = { push: plain.push, pull: plain.pull };
void wide;

export { createSyncplaneHandlers, type SyncplaneHandlers, type SyncplaneHandlersOptions } from "./handlers.js";
export { subscribe, type Poke, type SubscribeOptions, type Subscription } from "./subscribe.js";
export { syncWhenIdle, type SyncWorkerLike } from "./worker.js";
export { localStorageCursor, memoryCursor, type StorageLike } from "./cursor.js";
export { SyncplaneError, parseRetryAfter, type SyncplaneErrorInit } from "./errors.js";
export { SSEParser, type ServerSentEvent } from "./sse.js";
export type { ConnectionOptions, RetryOptions } from "./http.js";
export {
  PAYLOAD_TOO_LARGE,
  type ChangelogEntry,
  type CursorStore,
  type FetchLike,
  type GetToken,
  type OutboxEvent,
  type PullPage,
  type PushErrorType,
  type PushResult,
  type SyncplaneErrorType,
} from "./types.js";

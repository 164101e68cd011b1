/** The part of prisma-idb's `SyncWorker` that {@link syncWhenIdle} uses. */
export interface SyncWorkerLike {
  syncNow(options?: { overrideBackoff?: boolean }): Promise<void>;
  readonly status: { status: string };
  on(event: "statuschange", callback: (e: CustomEvent<{ status: string }>) => void): () => void;
}

const busy = (status: string) => status === "PUSHING" || status === "PULLING";

/**
 * Returns a function that runs one sync cycle of the worker, waiting first
 * for a cycle in progress to end. prisma-idb's `syncNow()` returns at once,
 * doing nothing, while the worker syncs (on its interval, say), which would
 * drop a poke that came during a pull already past its commit; this waits
 * for that cycle, then syncs. Use it as `subscribe`'s onPoke and onOpen.
 * `maxWaitMs` (default 60 000) bounds the wait, then it syncs anyway.
 */
export function syncWhenIdle(worker: SyncWorkerLike, maxWaitMs = 60_000): () => Promise<void> {
  return async () => {
    await new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let off: (() => void) | undefined;
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        off?.();
        resolve();
      };
      // Listen before looking, so that an end between the two is not missed.
      off = worker.on("statuschange", (e) => {
        if (!busy(e.detail?.status ?? worker.status.status)) done();
      });
      if (!busy(worker.status.status)) return done();
      timer = setTimeout(done, maxWaitMs);
    });
    await worker.syncNow();
  };
}

import type { CursorStore } from "./types.js";

/** A cursor kept in memory only: every page load pulls from the beginning. */
export function memoryCursor(initial?: string): CursorStore {
  let cursor = initial;
  return {
    getCursor: async () => cursor,
    setCursor: async (next) => {
      cursor = next;
    },
  };
}

/** The part of the Web Storage API that {@link localStorageCursor} uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * A cursor kept in `localStorage` (or the given storage) under `key`;
 * `setCursor(undefined)` removes the key. The storage is looked up on each
 * call, so importing this in server-side rendering does not fail.
 */
export function localStorageCursor(key: string, storage?: StorageLike): CursorStore {
  const store = (): StorageLike => {
    const s = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!s) throw new Error("@syncplane/client: localStorage is not available here; pass a storage or use memoryCursor()");
    return s;
  };
  return {
    getCursor: async () => store().getItem(key) ?? undefined,
    setCursor: async (cursor) => {
      if (cursor === undefined || cursor === null) store().removeItem(key);
      else store().setItem(key, cursor);
    },
  };
}

// Test helpers: a real `syncplane serve` on a free port and a scratch data
// directory, demo-tenant tokens minted with node:crypto, and kanban events.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
let builtBin;

/**
 * The syncplane binary: $SYNCPLANE_BIN (kit_test.go builds it), or one built
 * here with `go build ./cmd/syncplane` from the repository root.
 */
export function syncplaneBin() {
  if (process.env.SYNCPLANE_BIN) return process.env.SYNCPLANE_BIN;
  if (!builtBin) {
    const dir = mkdtempSync(join(tmpdir(), "syncplane-bin-"));
    builtBin = join(dir, "syncplane");
    execFileSync("go", ["build", "-o", builtBin, "./cmd/syncplane"], { cwd: resolve(here, "../../.."), stdio: "inherit" });
  }
  return builtBin;
}

export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * Starts `syncplane serve` with the demo tenant. The returned server can be
 * stopped and started again on the same port and data directory.
 */
export async function startServer(t) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "syncplane-kit-"));
  const server = {
    port,
    dataDir,
    url: `http://127.0.0.1:${port}`,
    proc: undefined,
    log: [],
    key: undefined,
    async start() {
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SYNCPLANE_")));
      const proc = spawn(syncplaneBin(), ["serve", "--addr", `127.0.0.1:${port}`, "--data", dataDir], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      this.proc = proc;
      const exited = new Promise((res) => proc.once("exit", (code, signal) => res({ code, signal })));
      proc.exited = exited;
      for (const s of [proc.stdout, proc.stderr]) s.on("data", (b) => this.log.push(b.toString()));
      const deadline = Date.now() + 20_000;
      for (;;) {
        const gone = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 50))]);
        if (gone) throw new Error(`syncplane exited (${JSON.stringify(gone)}):\n${this.log.join("")}`);
        try {
          const res = await fetch(`${this.url}/healthz`);
          if (res.ok) break;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`syncplane did not come up:\n${this.log.join("")}`);
      }
      this.key = readFileSync(join(dataDir, "demo.key"), "utf8").trim();
    },
    async stop() {
      const proc = this.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await proc.exited;
      clearTimeout(timer);
    },
    token(sub, opts = {}) {
      return mintToken(opts.key ?? this.key, sub, opts);
    },
  };
  await server.start();
  t.after(async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return server;
}

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/**
 * An HS256 JWT with sub, iat and exp, as `syncplane token` signs them, plus
 * the name and email claims from which the demo tenant creates the
 * subject's User (rootFromToken).
 */
export function mintToken(key, sub, { ttlSeconds = 3600, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const body = b64url({ name: `user ${sub}`, email: `${sub}@example.com`, ...extra, sub, iat: now, exp: now + ttlSeconds });
  const sig = createHmac("sha256", key).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A prisma-idb OutboxEventRecord. */
export function event(entityType, operation, payload) {
  return {
    id: randomUUID(),
    entityType,
    operation,
    payload,
    createdAt: new Date(),
    tries: 0,
    lastError: null,
    synced: false,
    syncedAt: null,
    lastAttemptedAt: null,
    retryable: true,
  };
}

export function userEvent(id) {
  const now = new Date().toISOString();
  return event("User", "create", {
    id,
    name: `user ${id}`,
    email: `${id}@example.com`,
    emailVerified: false,
    image: null,
    createdAt: now,
    updatedAt: now,
    isAnonymous: null,
  });
}

export function boardEvent(id, userId, name = `board ${id}`) {
  return event("Board", "create", { id, name, createdAt: new Date().toISOString(), userId });
}

export function todoEvent(id, boardId, title = `todo ${id}`) {
  return event("Todo", "create", { id, title, description: null, isCompleted: false, createdAt: new Date().toISOString(), boardId });
}

/** Pulls with the handlers' pull part the way prisma-idb's worker does. */
export async function drainPull(pull) {
  const logs = [];
  let cursor = await pull.getCursor();
  let pages = 0;
  for (;;) {
    const page = await pull.handler(cursor);
    pages++;
    if (page.logsWithRecords.length === 0) break;
    logs.push(...page.logsWithRecords);
    await pull.setCursor(page.cursor);
    cursor = page.cursor;
    if (typeof cursor !== "string") break;
  }
  return { logs, pages, cursor };
}

export function waitFor(cond, { timeoutMs = 10_000, what = "condition" } = {}) {
  return new Promise((res, rej) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => {
      let v;
      try {
        v = cond();
      } catch (e) {
        return rej(e);
      }
      if (v) return res(v);
      if (Date.now() > deadline) return rej(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

// Generation and bundling of the e2e page: the app's schema folder is copied
// to a work directory (only the generators' outputs are redirected there),
// `prisma generate` runs offline with the real prisma-idb generator, and
// esbuild bundles page/main.ts with the generated client and the kit.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const NODE_MODULES = path.join(E2E_DIR, "node_modules");
export const KIT_INDEX = path.resolve(E2E_DIR, "../src/index.ts");
const OWN_KIT = path.join(E2E_DIR, "page/own-kit.ts");

const GENERATOR_RE = /generator\s+(\w+)\s*\{([^}]*)\}/g;

function providerOf(body) {
  return /^\s*provider\s*=\s*"([^"]*)"/m.exec(body)?.[1];
}

function withOutput(name, body, output) {
  const line = `  output = ${JSON.stringify(output)}`;
  const b = /^\s*output\s*=.*$/m.test(body) ? body.replace(/^\s*output\s*=.*$/m, line) : `${body.replace(/\s*$/, "")}\n${line}\n`;
  return `generator ${name} {${b}}`;
}

function listPrisma(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listPrisma(p));
    else if (e.name.endsWith(".prisma")) out.push(p);
  }
  return out.sort();
}

// prepareSchema copies schemaDir to <work>/schema and points the generators'
// outputs into <work>/gen. It changes nothing else. It returns what it found
// wanting: `problems` (the folder as it is cannot generate a prisma-idb
// client) and `fixes` (what the fallback copy changes to go on anyway).
export function prepareSchema(schemaDir, work) {
  const problems = [];
  const fixes = [];
  if (!fs.existsSync(schemaDir) || !fs.statSync(schemaDir).isDirectory()) {
    throw new Error(`schema folder ${schemaDir} does not exist`);
  }
  const dst = path.join(work, "schema");
  fs.rmSync(dst, { recursive: true, force: true });
  fs.cpSync(schemaDir, dst, { recursive: true });
  const gen = path.join(work, "gen");
  const idbOut = path.join(gen, "prisma-idb");
  const clientOut = path.join(gen, "prisma-client");
  let idb = 0;
  let client = 0;
  const files = listPrisma(dst);
  if (files.length === 0) throw new Error(`no .prisma file under ${schemaDir}`);
  const rel = (f) => path.relative(dst, f);
  for (const f of files) {
    let s = fs.readFileSync(f, "utf8");
    s = s.replace(GENERATOR_RE, (all, name, body) => {
      const p = providerOf(body);
      if (p === "idb-client-generator" || p?.endsWith("idb-client-generator")) {
        idb++;
        if (!/outboxSync\s*=\s*true/.test(body)) problems.push(`${rel(f)}: generator ${name} has no outboxSync = true (no sync worker)`);
        return withOutput(name, body, idbOut);
      }
      if (p === "prisma-client" || p === "prisma-client-js") {
        client++;
        return withOutput(name, body, clientOut);
      }
      return all;
    });
    const url = /^(\s*url\s*=.*)$/m;
    const ds = /datasource\s+\w+\s*\{[^}]*\}/.exec(s);
    if (ds && url.test(ds[0])) {
      problems.push(`${rel(f)}: the datasource has a url, which Prisma 7 refuses in schema files (it belongs in prisma.config.ts)`);
      fixes.push(`removed the datasource url in ${rel(f)}`);
      s = s.replace(ds[0], ds[0].replace(url, ""));
    }
    fs.writeFileSync(f, s);
  }
  if (idb === 0) {
    throw new Error(`no generator with provider = "idb-client-generator" in ${schemaDir}`);
  }
  if (client === 0) {
    problems.push(`no "prisma-client" (or "prisma-client-js") generator block: @prisma-idb/idb-client-generator refuses to run without one`);
    fixes.push(`added generator client { provider = "prisma-client" } to ${rel(files[0])}`);
    fs.appendFileSync(files[0], `\ngenerator client {\n  provider = "prisma-client"\n  output   = ${JSON.stringify(clientOut)}\n}\n`);
  }
  // Prisma 7 reads the datasource url from prisma.config.ts; generate never
  // connects to it.
  fs.writeFileSync(
    path.join(work, "prisma.config.ts"),
    `import { defineConfig } from "prisma/config";\n\nexport default defineConfig({\n  schema: "schema",\n  datasource: { url: "postgresql://offline.invalid:5432/unused" },\n});\n`,
  );
  return { schema: dst, gen, idbOut, clientOut, problems, fixes };
}

// offlineEnv is the environment under which `prisma generate` needs no
// network: PRISMA_SCHEMA_ENGINE_BINARY names an existing file, so the CLI
// skips downloading the schema engine (the only engine Prisma 7 still
// fetches at start, and one that generate never runs), and every proxy
// variable points at a closed port so that any other download fails at once
// instead of succeeding by chance.
export function offlineEnv(base = process.env) {
  const env = { ...base };
  for (const k of Object.keys(env)) {
    if (/^(https?|no|all)_proxy$/i.test(k) || k.startsWith("PRISMA_")) delete env[k];
  }
  const dead = "http://127.0.0.1:9";
  Object.assign(env, {
    PATH: `${path.join(NODE_MODULES, ".bin")}${path.delimiter}${base.PATH ?? ""}`,
    NODE_PATH: NODE_MODULES,
    PRISMA_SCHEMA_ENGINE_BINARY: path.join(E2E_DIR, "offline-schema-engine"),
    PRISMA_HIDE_UPDATE_MESSAGE: "1",
    CHECKPOINT_DISABLE: "1",
    HTTPS_PROXY: dead,
    HTTP_PROXY: dead,
    https_proxy: dead,
    http_proxy: dead,
  });
  return env;
}

export function run(cmd, args, opts) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
    p.on("error", (err) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, out: `${out}\n${err}` });
    });
  });
}

export async function generate(work) {
  const r = await run(path.join(NODE_MODULES, ".bin", "prisma"), ["generate", "--config", "prisma.config.ts"], {
    cwd: work,
    env: offlineEnv(),
    timeoutMs: 120_000,
  });
  const ok = r.code === 0 && fs.existsSync(path.join(work, "gen/prisma-idb/client/prisma-idb-client.ts"));
  return { ok, out: r.out };
}

// bundle writes <work>/www/{index.html,bundle.js}. kit: "shared" bundles
// sdk/typescript/src/index.ts, "own" page/own-kit.ts.
export async function bundle(work, kit) {
  const esbuild = await import(path.join(NODE_MODULES, "esbuild/lib/main.js")).then((m) => m.default ?? m);
  const idbOut = path.join(work, "gen/prisma-idb");
  const kitPath = kit === "own" ? OWN_KIT : KIT_INDEX;
  const www = path.join(work, "www");
  fs.mkdirSync(www, { recursive: true });
  const resolver = {
    name: "e2e-paths",
    setup(b) {
      b.onResolve({ filter: /^#gen\// }, (a) => ({ path: resolveTs(path.join(idbOut, a.path.slice(5))) }));
      b.onResolve({ filter: /^#kit$/ }, () => ({ path: kitPath }));
    },
  };
  const r = await esbuild.build({
    entryPoints: [path.join(E2E_DIR, "page/main.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    outfile: path.join(www, "bundle.js"),
    sourcemap: "inline",
    nodePaths: [NODE_MODULES],
    plugins: [resolver],
    define: { "globalThis.__E2E_KIT__": JSON.stringify(kit === "own" ? "page/own-kit.ts" : "sdk/typescript/src") },
    logLevel: "silent",
  });
  fs.writeFileSync(
    path.join(www, "index.html"),
    `<!doctype html><html><head><meta charset="utf-8"><title>syncplane e2e</title></head><body><script type="module" src="/bundle.js"></script></body></html>\n`,
  );
  return { warnings: r.warnings.map((w) => w.text) };
}

function resolveTs(p) {
  for (const c of [p, `${p}.ts`, path.join(p, "index.ts")]) if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  return p;
}

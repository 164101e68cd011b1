// kanban-rules-node: a syncplane tenant validator plugin in TypeScript. It
// speaks go-plugin's protocol for non-Go plugins: syncplane starts it with the
// magic cookie in the environment; it serves the validator contract
// (sdk/proto/validator.proto), the gRPC health service and go-plugin's
// controller and broker on 127.0.0.1, prints the one handshake line on stdout
// and runs until the host asks it to stop. Logs go to stderr.

import { readFileSync } from "node:fs";
import * as path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import { generatePluginCert } from "./autotls";
import { log } from "./log";
import { BadRequestError, check, type Event, type Verdict } from "./rules";

// The handshake of sdk/pluginwire: protocol version = the contract's major
// version; the cookie never changes.
const CORE_PROTOCOL_VERSION = 1; // go-plugin's own protocol
const APP_PROTOCOL_VERSION = 1; // syncplane.validator.v1
const MAGIC_COOKIE_KEY = "SYNCPLANE_VALIDATOR_PLUGIN";
const MAGIC_COOKIE_VALUE = "4f1c2a9e-syncplane-validator";

const PLUGIN_NAME = "kanban-rules-node";

/** The package root (dist/.. at run time). */
const ROOT = path.resolve(__dirname, "..");
/** The contract, read at run time from the syncplane tree this plugin lives in. */
const VALIDATOR_PROTO = path.resolve(ROOT, "..", "..", "sdk", "proto", "validator.proto");
const HEALTH_PROTO = path.join(ROOT, "proto", "grpc", "health", "v1", "health.proto");
const GO_PLUGIN_PROTO = path.join(ROOT, "proto", "go-plugin", "plugin.proto");

interface ValidateRequest {
  tenant: string;
  subject: string;
  events: Event[];
  reader_broker_id: number;
  call_id: string;
}

interface ValidateResponse {
  verdicts: Verdict[];
}

interface InfoResponse {
  name: string;
  version: string;
  capabilities: string[];
}

interface ConnInfo {
  service_id: number;
  network: string;
  address: string;
}

type Empty = Record<string, never>;

function main(): void {
  if (process.env[MAGIC_COOKIE_KEY] !== MAGIC_COOKIE_VALUE) {
    process.stderr.write(
      "kanban-rules-node is a syncplane validator plugin: it is not meant to be run directly.\n" +
        "Point a tenant manifest's validator.command at it and syncplane starts it when needed.\n",
    );
    process.exit(1);
  }

  process.on("uncaughtException", (err) => {
    log.error("uncaught exception; exiting", { error: String(err?.stack ?? err) });
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    log.error("unhandled rejection; exiting", { error: String(err) });
    process.exit(1);
  });

  checkProtocolVersions();

  const version = packageVersion();
  const defs = loadProtos();
  const server = new grpc.Server();
  let stopping = false;

  // Stop serving and exit; the host's Kill gives us 2 s before it kills.
  const shutdown = (reason: string): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    log.debug("shutting down", { reason });
    const force = setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, 500);
    server.tryShutdown(() => {
      clearTimeout(force);
      process.exit(0);
    });
  };

  server.addService(service(defs, "syncplane.validator.v1.Validator"), {
    Validate(
      call: grpc.ServerUnaryCall<ValidateRequest, ValidateResponse>,
      callback: grpc.sendUnaryData<ValidateResponse>,
    ): void {
      const req = call.request;
      try {
        const verdicts = check(req.events);
        log.debug("validated", {
          tenant: req.tenant,
          events: verdicts.length,
          rejected: verdicts.filter((v) => !v.allow).length,
        });
        callback(null, { verdicts });
      } catch (err) {
        // A throw is a plugin failure (a gRPC status), never a verdict: the
        // host fails the events closed with a retryable error.
        if (err instanceof BadRequestError) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: err.message });
          return;
        }
        log.error("validate failed", { tenant: req.tenant, error: String((err as Error)?.stack ?? err) });
        callback({ code: grpc.status.INTERNAL, details: `${PLUGIN_NAME}: internal error` });
      }
    },
    Info(_call: grpc.ServerUnaryCall<Empty, InfoResponse>, callback: grpc.sendUnaryData<InfoResponse>): void {
      callback(null, { name: PLUGIN_NAME, version, capabilities: [] });
    },
  });

  // go-plugin pings Check("plugin"); "" is the server as a whole.
  const known = (name: string): boolean => name === "" || name === "plugin";
  server.addService(service(defs, "grpc.health.v1.Health"), {
    Check(
      call: grpc.ServerUnaryCall<{ service: string }, { status: string }>,
      callback: grpc.sendUnaryData<{ status: string }>,
    ): void {
      if (!known(call.request.service)) {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
        return;
      }
      callback(null, { status: stopping ? "NOT_SERVING" : "SERVING" });
    },
    Watch(call: grpc.ServerWritableStream<{ service: string }, { status: string }>): void {
      // The status never changes while the process serves: send it once and
      // keep the stream open until the caller goes away.
      call.write({ status: known(call.request.service) ? "SERVING" : "SERVICE_UNKNOWN" });
    },
  });

  server.addService(service(defs, "plugin.GRPCController"), {
    Shutdown(_call: grpc.ServerUnaryCall<Empty, Empty>, callback: grpc.sendUnaryData<Empty>): void {
      callback(null, {});
      setImmediate(() => shutdown("host asked (GRPCController.Shutdown)"));
    },
  });

  // The host announces the services it serves for the plugin (its
  // HostReader) on this stream. These rules need no host reads: keep the
  // stream open, like a Go plugin that never dials the reader.
  server.addService(service(defs, "plugin.GRPCBroker"), {
    StartStream(call: grpc.ServerDuplexStream<ConnInfo, ConnInfo>): void {
      call.on("data", (info: ConnInfo) => {
        log.debug("host broker offers a service; unused", { service_id: info.service_id });
      });
      call.on("end", () => call.end());
      call.on("error", () => {
        // cancelled by the host on close
      });
    },
  });

  // Ctrl-C in a terminal reaches the whole process group: the host decides
  // when its plugins stop (as go-plugin's Go server does).
  process.on("SIGINT", () => log.debug("ignoring interrupt; the host stops this plugin"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  watchParent(shutdown);

  const clientCert = process.env["PLUGIN_CLIENT_CERT"];
  let creds = grpc.ServerCredentials.createInsecure();
  let certField = "";
  if (clientCert) {
    const mine = generatePluginCert();
    creds = grpc.ServerCredentials.createSsl(
      Buffer.from(clientCert),
      [{ private_key: Buffer.from(mine.keyPem), cert_chain: Buffer.from(mine.certPem) }],
      true,
    );
    certField = `|${mine.handshake}`;
  }
  if (process.env["PLUGIN_MULTIPLEX_GRPC"] === "true") {
    log.warn("the host asks for gRPC broker multiplexing, which this plugin does not support");
  }

  bind(server, creds)
    .then((port) => {
      const line = `${CORE_PROTOCOL_VERSION}|${APP_PROTOCOL_VERSION}|tcp|127.0.0.1:${port}|grpc${certField}\n`;
      process.stdout.write(line);
      log.debug("serving", { address: `127.0.0.1:${port}`, tls: clientCert ? true : false, version });
    })
    .catch((err: unknown) => {
      log.error("cannot listen on 127.0.0.1", { error: String(err) });
      process.exit(1);
    });
}

/** Listens on 127.0.0.1: on a free port, or within PLUGIN_MIN_PORT..PLUGIN_MAX_PORT when the host sets both. */
async function bind(server: grpc.Server, creds: grpc.ServerCredentials): Promise<number> {
  const min = Number.parseInt(process.env["PLUGIN_MIN_PORT"] ?? "", 10);
  const max = Number.parseInt(process.env["PLUGIN_MAX_PORT"] ?? "", 10);
  const ports = min > 0 && max >= min ? Array.from({ length: max - min + 1 }, (_, i) => min + i) : [0];
  let last: unknown;
  for (const p of ports) {
    try {
      return await new Promise<number>((resolve, reject) => {
        server.bindAsync(`127.0.0.1:${p}`, creds, (err, port) => (err ? reject(err) : resolve(port)));
      });
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`no free port in ${min}..${max}: ${String(last)}`);
}

/** Warns when the host does not speak this plugin's protocol version; the host then refuses the handshake with its own message. */
function checkProtocolVersions(): void {
  const offered = process.env["PLUGIN_PROTOCOL_VERSIONS"];
  if (offered && !offered.split(",").includes(String(APP_PROTOCOL_VERSION))) {
    log.warn("the host does not speak this plugin's protocol version", {
      host_versions: offered,
      plugin_version: APP_PROTOCOL_VERSION,
    });
  }
}

/** Exits when the parent (the host) is gone, in case it died without taking us along. */
function watchParent(shutdown: (reason: string) => void): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      shutdown("the host process is gone");
    }
  }, 1000).unref();
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version?: unknown };
  if (typeof pkg.version !== "string") {
    throw new Error("package.json has no version");
  }
  return pkg.version;
}

function loadProtos(): protoLoader.PackageDefinition {
  try {
    return protoLoader.loadSync([VALIDATOR_PROTO, HEALTH_PROTO, GO_PLUGIN_PROTO], {
      keepCase: true, // field names as in the .proto (payload_json, not payloadJson)
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
  } catch (err) {
    log.error("cannot load the protobuf contract", { error: String(err), validator_proto: VALIDATOR_PROTO });
    process.exit(1);
  }
}

function service(defs: protoLoader.PackageDefinition, name: string): grpc.ServiceDefinition {
  const def = defs[name];
  if (def === undefined || "format" in def) {
    throw new Error(`service ${name} missing from the loaded protos`);
  }
  return def as grpc.ServiceDefinition;
}

main();

// Package pluginhost runs a tenant's validator plugin: an untrusted
// executable, supplied by the tenant, started and supervised through
// hashicorp/go-plugin over gRPC (docs/validators.md). A Host is one
// plugin process of one tenant in this server process; it implements
// push.Validator (core/tenant checks so) in the terms of core/syncdata
// (ValidationEvent, Verdict), without importing push.
//
// # Life cycle
//
// The process starts lazily, on the first call. Before every start the
// executable's sha256 is compared with Config.SHA256; on a mismatch nothing
// runs, the call fails with ErrUnavailable and an operator-facing error is
// logged. A start that fails, and a process that dies (crash, kill, a
// resource limit), make the following calls fail fast with ErrUnavailable
// until a backoff has passed (100ms, doubling up to 30s, reset by the next
// successful call); the call after it starts a new process. A process that
// misses its deadline Config.MaxTimeouts times in a row is killed and
// replaced at the next call (recycling); one without calls for
// Config.IdleTimeout is stopped. Close kills the process; later calls fail.
//
// # Calls
//
// Every call runs under a deadline: the caller's context, the host's
// lifetime (Close) and Config.Timeout, merged. At most
// Config.MaxConcurrent calls are in flight to the plugin; more wait for a
// slot, and a slot and a started process are awaited at most
// Config.Timeout too, so a Validate returns within about twice the
// timeout. Every error wraps ErrUnavailable: the plugin could not decide.
// A plugin's verdicts are data; its gRPC errors, crashes, timeouts and
// malformed answers (not exactly one verdict per event) are errors.
//
// # Isolation
//
// The process gets no environment of the server (go-plugin's SkipHostEnv
// plus an explicit Env of PATH=/usr/bin:/bin and MALLOC_ARENA_MAX=2, see
// below; go-plugin adds its magic cookie and PLUGIN_* variables), so
// database credentials and tokens never reach tenant code. It runs in its
// own process group, which is killed as a whole (SIGKILL), and with
// Pdeathsig SIGKILL, so it dies with the server. go-plugin hands it the
// server's stdin; being in a background process group, it cannot read a
// terminal. Its stdout belongs to the handshake; its stderr (and
// what a Go plugin writes to os.Stdout/os.Stderr after the handshake,
// forwarded by go-plugin) is logged line by line with the tenant, at
// debug level unless a JSON line names a level (capped at warn).
// go-plugin's own parsing of plugin log lines is turned off: it panics on
// JSON lines whose "@message" or "@level" is not a string, which an
// untrusted plugin could use to crash the server.
//
// # Resource limits
//
// The plugin is started as `prlimit --as=MemoryBytes --cpu=CPUSeconds --
// Command` (prlimit(1) from util-linux). prlimit sets RLIMIT_AS and
// RLIMIT_CPU on itself and execs the plugin, so the limits are in force
// before the plugin's first instruction and the pid (and so the process
// group, Pdeathsig and kills) stays the plugin's. The alternative,
// prlimit(2) on the child's pid after start, needs no external binary but
// leaves a window in which the plugin runs unlimited (with go-plugin the
// pid is known only after the handshake), and lowering RLIMIT_AS below
// what is already mapped does not take memory back. The cost of the
// choice: util-linux must be installed (it is on Debian and Ubuntu, where
// it is essential; Alpine needs util-linux-misc; distroless images lack
// it). Without prlimit the host refuses to start plugins (fail closed)
// and logs why.
//
// RLIMIT_AS limits address space, not resident memory, and Go reserves
// address space generously (measured with Go 1.26 on linux/amd64): a Go
// plugin needs about 800 MB of it before it allocates anything, so under
// the 1 GiB default it gets roughly 130 MB of heap; raise MemoryBytes for
// plugins that need more. Three traps: glibc gives every thread that
// mallocs its own 64 MB arena, which kills a cgo-built Go plugin (the
// default `go build` where a C compiler exists) at start under 1 GiB, so
// the host sets MALLOC_ARENA_MAX=2 in the plugin's environment; each cgo
// thread's stack (RLIMIT_STACK, usually 8 MB) counts too, so on hosts with
// many cores plugins are best built with CGO_ENABLED=0; and the Go runtime
// fails to start with limits between about 1150 and 1250 MiB, so use
// 1 GiB or at least 1.5 GiB. Node.js starts within 1 GiB.
//
// RLIMIT_CPU counts the process's whole CPU time: at CPUSeconds the kernel
// kills it (SIGKILL; Go ignores the SIGXCPU before it), which the host
// handles as a crash. A process that lives long enough to use it up is
// thus replaced; IdleTimeout usually replaces it first.
//
// # Host reads
//
// The host serves validatorv1.HostReader to the plugin through go-plugin's
// broker: one service per process, started with the first Validate call
// of that process, whose broker id every ValidateRequest carries. Each
// Validate call gets a fresh random call_id that maps to the batch's
// scopes while the call runs; a read names it and is answered by the
// Reader restricted to those scopes, and a read with an unknown or
// expired id is refused (PermissionDenied). go-plugin keeps the service's
// connection info in the plugin for only a few seconds, so a plugin must
// dial the broker id when the first call carrying it arrives (sdk/validator
// does), not at its first read.
//
// The checksum is verified on the path just before the exec; a writer of
// the plugin directory could swap the file in between. The directory must
// be writable only by the operator.
//
// # Metrics
//
// Hosts count, per tenant id and for the life of the process (a reload
// that replaces a tenant's host keeps counting on), their calls by outcome
// (the Outcome constants) and duration, process starts, failed starts,
// restarts (a start after the host's earlier process ended) and stops by
// reason (the Stop constants), and their running processes.
// NewCollector exposes them as a prometheus.Collector for the tenants the
// caller names; core/httpapi registers one per server, restricted to its
// loaded tenants, so this package knows nothing of HTTP.
package pluginhost

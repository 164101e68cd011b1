// Command syncplane is the syncplane server and its tools. Every command
// has its own flags and --help (-h); "syncplane --help" lists the commands.
//
//	syncplane serve    [--addr :8080] [--admin-addr ADDR] [--tenants DIR] [--data ./data] [--config FILE]
//	                   [--read-timeout D] [--write-timeout D] [--idle-timeout D] [--max-conns N] ... (README, "Configuration")
//	syncplane migrate  [--tenants DIR] [--data ./data] [--config FILE]
//	syncplane compact  --tenant ID [--tenants DIR] [--data ./data] [--config FILE]
//	syncplane token    --tenant ID --sub SUBJECT [--claim KEY=VALUE]... [--ttl 24h] [--tenants DIR] [--data ./data] [--config FILE]
//	syncplane tenant   list [--tenants DIR] [--config FILE]
//	syncplane tenant   check DIR
//	syncplane tenant   init --from PRISMA_SCHEMA [--id ID] [--root-model MODEL] DIR
//	syncplane policy   check [--tenants DIR]
//	syncplane policy   explain --tenant T --sub S --scope K --model M --act A [--role R] [--tenants DIR]
//	syncplane plugin   hash FILE
//	syncplane plugin   verify --tenant T [--tenants DIR]
//	syncplane version
//	syncplane completion bash|zsh|fish|powershell
//
// The command line is parsed by cobra (spf13/cobra): long flags take two
// dashes. The single-dash long forms of the flag package the CLI used
// before ("-tenant acme", "-sub=u1") are still accepted: a word "-name" or
// "-name=value" whose name is a long flag of some command is read as
// "--name" (singleDashLongFlags).
//
// The tenant commands touch no database: list and check read tenant
// folders as the server loads them (manifest, schema, policy, key material,
// validator file and checksum, and for list the one-folder-per-id and
// shared-key rules), stopping short of creating or migrating tables; init
// writes a new folder. A tenant that list shows "ok" can still be refused
// by serve or migrate for its database alone.
//
// The database is PostgreSQL when SYNCPLANE_DATABASE_URL (or databaseURL in
// the config file) is a postgres:// URL, and the embedded SQLite store under
// the data directory otherwise. Without a tenants directory the built-in demo
// tenant "demo" is served.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/live"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/tenant"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncplane:", err)
		os.Exit(1)
	}
}

// Config is the server configuration. Each field can be set in the YAML
// config file (--config), overridden by its environment variable, which is
// overridden by its flag.
type Config struct {
	Addr        string `yaml:"addr"`        // listen address; SYNCPLANE_ADDR, --addr; default ":8080"
	DatabaseURL string `yaml:"databaseURL"` // postgres:// DSN; SYNCPLANE_DATABASE_URL; default "" (embedded SQLite)
	// ReplicaURLs are PostgreSQL streaming replicas of DatabaseURL that
	// serve pull pages; SYNCPLANE_DATABASE_REPLICA_URLS (comma-separated);
	// default none. ReplicaMaxLag takes a replica out of the routing while
	// its replay is further behind; SYNCPLANE_REPLICA_MAX_LAG; default 10s.
	ReplicaURLs   []string      `yaml:"replicaURLs"`
	ReplicaMaxLag time.Duration `yaml:"replicaMaxLag"`
	TenantsDir    string        `yaml:"tenants"`   // tenants directory; SYNCPLANE_TENANTS_DIR, --tenants; default "" (the demo tenant)
	DataDir       string        `yaml:"dataDir"`   // SQLite files and the demo key; SYNCPLANE_DATA_DIR, --data; default "./data"
	LogLevel      string        `yaml:"logLevel"`  // debug, info, warn, error; SYNCPLANE_LOG_LEVEL; default "info"
	AdminAddr     string        `yaml:"adminAddr"` // admin listen address (pprof, /metrics); SYNCPLANE_ADMIN_ADDR, --admin-addr; default "" (off)

	// PublicMetrics serves GET /metrics on the API address too (it names
	// every tenant); SYNCPLANE_PUBLIC_METRICS, --public-metrics; default false.
	PublicMetrics bool `yaml:"publicMetrics"`

	// Limits of the API's HTTP server (README, "Configuration"). Durations
	// are Go durations ("30s"); 0 means the default.
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"` // a request's headers; SYNCPLANE_READ_HEADER_TIMEOUT, --read-header-timeout; default 10s
	ReadTimeout       time.Duration `yaml:"readTimeout"`       // a request's headers and body; SYNCPLANE_READ_TIMEOUT, --read-timeout; default 30s
	WriteTimeout      time.Duration `yaml:"writeTimeout"`      // an ordinary response (each write of an event stream, the page of a long poll); SYNCPLANE_WRITE_TIMEOUT, --write-timeout; default 30s
	IdleTimeout       time.Duration `yaml:"idleTimeout"`       // an idle keep-alive connection; SYNCPLANE_IDLE_TIMEOUT, --idle-timeout; default 75s
	MaxHeaderBytes    int           `yaml:"maxHeaderBytes"`    // request line and headers; SYNCPLANE_MAX_HEADER_BYTES, --max-header-bytes; default 65536
	MaxConns          int           `yaml:"maxConns"`          // open connections per process; SYNCPLANE_MAX_CONNS, --max-conns; default 0: ¾ of the open-file limit, at most 10000; -1: no cap
}

// migrate applies the platform migrations and loads (migrating) every
// tenant, then prints the migrated tenants and, on Citus, whether each
// tenant's schema is distributed (docs/citus.md).
func migrate(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger, stdout io.Writer) error {
	st, reg, err := open(ctx, cfg, getenv, log, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(stdout, "migrated tenants: %v\n", reg.IDs())
	dist, err := st.Distribution(ctx, reg.IDs())
	if err != nil {
		log.Warn("citus: could not tell which tenant schemas are distributed", "err", err.Error())
	}
	for _, line := range dist.Lines() {
		fmt.Fprintln(stdout, line)
	}
	return nil
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func loadConfig(file string, getenv func(string) string) (Config, error) {
	cfg := Config{Addr: ":8080", DataDir: "./data", LogLevel: "info"}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", file, err)
		}
	}
	override(&cfg.Addr, getenv("SYNCPLANE_ADDR"))
	override(&cfg.DatabaseURL, getenv("SYNCPLANE_DATABASE_URL"))
	override(&cfg.TenantsDir, getenv("SYNCPLANE_TENANTS_DIR"))
	override(&cfg.DataDir, getenv("SYNCPLANE_DATA_DIR"))
	override(&cfg.LogLevel, getenv("SYNCPLANE_LOG_LEVEL"))
	override(&cfg.AdminAddr, getenv("SYNCPLANE_ADMIN_ADDR"))
	for _, v := range []struct {
		env string
		set func(string) error
	}{
		{"SYNCPLANE_PUBLIC_METRICS", boolSetter(&cfg.PublicMetrics)},
		{"SYNCPLANE_READ_HEADER_TIMEOUT", durationSetter(&cfg.ReadHeaderTimeout)},
		{"SYNCPLANE_READ_TIMEOUT", durationSetter(&cfg.ReadTimeout)},
		{"SYNCPLANE_WRITE_TIMEOUT", durationSetter(&cfg.WriteTimeout)},
		{"SYNCPLANE_IDLE_TIMEOUT", durationSetter(&cfg.IdleTimeout)},
		{"SYNCPLANE_MAX_HEADER_BYTES", intSetter(&cfg.MaxHeaderBytes)},
		{"SYNCPLANE_MAX_CONNS", intSetter(&cfg.MaxConns)},
		{"SYNCPLANE_REPLICA_MAX_LAG", durationSetter(&cfg.ReplicaMaxLag)},
		{"SYNCPLANE_DATABASE_REPLICA_URLS", func(s string) error {
			cfg.ReplicaURLs = nil
			for _, u := range strings.Split(s, ",") {
				if u = strings.TrimSpace(u); u != "" {
					cfg.ReplicaURLs = append(cfg.ReplicaURLs, u)
				}
			}
			return nil
		}},
	} {
		if s := getenv(v.env); s != "" {
			if err := v.set(s); err != nil {
				return cfg, fmt.Errorf("%s: %w", v.env, err)
			}
		}
	}
	return cfg, nil
}

func boolSetter(dst *bool) func(string) error {
	return func(s string) (err error) { *dst, err = strconv.ParseBool(s); return err }
}

func durationSetter(dst *time.Duration) func(string) error {
	return func(s string) (err error) { *dst, err = time.ParseDuration(s); return err }
}

func intSetter(dst *int) func(string) error {
	return func(s string) (err error) { *dst, err = strconv.Atoi(s); return err }
}

// serverFlags are the flags of Config's server limits; a flag overrides
// the file and the environment only when it is given.
type serverFlags struct {
	fs            *pflag.FlagSet
	publicMetrics *bool
	durations     map[string]*time.Duration
	ints          map[string]*int
}

func limitFlags(fs *pflag.FlagSet) *serverFlags {
	f := &serverFlags{fs: fs, durations: map[string]*time.Duration{}, ints: map[string]*int{}}
	f.publicMetrics = fs.Bool("public-metrics", false, "serve /metrics on the API address too (env SYNCPLANE_PUBLIC_METRICS; default: only on --admin-addr)")
	for _, d := range []struct {
		name, usage string
		def         time.Duration
	}{
		{"read-header-timeout", "time to read a request's headers (env SYNCPLANE_READ_HEADER_TIMEOUT)", defaultReadHeaderTimeout},
		{"read-timeout", "time to read a whole request, body included (env SYNCPLANE_READ_TIMEOUT)", defaultReadTimeout},
		{"write-timeout", "time to answer an ordinary request; event streams and long polls get it per write (env SYNCPLANE_WRITE_TIMEOUT)", defaultWriteTimeout},
		{"idle-timeout", "time a keep-alive connection may stay idle (env SYNCPLANE_IDLE_TIMEOUT)", defaultIdleTimeout},
	} {
		f.durations[d.name] = fs.Duration(d.name, 0, fmt.Sprintf("%s; default %v", d.usage, d.def))
	}
	f.ints["max-header-bytes"] = fs.Int("max-header-bytes", 0, fmt.Sprintf("largest request line and headers (env SYNCPLANE_MAX_HEADER_BYTES); default %d", defaultMaxHeaderBytes))
	f.ints["max-conns"] = fs.Int("max-conns", 0, fmt.Sprintf("open connections per process, refused with 503 beyond (env SYNCPLANE_MAX_CONNS); default 0: 3/4 of the open-file limit, at most %d; -1: no cap", defaultMaxConns))
	return f
}

// apply copies the flags given on the command line into cfg.
func (f *serverFlags) apply(cfg *Config) {
	f.fs.Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "public-metrics":
			cfg.PublicMetrics = *f.publicMetrics
		case "read-header-timeout":
			cfg.ReadHeaderTimeout = *f.durations[fl.Name]
		case "read-timeout":
			cfg.ReadTimeout = *f.durations[fl.Name]
		case "write-timeout":
			cfg.WriteTimeout = *f.durations[fl.Name]
		case "idle-timeout":
			cfg.IdleTimeout = *f.durations[fl.Name]
		case "max-header-bytes":
			cfg.MaxHeaderBytes = *f.ints[fl.Name]
		case "max-conns":
			cfg.MaxConns = *f.ints[fl.Name]
		}
	})
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// open connects the store, applies the platform migrations and loads (and
// migrates) every tenant. Tenants that fail are logged and skipped.
// hub, when set, receives the commits (live updates).
func open(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger, hub *live.Hub) (*store.Store, *tenant.Registry, error) {
	st, err := store.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	opt := tenant.Options{Store: st, Log: log, Getenv: getenv, Live: hub, Maintain: hub != nil}
	if cfg.TenantsDir == "" {
		key, err := tenant.DemoKey(cfg.DataDir)
		if err != nil {
			st.Close()
			return nil, nil, fmt.Errorf("demo key: %w", err)
		}
		t, err := tenant.LoadDemo(ctx, key, opt)
		if err != nil {
			st.Close()
			return nil, nil, fmt.Errorf("demo tenant: %w", err)
		}
		reg := tenant.NewRegistry()
		reg.Put(t)
		return st, reg, nil
	}
	reg, errs := tenant.LoadDir(ctx, cfg.TenantsDir, opt)
	for _, err := range errs {
		log.Error("tenant refused", "err", err.Error())
	}
	return st, reg, nil
}

// compact loads the tenants (migrating them), then compacts tenant id's
// changelog in the foreground (store.Tenant.Compact: superseded entries,
// then tombstones past the tenant's tombstoneRetention) and prints what it
// removed. Servers may go on serving the tenant meanwhile.
func compact(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger, id string, stdout io.Writer) error {
	if id == "" {
		return errors.New("compact: --tenant is required")
	}
	st, reg, err := open(ctx, cfg, getenv, log, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	t := reg.Get(id)
	if t == nil {
		return fmt.Errorf("compact: tenant %q is not loaded (known: %v; a refused tenant is logged above)", id, reg.IDs())
	}
	r, err := t.Store.Compact(ctx, store.CompactOptions{})
	if err != nil {
		return fmt.Errorf("compact %s: %w", id, err)
	}
	retention := "none"
	if d := t.Store.TombstoneRetention(); d > 0 {
		retention = d.String()
	}
	fmt.Fprintf(stdout, "tenant %s: %d entries before; removed %d superseded entries and %d tombstones (tombstoneRetention %s); "+
		"%d entries after, %d of them tombstones; %d batches in %s\n",
		id, r.Before, r.Superseded, r.Tombstones, retention, r.After, r.Deletes, r.Batches, r.Took.Round(time.Millisecond))
	return nil
}

// retryUnavailable loads again, every 10 s until ctx ends, the tenants
// whose own database did not answer (their requests get 503 meanwhile).
func retryUnavailable(ctx context.Context, reg *tenant.Registry, opt tenant.Options, log *slog.Logger) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, err := range reg.RetryUnavailable(ctx, opt) {
				log.Warn("tenant still unavailable", "err", err.Error())
			}
		}
	}
}

// defaultGCPercent is the garbage collector's target when GOGC is not set:
// a push batch and a pull page allocate mostly short-lived memory, and at
// 200 the server spends 10–15 % less CPU on push and pull than at Go's
// default 100, for about 10 MiB more RSS under the standard benchmark
// (README, "Benchmarks").
const defaultGCPercent = 200

func serve(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger) error {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	tp, stopTracing, err := setupTracing(ctx, getenv, log) // tracing.go
	if err != nil {
		return err
	}
	defer stopTracing() // last: the spans of the drained requests go out
	hub := live.NewHub()
	st, reg, err := open(ctx, cfg, getenv, log, hub)
	if err != nil {
		return err
	}
	defer st.Close()
	defer reg.Close() // stops the validator plugins
	if len(cfg.ReplicaURLs) > 0 {
		if err := st.AddReplicas(ctx, cfg.ReplicaURLs, store.ReplicaOptions{MaxLag: cfg.ReplicaMaxLag, Log: log}); err != nil {
			return err
		}
		for _, r := range st.Replicas() {
			log.Info("read replica", "replica", r.Name, "up", r.Up, "why", r.Why)
		}
	}
	if st.Postgres() {
		// One connection per process hears every process's commits.
		lctx, stopListen := context.WithCancel(ctx)
		listening := make(chan struct{})
		go func() {
			defer close(listening)
			_ = st.Listen(lctx, store.Listener{ // returns nil once lctx ends
				Notify: func(tenantID, scope, id string) {
					hub.Publish(live.Poke{Tenant: tenantID, Scope: scope, ChangelogID: id})
				},
				// After a reconnection, poke the scopes that moved while nobody listened.
				Subscribed: hub.Subscribed,
				CatchUp:    func(tenantID string, heads map[string]string) { hub.CatchUp(tenantID, heads) },
				CatchUpFailed: func(tenantID string, err error) {
					log.Warn("commit listener: cannot catch up a tenant's scopes", "tenant", tenantID, "err", err)
				},
				Lost: func(err error) { log.Warn("commit listener lost its connection; reconnecting", "err", err) },
			})
		}()
		defer func() { stopListen(); <-listening }()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	opt := tenant.Options{Store: st, Log: log, Getenv: getenv, Live: hub, Maintain: hub != nil}
	reload := func() {
		for _, err := range tenant.Reload(ctx, reg, cfg.TenantsDir, opt) {
			log.Error("tenant reload refused; the last good version keeps serving", "err", err.Error())
		}
		log.Info("tenants reloaded", "tenants", reg.IDs())
	}
	if cfg.TenantsDir != "" {
		w, err := tenant.NewWatcher(reg, cfg.TenantsDir, opt, 0)
		if err != nil {
			return fmt.Errorf("watch tenants: %w", err)
		}
		defer w.Close()
		reload() // what changed between the first load and the watch
		go w.Run(ctx)
		go retryUnavailable(ctx, reg, opt, log)
	}
	var adminLn net.Listener
	if cfg.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("admin address: %w", err)
		}
	}
	api := httpapi.New(reg, log, httpapi.WithReady(st.Ready), httpapi.WithDBStats(st.DBStats), httpapi.WithLive(hub, 0),
		httpapi.WithWriteTimeout(cfg.WriteTimeout), httpapi.WithPublicMetrics(cfg.PublicMetrics),
		httpapi.WithCollectors(st.ReplicaCollectors()...), httpapi.WithTracerProvider(tp))
	// The API sets each response's write deadline itself (event streams
	// and long polls last longer than WriteTimeout); the server's own
	// WriteTimeout, the same, covers what never reaches it.
	srv := &http.Server{Handler: api, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if n := connCap(cfg.MaxConns); n > 0 {
		capped := newCapListener(ln, n)
		ln, srv.ConnState = capped, capped.connState
		log.Info("connection cap", "maxConns", n)
	}
	srv.RegisterOnShutdown(api.StopStreams) // event streams and long polls never go idle by themselves
	var reloadOpt *tenant.Options
	if cfg.TenantsDir != "" {
		reloadOpt = &opt
	}
	adminH, err := withAdminAPI(adminHandler(api.Metrics()), getenv, reg, st, reloadOpt, log)
	if err != nil {
		ln.Close()
		if adminLn != nil {
			adminLn.Close()
		}
		return err
	}
	admin := &http.Server{Handler: adminH, ReadHeaderTimeout: 10 * time.Second}
	defer admin.Close() // a running profile is cut off once the API has drained
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if adminLn != nil {
		go func() { errc <- admin.Serve(adminLn) }()
		log.Info("admin serving", "addr", adminLn.Addr().String())
	}
	log.Info("serving", "addr", ln.Addr().String(), "tenants", reg.IDs(), "postgres", st.Postgres())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case err := <-errc:
			srv.Close()
			return err
		case <-ctx.Done():
			break wait
		case <-hup:
			if cfg.TenantsDir != "" {
				reload()
			}
		}
	}
	log.Info("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// adminHandler serves pprof and the metrics on the opt-in admin address,
// apart from the API so that profiles are never exposed with it.
func adminHandler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/metrics", metrics)
	return mux
}

// token prints a token of tenant id with the given claims, signed with
// the tenant's HS256 secret; Issuer and Audience are the tenant's.
func token(cfg Config, getenv func(string) string, id string, claims auth.SignClaims, stdout io.Writer) error {
	if id == "" || claims.Subject == "" {
		return errors.New("token: --tenant and --sub are required")
	}
	var f *tenant.Folder
	if cfg.TenantsDir == "" {
		if id != "demo" {
			return fmt.Errorf("token: no tenants directory is configured, so the only tenant is %q", "demo")
		}
		key, err := tenant.DemoKey(cfg.DataDir)
		if err != nil {
			return err
		}
		f = tenant.DemoFolder(key, getenv)
	} else {
		dirs, err := tenant.Dirs(cfg.TenantsDir)
		if err != nil {
			return err
		}
		for _, d := range dirs {
			if df, err := tenant.OpenFolder(d, getenv); err == nil && df.Manifest.ID == id {
				f = df
			}
		}
		if f == nil {
			return fmt.Errorf("token: no tenant %q with an HS256 key under %s", id, cfg.TenantsDir)
		}
	}
	secret, err := f.SigningSecret()
	if err != nil {
		return fmt.Errorf("token: %w", err) // say why the tenant cannot sign
	}
	claims.Issuer, claims.Audience = f.Manifest.Auth.Issuer, f.Manifest.Auth.Audience
	tok, err := auth.SignHS256(secret, claims)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

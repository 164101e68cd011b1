package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/syncplane/syncplane/core/auth"
)

// cli is one invocation's environment: the command tree is built afresh
// for each run, so that runs (tests) share no flag state.
type cli struct {
	ctx            context.Context
	getenv         func(string) string
	stdout, stderr io.Writer
}

// run runs the command line args (without the program name).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{ctx: ctx, getenv: getenv, stdout: stdout, stderr: stderr}
	root := c.rootCmd()
	root.SetArgs(singleDashLongFlags(root, args))
	return root.ExecuteContext(ctx)
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "syncplane",
		Short: "syncplane, the multi-tenant sync server for prisma-idb apps, and its tools",
		Long: `syncplane is the multi-tenant sync server for prisma-idb apps, and its tools.

The database is PostgreSQL when SYNCPLANE_DATABASE_URL (or databaseURL in the
config file) is a postgres:// URL, and the embedded SQLite store under the data
directory otherwise. Without a tenants directory the built-in demo tenant
"demo" is served. A flag beats its environment variable, which beats the
config file (README, "Configuration").`,
		SilenceErrors: true, // main prints the error once, "syncplane: ..."
		SilenceUsage:  true, // a failing command does not print its usage; a bad flag or argument does (below)
		// Without a command: the usage, and exit status 1.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				cmd.SetOut(cmd.ErrOrStderr())
				_ = cmd.Usage()
				return fmt.Errorf("unknown command %q (see syncplane --help)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Usage()
			return errors.New("no command")
		},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	// A bad flag prints the command's usage (with its flags) to stderr.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Usage()
		// pflag reads an unknown "-name" as shorthands; say what was meant.
		if _, word, ok := strings.Cut(err.Error(), "unknown shorthand flag: "); ok {
			if _, w, ok := strings.Cut(word, " in "); ok && len(w) > 2 {
				err = fmt.Errorf("unknown flag: %s", w)
			}
		}
		if !cmd.HasParent() {
			return err
		}
		return fmt.Errorf("%s: %w", strings.TrimPrefix(cmd.CommandPath(), "syncplane "), err)
	})
	root.AddGroup(&cobra.Group{ID: "server", Title: "Server:"}, &cobra.Group{ID: "tools", Title: "Tools:"})
	root.SetHelpCommandGroupID("tools")
	root.SetCompletionCommandGroupID("tools")
	for _, cmd := range []*cobra.Command{c.serveCmd(), c.migrateCmd(), c.compactCmd()} {
		cmd.GroupID = "server"
		root.AddCommand(cmd)
	}
	for _, cmd := range []*cobra.Command{c.tokenCmd(), c.tenantCmd(), c.policyCmd(), c.pluginCmd(), c.versionCmd()} {
		cmd.GroupID = "tools"
		root.AddCommand(cmd)
	}
	// cobra's help and completion commands (bash, zsh, fish, powershell),
	// added now rather than at Execute so that they are part of the tree.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

// configFlags are the flags that locate the configuration, which every
// command that reads the configuration has.
type configFlags struct {
	file, tenants, data string
}

func (f *configFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.file, "config", "", "YAML config file (README, \"Configuration\")")
	fs.StringVar(&f.tenants, "tenants", "", "tenants directory (env SYNCPLANE_TENANTS_DIR; default: the built-in demo tenant)")
	fs.StringVar(&f.data, "data", "", "data directory: SQLite files and the demo key (env SYNCPLANE_DATA_DIR; default ./data)")
}

// load is the configuration: the file, then the environment, then the flags.
func (f *configFlags) load(getenv func(string) string) (Config, error) {
	cfg, err := loadConfig(f.file, getenv)
	if err != nil {
		return cfg, err
	}
	override(&cfg.TenantsDir, f.tenants)
	override(&cfg.DataDir, f.data)
	if err := checkLimits(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func (c *cli) serveCmd() *cobra.Command {
	var (
		cf        configFlags
		addr      string
		adminAddr string
		limits    *serverFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the sync server",
		Long: `Run the sync server: migrate the platform tables and every tenant's, serve
the API on --addr, reload the tenants when their folders change (or on SIGHUP),
and drain in-flight requests on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cf.file, c.getenv)
			if err != nil {
				return err
			}
			override(&cfg.Addr, addr)
			override(&cfg.AdminAddr, adminAddr)
			override(&cfg.TenantsDir, cf.tenants)
			override(&cfg.DataDir, cf.data)
			limits.apply(&cfg)
			if err := checkLimits(&cfg); err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, c.getenv, newLogger(c.stderr, cfg.LogLevel))
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&addr, "addr", "", "listen address (env SYNCPLANE_ADDR; default :8080)")
	fs.StringVar(&adminAddr, "admin-addr", "", "admin listen address for pprof and /metrics, e.g. 127.0.0.1:6060 (env SYNCPLANE_ADMIN_ADDR; default off)")
	cf.add(fs)
	limits = limitFlags(fs)
	return cmd
}

func (c *cli) migrateCmd() *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the platform and tenant table migrations, then exit",
		Long: `Apply the platform table migrations and those of every tenant (each tenant
loaded as serve loads it), print the migrated tenants, then exit. On Citus,
also print whether each tenant's schema is distributed (docs/citus.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load(c.getenv)
			if err != nil {
				return err
			}
			return migrate(cmd.Context(), cfg, c.getenv, newLogger(c.stderr, cfg.LogLevel), c.stdout)
		},
	}
	cmd.Flags().SortFlags = false
	cf.add(cmd.Flags())
	return cmd
}

func (c *cli) compactCmd() *cobra.Command {
	var (
		cf configFlags
		id string
	)
	cmd := &cobra.Command{
		Use:   "compact --tenant ID",
		Short: "Compact one tenant's changelog now and report what it removed",
		Long: `Load the tenants (migrating them), then compact the changelog of one tenant in
the foreground: superseded entries, then tombstones past the tenant's
tombstoneRetention. Servers may go on serving the tenant meanwhile.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load(c.getenv)
			if err != nil {
				return err
			}
			return compact(cmd.Context(), cfg, c.getenv, newLogger(c.stderr, cfg.LogLevel), id, c.stdout)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&id, "tenant", "", "tenant id (required)")
	cf.add(fs)
	return cmd
}

func (c *cli) tokenCmd() *cobra.Command {
	var (
		cf      configFlags
		id, sub string
		ttl     time.Duration
		claims  = map[string]any{}
	)
	cmd := &cobra.Command{
		Use:   "token --tenant ID --sub SUBJECT",
		Short: "Print a development token signed with a tenant's HS256 key",
		Long: `Print a token of a tenant signed with its HS256 key (the demo's generated key
without a tenants directory), with the tenant's issuer and audience, for
development and tests.`,
		Example: `  syncplane token --tenant demo --sub u1
  syncplane token --tenants ./tenants --tenant acme --sub u1 --ttl 2h --claim email=ada@example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load(c.getenv)
			if err != nil {
				return err
			}
			return token(cfg, c.getenv, id, auth.SignClaims{Subject: sub, TTL: ttl, Extra: claims}, c.stdout)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&id, "tenant", "", "tenant id (required)")
	fs.StringVar(&sub, "sub", "", "subject, the sub claim (required)")
	fs.DurationVar(&ttl, "ttl", 24*time.Hour, "lifetime")
	fs.Func("claim", "a further string claim KEY=VALUE, e.g. email=ada@example.com (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		switch {
		case !ok || k == "":
			return fmt.Errorf("%q is not KEY=VALUE", s)
		case k == "sub" || k == "iss" || k == "aud" || k == "exp" || k == "iat":
			return fmt.Errorf("claim %q is set by syncplane token itself (--sub, --ttl, the tenant's issuer and audience)", k)
		case claims[k] != nil:
			return fmt.Errorf("claim %q is given twice", k)
		}
		claims[k] = v
		return nil
	})
	cf.add(fs)
	return cmd
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprint(c.stdout, versionText())
			return nil
		},
	}
}

// versionText is what `syncplane version` prints: the module version
// (a tag, a pseudo-version, or "(devel)" for a build from a checkout),
// the VCS revision and time the Go toolchain stamped (none under
// `go run` or `go test`), and the Go version.
func versionText() string {
	var b strings.Builder
	version, revision, vcsTime, modified := "(unknown)", "", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	fmt.Fprintf(&b, "syncplane %s\n", version)
	if revision != "" {
		fmt.Fprintf(&b, "revision  %s", revision)
		if vcsTime != "" {
			fmt.Fprintf(&b, " (%s)", vcsTime)
		}
		if modified {
			b.WriteString(" with uncommitted changes")
		}
		b.WriteString("\n")
	} else {
		b.WriteString("revision  unknown (not stamped: built outside a VCS checkout, or with go run / -buildvcs=false)\n")
	}
	fmt.Fprintf(&b, "go        %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// groupCmd is a command that only holds subcommands: without one, or with
// an unknown one, it prints its usage to stderr and fails (cobra would
// print its help and succeed).
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Usage()
			if len(args) == 0 {
				return fmt.Errorf("%s: no command", cmd.Name())
			}
			return fmt.Errorf("%s: unknown command %q", cmd.Name(), args[0])
		},
	}
}

// singleDashLongFlags rewrites "-name" and "-name=value" to "--name" and
// "--name=value" when name is a long flag of some command, so that the
// single-dash forms the standard flag package accepted (syncplane's CLI
// before cobra) keep working: pflag would read "-tenant" as the
// shorthands -t -e -n .... Nothing after "--" is rewritten, nor a word
// that is not a known flag name (a value such as "-1s").
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{"help": true}
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		cmd.PersistentFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		out[i] = a
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && names[name] {
				out[i] = "-" + a
			}
		}
	}
	return out
}

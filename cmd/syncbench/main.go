// Command syncbench is a load generator for syncplane (or any server
// speaking prisma-idb's push/pull protocol) that verifies as it measures.
//
// Each of --users users is its own scope of the kanban demo schema: it
// pushes its User, Boards and Todos in batches of --batch events, with
// --clients concurrent clients (each owning a set of users), then a round
// of creates/updates/deletes per --mix, then pulls everything back. Every
// event must be acknowledged without error, every acknowledged changelog
// id pulled exactly once by its user, and the records' final state equal
// to what was written last; otherwise it exits with status 1.
//
//	syncbench --url http://127.0.0.1:8080 --secret "$(cat data/demo.key)" --users 20
//	syncbench --url http://127.0.0.1:8080 --token-cmd 'syncplane token --tenant demo --sub {sub}'
//
// With --serve it starts `syncplane serve` itself (built from this module,
// or --server-bin) on a free port, a temporary data directory and the
// embedded SQLite store, or a scratch PostgreSQL database with
// --serve-postgres; it signs tokens with the demo key the server
// generates, samples the server's RSS during the run and stops it with
// SIGTERM:
//
//	syncbench --serve --users 20
//	syncbench --serve --serve-postgres 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
//
// With --ceiling-dsn it also writes the same rows straight into PostgreSQL
// (scratch schema syncbench_ceiling, dropped afterwards) with multi-row
// INSERTs and with COPY, reads them back by page, measures prisma-idb's
// reference server design on the same rows (one transaction per event;
// --reference=false skips it), and prints syncplane's figures as a ratio
// of each.
//
// Five more commands:
//
//	syncbench standard   # the standard scenario on SQLite and PostgreSQL, one table
//	syncbench sse-idle --conns 10000   # server memory per idle event stream
//	syncbench poke-latency --pushes 500   # commit through one server to poke on another's stream
//	syncbench abuse   # a hostile client's cost to the server (issue 9, findings 1–4)
//	syncbench bootstrap --server before=PATH --server after   # a new device's first pull after a long history
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: 0 verified, 1 verification failed, 2 could not run.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "standard":
			return runStandard(ctx, args[1:], stdout, stderr)
		case "sse-idle":
			return runSSEIdle(ctx, args[1:], stdout, stderr)
		case "poke-latency":
			return runPokeLatency(ctx, args[1:], stdout, stderr)
		case "abuse":
			return runAbuse(ctx, args[1:], stdout, stderr)
		case "bootstrap":
			return runBootstrap(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("syncbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncbench [flags]            push, pull and verify (--url, or --serve)")
		fmt.Fprintln(stderr, "       syncbench standard [flags]   the standard scenario on SQLite and PostgreSQL")
		fmt.Fprintln(stderr, "       syncbench sse-idle [flags]   server memory per idle event stream")
		fmt.Fprintln(stderr, "       syncbench poke-latency [flags]   commit-to-poke latency across two servers on PostgreSQL")
		fmt.Fprintln(stderr, "       syncbench abuse [flags]      the server under a hostile client: findings 1–4 of issue 9")
		fmt.Fprintln(stderr, "       syncbench bootstrap [flags]  a new device's first pull after R records were each written H times")
		fs.PrintDefaults()
	}
	var (
		cfg      = Config{Tenant: "demo"}
		tokenCmd = fs.String("token-cmd", "", "shell command printing a token for subject {sub} on its last line")
		secret   = fs.String("secret", "", "HS256 secret to sign tokens with (instead of --token-cmd)")
		issuer   = fs.String("issuer", "", "token issuer (with --secret)")
		audience = fs.String("audience", "", "token audience (with --secret)")
		mix      = fs.String("mix", "70/20/10", "create/update/delete percentages of the second round")
		asJSON   = fs.Bool("json", false, "print the report as JSON")
		seed     = fs.Uint64("seed", 1, "random seed of the workload")
		cpuProf  = fs.String("cpuprofile", "", "write syncbench's own CPU profile to `file` (the load generator's share of the machine)")
		serve    = fs.Bool("serve", false, "start `syncplane serve` (see --server-bin, --serve-postgres) instead of --url, and report its RSS")
		sc       ServeConfig
	)
	fs.StringVar(&sc.Bin, "server-bin", "", "syncplane executable for --serve (default: go build ./cmd/syncplane into a temporary directory)")
	fs.StringVar(&sc.PostgresURL, "serve-postgres", "", "PostgreSQL URL: --serve on a scratch database created there (default: embedded SQLite)")
	fs.BoolVar(&cfg.Reference, "reference", true, "with --ceiling-dsn, also measure prisma-idb's reference design (one transaction per event)")
	fs.Func("postmaster", "`pid` of a PostgreSQL postmaster (repeatable): report the CPU its cluster spent per pushed event and per pulled entry (Linux)", func(v string) error {
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 {
			return fmt.Errorf("not a pid: %q", v)
		}
		cfg.Postmasters = append(cfg.Postmasters, pid)
		return nil
	})
	fs.StringVar(&cfg.URL, "url", "", "server base URL, e.g. http://127.0.0.1:8080; several, comma-separated, take requests in turn (a round-robin load balancer)")
	fs.StringVar(&cfg.Tenant, "tenant", "demo", "tenant id")
	fs.IntVar(&cfg.Users, "users", 10, "users (one scope each)")
	fs.IntVar(&cfg.BoardsPerUser, "boards-per-user", 10, "boards per user")
	fs.IntVar(&cfg.TodosPerBoard, "todos-per-board", 20, "todos per board")
	fs.IntVar(&cfg.Batch, "batch", 100, "events per push")
	fs.IntVar(&cfg.Clients, "clients", 8, "concurrent clients")
	fs.IntVar(&cfg.Changes, "changes", -1, "second-round events per user (-1: half the first round's boards and todos)")
	fs.IntVar(&cfg.PullLimit, "pull-limit", 50, "pull page size")
	fs.BoolVar(&cfg.History, "history", false, "the server keeps every changelog entry (a build before compaction): verify its pulls as a full history")
	fs.StringVar(&cfg.CeilingDSN, "ceiling-dsn", "", "PostgreSQL URL: also measure the database's own limit for the same rows")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fmt.Fprintln(stderr, "syncbench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "syncbench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	var err error
	if cfg.Mix, err = ParseMix(*mix); err != nil {
		fmt.Fprintln(stderr, "syncbench:", err)
		return 2
	}
	switch {
	case *secret != "" && *tokenCmd != "":
		fmt.Fprintln(stderr, "syncbench: give --secret or --token-cmd, not both")
		return 2
	case *secret != "":
		cfg.Tokens = SecretTokens([]byte(*secret), *issuer, *audience, 24*time.Hour)
	case *tokenCmd != "":
		cfg.Tokens = CommandTokens(*tokenCmd)
	}
	cfg.Seed = *seed
	var b [4]byte
	_, _ = rand.Read(b[:])
	cfg.RunID = hex.EncodeToString(b[:])

	var rep *Report
	switch {
	case *serve && (cfg.URL != "" || cfg.Tokens != nil):
		fmt.Fprintln(stderr, "syncbench: --serve starts its own server and signs its own tokens: no --url, --secret or --token-cmd")
		return 2
	case *serve:
		rep, err = RunServed(ctx, cfg, sc)
	default:
		rep, err = Run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "syncbench:", err)
		return 2
	}
	return finish(stdout, *asJSON, rep, func(w io.Writer, rep *Report) { printReport(w, cfg, rep) }, rep.Verified)
}

func printReport(w io.Writer, cfg Config, r *Report) {
	target := cfg.URL
	if r.Server != nil {
		target = "syncplane serve (" + r.Server.Database + ", started by syncbench)"
	}
	fmt.Fprintf(w, "syncbench %s: %s tenant %s, %d users × (%d boards × %d todos), batch %d, %d clients, mix %d/%d/%d\n",
		r.RunID, target, cfg.Tenant, r.Users, cfg.BoardsPerUser, cfg.TodosPerBoard, cfg.Batch, cfg.Clients,
		cfg.Mix.Create, cfg.Mix.Update, cfg.Mix.Delete)
	pushLine := func(name string, p PushStats) {
		fmt.Fprintf(w, "  %-13s %7d events  %6.2fs  %9.0f events/s   batch p50 %6.1f ms  p99 %6.1f ms\n",
			name, p.Events, p.Seconds, p.EventsPerSec, p.BatchP50Ms, p.BatchP99Ms)
	}
	pullLine := func(name string, p PullStats) {
		fmt.Fprintf(w, "  %-13s %7d entries %6.2fs  %9.0f entries/s  page  p50 %6.1f ms  p99 %6.1f ms\n",
			name, p.Entries, p.Seconds, p.EntriesPerSec, p.PageP50Ms, p.PageP99Ms)
	}
	pushLine("push creates", r.Creates)
	pushLine("push changes", r.Changes)
	pushLine("push total", r.Push)
	pullLine("pull", r.Pull)
	if r.Push.Retries > 0 {
		fmt.Fprintf(w, "  %d requests retried after 429/503\n", r.Push.Retries)
	}
	for _, c := range r.Clusters {
		fmt.Fprintf(w, "  postgres cluster of postmaster %d: %.1f µs CPU per pushed event, %.1f per pulled entry\n",
			c.Postmaster, c.PushMicrosPerEvent, c.PullMicrosPerEntry)
	}
	if c := r.Ceiling; c != nil {
		fmt.Fprintln(w, "ceiling (same rows straight into PostgreSQL):")
		pushLine("INSERT", c.Insert.Push)
		pullLine("read (INSERT)", c.Insert.Pull)
		pushLine("COPY", c.Copy.Push)
		pullLine("read (COPY)", c.Copy.Pull)
		fmt.Fprintf(w, "  syncplane/ceiling: push %.0f%% of INSERT, %.0f%% of COPY; pull %.0f%% of the database's reads\n",
			100*r.Ratio.PushVsInsert, 100*r.Ratio.PushVsCopy, 100*r.Ratio.PullVsDB)
		if !c.Verified {
			fmt.Fprintf(w, "ceiling verification FAILED (%d):\n%s\n", c.Verify.Failures, c.Verify.summary())
		}
	}
	if ref := r.Reference; ref != nil {
		fmt.Fprintf(w, "reference design (prisma-idb: one transaction of ~%.0f round trips per event, same rows):\n", ref.Concurrent.RoundTrips)
		pushLine(fmt.Sprintf("%d clients", ref.Concurrent.Clients), ref.Concurrent.Push)
		pushLine("1 client", ref.Sequential.Push)
		fmt.Fprintf(w, "  syncplane/reference: push ×%.1f of %d clients, ×%.1f of 1 client\n",
			r.Ratio.PushVsReference, ref.Concurrent.Clients, r.Ratio.PushVsReferenceSequential)
		if !ref.Verified {
			fmt.Fprintf(w, "reference verification FAILED (%d):\n%s\n", ref.Verify.Failures, ref.Verify.summary())
		}
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server RSS (pid %d, %d samples): start %.1f MiB, peak %.1f MiB, end %.1f MiB, VmHWM %.1f MiB\n",
			s.PID, s.Samples, mib(s.RSSStartBytes), mib(s.RSSPeakBytes), mib(s.RSSEndBytes), mib(s.HWMBytes))
	}
	if r.Verify.OK() {
		fmt.Fprintf(w, "verified: %d events acknowledged, each pulled exactly once, final state of every record matches\n", r.Events)
	} else {
		fmt.Fprintf(w, "verification FAILED (%d):\n%s\n", r.Verify.Failures, r.Verify.summary())
	}
}

// parseFlags parses a (sub)command's flags; done is true when the command
// must end with code (help asked for, bad flags, stray arguments).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return 2, true
	}
	return 0, false
}

// finish prints a (sub)command's report, as indented JSON or as text, and
// returns its exit code: 0 when ok, 1 when a verification failed.
func finish[R any](stdout io.Writer, asJSON bool, rep R, text func(io.Writer, R), ok bool) int {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		text(stdout, rep)
	}
	if !ok {
		return 1
	}
	return 0
}

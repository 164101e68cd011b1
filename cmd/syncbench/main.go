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
// With --ceiling-dsn it also writes the same rows straight into PostgreSQL
// (scratch schema syncbench_ceiling, dropped afterwards) with multi-row
// INSERTs and with COPY, reads them back by page, and prints syncplane's
// figures as a ratio of the database's own.
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
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: 0 verified, 1 verification failed, 2 could not run.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("syncbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      = Config{Tenant: "demo"}
		tokenCmd = fs.String("token-cmd", "", "shell command printing a token for subject {sub} on its last line")
		secret   = fs.String("secret", "", "HS256 secret to sign tokens with (instead of --token-cmd)")
		issuer   = fs.String("issuer", "", "token issuer (with --secret)")
		audience = fs.String("audience", "", "token audience (with --secret)")
		mix      = fs.String("mix", "70/20/10", "create/update/delete percentages of the second round")
		asJSON   = fs.Bool("json", false, "print the report as JSON")
		seed     = fs.Uint64("seed", 1, "random seed of the workload")
	)
	fs.StringVar(&cfg.URL, "url", "", "server base URL, e.g. http://127.0.0.1:8080")
	fs.StringVar(&cfg.Tenant, "tenant", "demo", "tenant id")
	fs.IntVar(&cfg.Users, "users", 10, "users (one scope each)")
	fs.IntVar(&cfg.BoardsPerUser, "boards-per-user", 10, "boards per user")
	fs.IntVar(&cfg.TodosPerBoard, "todos-per-board", 20, "todos per board")
	fs.IntVar(&cfg.Batch, "batch", 100, "events per push")
	fs.IntVar(&cfg.Clients, "clients", 8, "concurrent clients")
	fs.IntVar(&cfg.Changes, "changes", -1, "second-round events per user (-1: half the first round's boards and todos)")
	fs.IntVar(&cfg.PullLimit, "pull-limit", 50, "pull page size")
	fs.StringVar(&cfg.CeilingDSN, "ceiling-dsn", "", "PostgreSQL URL: also measure the database's own limit for the same rows")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "syncbench: unexpected arguments %q\n", fs.Args())
		return 2
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

	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "syncbench:", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(stdout, cfg, rep)
	}
	if !rep.Verified {
		return 1
	}
	return 0
}

func printReport(w io.Writer, cfg Config, r *Report) {
	fmt.Fprintf(w, "syncbench %s: %s tenant %s, %d users × (%d boards × %d todos), batch %d, %d clients, mix %d/%d/%d\n",
		r.RunID, cfg.URL, cfg.Tenant, r.Users, cfg.BoardsPerUser, cfg.TodosPerBoard, cfg.Batch, cfg.Clients,
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
	if r.Verify.OK() {
		fmt.Fprintf(w, "verified: %d events acknowledged, each pulled exactly once, final state of every record matches\n", r.Events)
	} else {
		fmt.Fprintf(w, "verification FAILED (%d):\n%s\n", r.Verify.Failures, r.Verify.summary())
	}
}

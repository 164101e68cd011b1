package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// defaultBenchPostgres is the standard scenario's PostgreSQL server when
// neither --postgres nor SYNCPLANE_BENCH_DATABASE_URL names one.
const defaultBenchPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// StandardConfig is the standard scenario: the same workload against an
// embedded-SQLite server and a PostgreSQL one that syncbench starts, the
// ceiling and the reference design measured once on PostgreSQL.
type StandardConfig struct {
	Bin         string   // syncplane executable; empty: built once
	PostgresURL string   // PostgreSQL server (scratch databases); empty: SQLite only, no ceiling nor reference
	DBs         []string // "sqlite", "postgres"
	Workload    Config   // sizes; URL, tokens and run id are set per run
	NoReference bool     // skip the reference design (its two passes take minutes)
	ServerEnv   []string // more KEY=VALUE settings for the servers, e.g. SYNCPLANE_ADMIN_ADDR to profile them
}

// StandardReport is what `syncbench standard` measured.
type StandardReport struct {
	Users         int              `json:"users"`
	BoardsPerUser int              `json:"boardsPerUser"`
	TodosPerBoard int              `json:"todosPerBoard"`
	Batch         int              `json:"batch"`
	Clients       int              `json:"clients"`
	PullLimit     int              `json:"pullLimit"`
	Events        int              `json:"eventsPerRun"`
	Server        string           `json:"server"`  // the syncplane executable, or "" when built from this tree
	History       bool             `json:"history"` // pulls verified as a full history (--history)
	Runs          []*Report        `json:"runs"`    // one per database; Server.Database names it
	Ceiling       *CeilingReport   `json:"ceiling,omitempty"`
	Reference     *ReferenceReport `json:"reference,omitempty"`
	Verified      bool             `json:"verified"`
}

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RunStandard runs the standard scenario.
func RunStandard(ctx context.Context, sc StandardConfig, progress io.Writer) (*StandardReport, error) {
	w := sc.Workload
	if err := w.check(); err != nil {
		return nil, err
	}
	server := sc.Bin
	if sc.Bin == "" {
		tmp, err := os.MkdirTemp("", "syncbench-bin-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(progress, "building ./cmd/syncplane …")
		if sc.Bin, err = BuildServer(ctx, tmp); err != nil {
			return nil, err
		}
	}
	rep := &StandardReport{Users: w.Users, BoardsPerUser: w.BoardsPerUser, TodosPerBoard: w.TodosPerBoard,
		Batch: w.Batch, Clients: w.Clients, PullLimit: w.PullLimit, Server: server, History: w.History}
	for _, db := range sc.DBs {
		serve := ServeConfig{Bin: sc.Bin, Env: sc.ServerEnv}
		switch db {
		case "sqlite":
		case "postgres":
			if sc.PostgresURL == "" {
				return nil, errors.New("the postgres run needs a PostgreSQL URL")
			}
			serve.PostgresURL = sc.PostgresURL
		default:
			return nil, fmt.Errorf("unknown database %q (sqlite, postgres)", db)
		}
		cfg := w
		cfg.RunID, cfg.CeilingDSN = newRunID(), ""
		fmt.Fprintf(progress, "syncplane on %s: %d events …\n", db, cfg.plan().Events(-1))
		r, err := RunServed(ctx, cfg, serve)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", db, err)
		}
		rep.Events = r.Events
		rep.Runs = append(rep.Runs, r)
	}
	if sc.PostgresURL != "" {
		dsn, drop, err := createScratchDB(ctx, sc.PostgresURL)
		if err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
		defer drop()
		cfg := w
		cfg.RunID = newRunID()
		p := cfg.plan()
		fmt.Fprintln(progress, "ceiling (INSERT, COPY) on postgres …")
		if rep.Ceiling, err = RunCeiling(ctx, dsn, p, w.Batch, w.Clients, w.PullLimit); err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
		if !sc.NoReference {
			fmt.Fprintf(progress, "reference design on postgres (%d clients, then 1) …\n", w.Clients)
			if rep.Reference, err = RunReference(ctx, dsn, p, w.Batch, w.Clients, w.PullLimit); err != nil {
				return nil, fmt.Errorf("reference: %w", err)
			}
		}
	}
	rep.Verified = len(rep.Runs) > 0
	for _, r := range rep.Runs {
		r.Ratio = ratios(r, rep.Ceiling, rep.Reference)
		rep.Verified = rep.Verified && r.Verified
	}
	rep.Verified = rep.Verified && (rep.Ceiling == nil || rep.Ceiling.Verified) && (rep.Reference == nil || rep.Reference.Verified)
	return rep, nil
}

// standardUsers sizes the standard scenario: 316 events per user, so
// 126,400 events per database, pushed and pulled in about 10-30 s on two
// cores (the reference design's two passes take longer).
const standardUsers = 400

func runStandard(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("syncbench standard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sc := StandardConfig{Workload: Config{Tenant: "demo", BoardsPerUser: 10, TodosPerBoard: 20, Changes: -1,
		PullLimit: 50, Mix: Mix{Create: 70, Update: 20, Delete: 10}, Seed: 1}}
	pg := os.Getenv("SYNCPLANE_BENCH_DATABASE_URL")
	if pg == "" {
		pg = defaultBenchPostgres
	}
	fs.StringVar(&sc.PostgresURL, "postgres", pg, "PostgreSQL server for the postgres run, the ceiling and the reference (scratch databases; env SYNCPLANE_BENCH_DATABASE_URL); empty: SQLite only")
	fs.StringVar(&sc.Bin, "server-bin", "", "syncplane executable (default: go build ./cmd/syncplane into a temporary directory)")
	dbs := fs.String("dbs", "sqlite,postgres", "the servers' databases, in order")
	fs.IntVar(&sc.Workload.Users, "users", standardUsers, "users (one scope each; 316 events per user)")
	fs.IntVar(&sc.Workload.Clients, "clients", 8, "concurrent clients")
	fs.IntVar(&sc.Workload.Batch, "batch", 100, "events per push")
	fs.BoolVar(&sc.Workload.History, "history", false, "the server keeps every changelog entry (a build before compaction, 7b77765): verify its pulls as a full history")
	fs.Func("server-env", "KEY=VALUE for the servers' environment (repeatable), e.g. SYNCPLANE_ADMIN_ADDR=127.0.0.1:6060 to profile them", func(kv string) error {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", kv)
		}
		sc.ServerEnv = append(sc.ServerEnv, kv)
		return nil
	})
	reference := fs.Bool("reference", true, "also measure prisma-idb's reference design on PostgreSQL (minutes)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	sc.NoReference = !*reference
	for _, d := range strings.Split(*dbs, ",") {
		if d = strings.TrimSpace(d); d != "" && (d != "postgres" || sc.PostgresURL != "") {
			sc.DBs = append(sc.DBs, d)
		}
	}
	rep, err := RunStandard(ctx, sc, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "syncbench standard:", err)
		return 2
	}
	return finish(stdout, *asJSON, rep, printStandard, rep.Verified)
}

// printStandard prints the standard report as one table, a column per
// database.
func printStandard(w io.Writer, r *StandardReport) {
	fmt.Fprintf(w, "syncbench standard: %d users × (1 user + %d boards + %d todos + changes) = %d events per run, batch %d, %d clients, pull pages of %d\n",
		r.Users, r.BoardsPerUser, r.BoardsPerUser*r.TodosPerBoard, r.Events, r.Batch, r.Clients, r.PullLimit)
	server := "syncplane built from this tree"
	if r.Server != "" {
		server = r.Server
	}
	if r.History {
		server += " (pulls verified as a full history)"
	}
	fmt.Fprintln(w, "server:", server)
	var t table
	row := func(label string, cell func(r *Report) string) {
		cells := []string{label}
		for _, run := range r.Runs {
			cells = append(cells, cell(run))
		}
		t = append(t, cells)
	}
	row("", func(run *Report) string { return run.Server.Database })
	row("syncplane push events/s", func(run *Report) string { return fmt.Sprintf("%.0f", run.Push.EventsPerSec) })
	row("syncplane pull entries/s", func(run *Report) string { return fmt.Sprintf("%.0f", run.Pull.EntriesPerSec) })
	row("push batch p50 / p99 ms", func(run *Report) string {
		return fmt.Sprintf("%.1f / %.1f", run.Push.BatchP50Ms, run.Push.BatchP99Ms)
	})
	row("pull page p50 / p99 ms", func(run *Report) string {
		return fmt.Sprintf("%.1f / %.1f", run.Pull.PageP50Ms, run.Pull.PageP99Ms)
	})
	row("server RSS peak (end) MiB", func(run *Report) string {
		return fmt.Sprintf("%.0f (%.0f)", mib(run.Server.RSSPeakBytes), mib(run.Server.RSSEndBytes))
	})
	row("server CPU µs / event pushed, / entry pulled", func(run *Report) string {
		if run.CPU == nil || run.CPU.ServerPushMicrosPerEvent == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f / %.1f", run.CPU.ServerPushMicrosPerEvent, run.CPU.ServerPullMicrosPerEntry)
	})
	row("PostgreSQL CPU µs / event, / entry", func(run *Report) string {
		if run.CPU == nil || run.CPU.PostgresPushMicrosPerEvent == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f / %.1f", run.CPU.PostgresPushMicrosPerEvent, run.CPU.PostgresPullMicrosPerEntry)
	})
	if c := r.Ceiling; c != nil {
		row("ceiling INSERT events/s, syncplane ×", func(run *Report) string {
			return fmt.Sprintf("%.0f  ×%.2f", c.Insert.Push.EventsPerSec, run.Ratio.PushVsInsert)
		})
		row("ceiling COPY events/s, syncplane ×", func(run *Report) string {
			return fmt.Sprintf("%.0f  ×%.2f", c.Copy.Push.EventsPerSec, run.Ratio.PushVsCopy)
		})
		row("ceiling read entries/s, syncplane ×", func(run *Report) string {
			return fmt.Sprintf("%.0f  ×%.2f", max(c.Insert.Pull.EntriesPerSec, c.Copy.Pull.EntriesPerSec), run.Ratio.PullVsDB)
		})
	}
	if ref := r.Reference; ref != nil {
		row(fmt.Sprintf("reference %d clients events/s, syncplane ×", ref.Concurrent.Clients), func(run *Report) string {
			return fmt.Sprintf("%.0f  ×%.1f", ref.Concurrent.Push.EventsPerSec, run.Ratio.PushVsReference)
		})
		row("reference 1 client events/s, syncplane ×", func(run *Report) string {
			return fmt.Sprintf("%.0f  ×%.1f", ref.Sequential.Push.EventsPerSec, run.Ratio.PushVsReferenceSequential)
		})
	}
	row("verified", func(run *Report) string {
		if run.Verified {
			return "yes"
		}
		return fmt.Sprintf("NO (%d)", run.Verify.Failures)
	})
	t.print(w)
	if c := r.Ceiling; c != nil {
		fmt.Fprintf(w, "ceiling and reference: the same rows straight into PostgreSQL (same tables and indexes), measured once; verified: ceiling %v, reference %v\n",
			yesNo(c.Verified), yesNo(r.Reference == nil || r.Reference.Verified))
		if ref := r.Reference; ref != nil {
			fmt.Fprintf(w, "reference design: one transaction per event (~%.0f round trips), %d events with %d clients, %d events (%d users) with 1 client\n",
				ref.Concurrent.RoundTrips, ref.Concurrent.Push.Events, ref.Concurrent.Clients, ref.Sequential.Push.Events, ref.Sequential.Users)
		}
	}
	for _, run := range r.Runs {
		if !run.Verify.OK() {
			fmt.Fprintf(w, "%s verification FAILED:\n%s\n", run.Server.Database, run.Verify.summary())
		}
	}
	if c := r.Ceiling; c != nil && !c.Verified {
		fmt.Fprintf(w, "ceiling verification FAILED:\n%s\n", c.Verify.summary())
	}
	if ref := r.Reference; ref != nil && !ref.Verified {
		fmt.Fprintf(w, "reference verification FAILED:\n%s\n", ref.Verify.summary())
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// table is rows of cells: the first left-aligned, the others right-aligned.
type table [][]string

func (t table) print(w io.Writer) {
	var widths []int
	for _, r := range t {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("   " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

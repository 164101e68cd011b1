package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// BootstrapShape is a history: Records todos, each written Writes times
// (a create, then Writes-1 updates).
type BootstrapShape struct {
	Records int `json:"records"`
	Writes  int `json:"writes"`
}

func (s BootstrapShape) String() string { return fmt.Sprintf("%dx%d", s.Records, s.Writes) }

// parseShapes reads "1000x20,10000x10".
func parseShapes(s string) ([]BootstrapShape, error) {
	var out []BootstrapShape
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, h, ok := strings.Cut(f, "x")
		records, err1 := strconv.Atoi(r)
		writes, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || records < 1 || writes < 1 {
			return nil, fmt.Errorf("--shapes: %q is not RECORDSxWRITES with both at least 1, e.g. 1000x20", f)
		}
		out = append(out, BootstrapShape{Records: records, Writes: writes})
	}
	if len(out) == 0 {
		return nil, errors.New("--shapes: no shape")
	}
	return out, nil
}

// BootstrapServer is a syncplane executable under a name of the table.
type BootstrapServer struct {
	Name string `json:"name"`
	Bin  string `json:"bin"` // empty: built from this tree
}

// serverList is the repeatable --server name=path flag.
type serverList []BootstrapServer

func (l *serverList) String() string {
	var parts []string
	for _, s := range *l {
		parts = append(parts, s.Name+"="+s.Bin)
	}
	return strings.Join(parts, " ")
}

func (l *serverList) Set(v string) error {
	name, bin, _ := strings.Cut(v, "=")
	if name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("want NAME=PATH (or NAME alone: built from this tree), got %q", v)
	}
	for _, s := range *l {
		if s.Name == name {
			return fmt.Errorf("server %q given twice", name)
		}
	}
	*l = append(*l, BootstrapServer{Name: name, Bin: bin})
	return nil
}

// BootstrapConfig is `syncbench bootstrap`: for each database, shape and
// server, a fresh server gets one user's board of Records todos written
// Writes times each, then a new device pulls the scope from an empty
// cursor.
type BootstrapConfig struct {
	Servers     []BootstrapServer
	DBs         []string // "sqlite", "postgres"
	PostgresURL string   // PostgreSQL server (scratch databases) for the postgres runs
	Shapes      []BootstrapShape
	Batch       int // events per push
	PullLimit   int // the new device's pull limit
}

// BootstrapRun is one (server, database, shape).
type BootstrapRun struct {
	Server   string `json:"server"`
	Database string `json:"database"`
	Shape    string `json:"shape"`
	Records  int    `json:"records"` // todos
	Writes   int    `json:"writes"`  // events per todo
	// The pushes: a user, a board, then the todos' events.
	Events      int     `json:"events"`
	PushSeconds float64 `json:"pushSeconds"`
	// The new device's pull from an empty cursor to an empty page.
	Entries    int     `json:"entries"`
	Tombstones int     `json:"tombstones"` // delete entries among them
	Bytes      int64   `json:"bytes"`      // response bodies
	Pages      int     `json:"pages"`      // requests, the last one empty
	Seconds    float64 `json:"seconds"`
	// Records the device holds after replaying the entries.
	FinalRecords int `json:"finalRecords"`
	// History is true when the pull returned every event's entry (a
	// server that keeps the whole changelog), false when it returned each
	// record's latest entry; it is verified as such.
	History  bool          `json:"history"`
	Verified bool          `json:"verified"`
	Verify   *Verification `json:"verification"`
}

// BootstrapReport is what `syncbench bootstrap` measured.
type BootstrapReport struct {
	Batch     int             `json:"batch"`
	PullLimit int             `json:"pullLimit"`
	Runs      []*BootstrapRun `json:"runs"`
	Skipped   string          `json:"skipped,omitempty"`
	Verified  bool            `json:"verified"`
}

// bootstrapPlan is the workload of one shape: Rounds[0] the user, the
// board and the todos' creates, Rounds[1] the updates, a round of one
// update per todo after another.
func bootstrapPlan(runID string, s BootstrapShape, now time.Time) *UserPlan {
	uid := "bs-" + runID
	u := &UserPlan{ID: uid, Final: map[string]map[string]any{}}
	seq := 0
	now = now.UTC().Truncate(time.Millisecond)
	emit := func(round int, model, op string, payload map[string]any) {
		seq++
		u.Rounds[round] = append(u.Rounds[round], Event{ID: fmt.Sprintf("%s-e%d", uid, seq), EntityType: model, Operation: op, Payload: payload})
		u.Final[recordKey(model, payload["id"].(string))] = payload
	}
	ts := now.Format(isoMillis)
	emit(0, "User", "create", map[string]any{
		"id": uid, "name": "User " + uid, "email": uid + "@syncbench.example",
		"emailVerified": false, "image": nil, "createdAt": ts, "updatedAt": ts, "isAnonymous": nil,
	})
	bid := uid + "-b"
	emit(0, "Board", "create", map[string]any{"id": bid, "name": "Board", "createdAt": ts, "userId": uid})
	todo := func(i, v int) map[string]any {
		var desc any
		if v%2 == 1 {
			desc = fmt.Sprintf("description of todo %d, version %d", i, v)
		}
		return map[string]any{
			"id": fmt.Sprintf("%s-t%d", uid, i), "title": fmt.Sprintf("Todo %d version %d", i, v), "description": desc,
			"isCompleted": v%2 == 1, "createdAt": ts, "boardId": bid,
		}
	}
	for i := 0; i < s.Records; i++ {
		emit(0, "Todo", "create", todo(i, 0))
	}
	for v := 1; v < s.Writes; v++ {
		for i := 0; i < s.Records; i++ {
			emit(1, "Todo", "update", todo(i, v))
		}
	}
	return u
}

// RunBootstrap runs every (database, shape, server), the servers of a
// database and shape one after another.
func RunBootstrap(ctx context.Context, bc BootstrapConfig, progress io.Writer) (*BootstrapReport, error) {
	if bc.Batch < 1 || bc.PullLimit < 1 {
		return nil, errors.New("--batch and --pull-limit must be at least 1")
	}
	if len(bc.Servers) == 0 {
		bc.Servers = []BootstrapServer{{Name: "current"}}
	}
	servers := append([]BootstrapServer(nil), bc.Servers...)
	var built string
	for i, s := range servers {
		if s.Bin != "" {
			continue
		}
		if built == "" {
			tmp, err := os.MkdirTemp("", "syncbench-bin-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			fmt.Fprintln(progress, "building ./cmd/syncplane …")
			if built, err = BuildServer(ctx, tmp); err != nil {
				return nil, err
			}
		}
		servers[i].Bin = built
	}
	rep := &BootstrapReport{Batch: bc.Batch, PullLimit: bc.PullLimit}
	for _, db := range bc.DBs {
		serve := ServeConfig{}
		switch db {
		case "sqlite":
		case "postgres":
			if bc.PostgresURL == "" {
				return nil, errors.New("the postgres runs need a PostgreSQL URL")
			}
			serve.PostgresURL = bc.PostgresURL
		default:
			return nil, fmt.Errorf("unknown database %q (sqlite, postgres)", db)
		}
		for _, shape := range bc.Shapes {
			for _, s := range servers {
				serve.Bin = s.Bin
				fmt.Fprintf(progress, "%s on %s: %s (%d events) …\n", s.Name, db, shape, 2+shape.Records*shape.Writes)
				r, err := bootstrapRun(ctx, serve, shape, bc.Batch, bc.PullLimit)
				if err != nil {
					return nil, fmt.Errorf("%s on %s, %s: %w", s.Name, db, shape, err)
				}
				r.Server = s.Name
				rep.Runs = append(rep.Runs, r)
			}
		}
	}
	rep.Verified = len(rep.Runs) > 0
	for _, r := range rep.Runs {
		rep.Verified = rep.Verified && r.Verified
	}
	return rep, nil
}

// bootstrapRun starts a server, pushes the shape's events as one device
// would (in order, batch after batch), then pulls the scope as a new
// device, and stops the server.
func bootstrapRun(ctx context.Context, serve ServeConfig, shape BootstrapShape, batch, limit int) (*BootstrapRun, error) {
	srv, err := StartServer(ctx, serve)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	u := bootstrapPlan(newRunID(), shape, time.Now())
	token, err := SecretTokens(srv.Secret, "", "", 24*time.Hour)(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	c := newClient(srv.URL, "demo", 1)
	run := &BootstrapRun{Database: srv.DB, Shape: shape.String(), Records: shape.Records, Writes: shape.Writes, Verify: &Verification{}}
	acks := Acks{}
	start := time.Now()
	for _, round := range u.Rounds {
		for _, b := range batches(round, batch) {
			if err := c.push(ctx, token, b, acks, run.Verify); err != nil {
				return nil, err
			}
			run.Events += len(b)
		}
	}
	run.PushSeconds = time.Since(start).Seconds()

	// The new device: the same subject, no cursor.
	var pages [][]byte
	var cursor *string
	start = time.Now()
	for {
		req := map[string]any{"limit": limit}
		if cursor != nil {
			req["lastChangelogId"] = *cursor
		}
		var page []byte
		if err := c.post(ctx, "/pull", token, req, &page); err != nil {
			return nil, err
		}
		run.Pages++
		run.Bytes += int64(len(page))
		next, empty, err := scanPage(page)
		if err != nil {
			return nil, fmt.Errorf("pull: page %.200s: %w", page, err)
		}
		if empty {
			break
		}
		if next == nil {
			return nil, errors.New("pull: a non-empty page without a cursor")
		}
		pages = append(pages, page)
		cursor = next
	}
	run.Seconds = time.Since(start).Seconds()
	entries, err := decodePages(pages)
	if err != nil {
		return nil, err
	}
	run.Entries = len(entries)
	live := map[string]bool{}
	for _, e := range entries {
		key := recordKey(e.Model, fmt.Sprint(e.KeyPath...))
		if e.Operation == "delete" {
			run.Tombstones++
			delete(live, key)
		} else {
			live[key] = true
		}
	}
	run.FinalRecords = len(live)
	// A server that keeps the whole changelog answers every event; a
	// compacting one each record's latest. Anything else fails either way.
	run.History = run.Entries == run.Events && run.Events > len(u.Final)
	VerifyUser(run.Verify, u, acks, entries, run.History)
	if run.FinalRecords != len(u.Final) {
		run.Verify.failf("the new device holds %d records, want %d", run.FinalRecords, len(u.Final))
	}
	run.Verified = run.Verify.OK()
	return run, nil
}

func runBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("syncbench bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		bc      BootstrapConfig
		servers serverList
	)
	pg := os.Getenv("SYNCPLANE_BENCH_DATABASE_URL")
	if pg == "" {
		pg = defaultBenchPostgres
	}
	fs.Var(&servers, "server", "`NAME=PATH` of a syncplane executable to measure, repeatable, a row each (NAME alone: built from this tree; default: current, built from this tree)")
	fs.StringVar(&bc.PostgresURL, "postgres", pg, "PostgreSQL server for the postgres runs (scratch databases; env SYNCPLANE_BENCH_DATABASE_URL); empty: SQLite only")
	dbs := fs.String("dbs", "sqlite,postgres", "the servers' databases, in order (postgres is left out, with a note, when the default server does not answer)")
	shapes := fs.String("shapes", "1000x20,10000x10", "RECORDSxWRITES: todos, each written that many times (a create, then updates)")
	fs.IntVar(&bc.Batch, "batch", 100, "events per push (the demo tenant takes at most 100)")
	fs.IntVar(&bc.PullLimit, "pull-limit", 50, "the new device's pull limit (the server's default page size is 50, its largest 500)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncbench bootstrap [flags]   a new device's first pull after a long history, per server, database and shape")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	var err error
	if bc.Shapes, err = parseShapes(*shapes); err != nil {
		fmt.Fprintln(stderr, "syncbench bootstrap:", err)
		return 2
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	skipped := ""
	for _, d := range strings.Split(*dbs, ",") {
		d = strings.TrimSpace(d)
		switch {
		case d == "":
		case d == "postgres" && bc.PostgresURL == "":
		case d == "postgres" && !explicit["dbs"] && !explicit["postgres"] && os.Getenv("SYNCPLANE_BENCH_DATABASE_URL") == "":
			if err := pingPostgres(ctx, bc.PostgresURL); err != nil {
				skipped = fmt.Sprintf("postgres: %s does not answer (%v)", bc.PostgresURL, err)
				fmt.Fprintln(stderr, "syncbench bootstrap: skipping", skipped)
				continue
			}
			bc.DBs = append(bc.DBs, d)
		default:
			bc.DBs = append(bc.DBs, d)
		}
	}
	bc.Servers = servers
	rep, err := RunBootstrap(ctx, bc, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "syncbench bootstrap:", err)
		return 2
	}
	rep.Skipped = skipped
	return finish(stdout, *asJSON, rep, printBootstrap, rep.Verified)
}

func pingPostgres(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// printBootstrap prints a row per (server, database, shape).
func printBootstrap(w io.Writer, r *BootstrapReport) {
	fmt.Fprintf(w, "syncbench bootstrap: one user, one board and R todos each written H times (a create, H-1 updates), pushed in batches of %d; then a new device pulls from an empty cursor, pages of %d\n",
		r.Batch, r.PullLimit)
	t := table{{"server", "database", "R×H", "events pushed", "push s", "entries", "tombstones", "MB", "pull s", "pages", "records", "entries/record", "verified"}}
	for _, run := range r.Runs {
		verified := "yes"
		if !run.Verified {
			verified = fmt.Sprintf("NO (%d)", run.Verify.Failures)
		}
		if run.History {
			verified += " (history)"
		}
		perRecord := 0.0
		if run.FinalRecords > 0 {
			perRecord = float64(run.Entries) / float64(run.FinalRecords)
		}
		t = append(t, []string{run.Server, run.Database, fmt.Sprintf("%d×%d", run.Records, run.Writes),
			strconv.Itoa(run.Events), fmt.Sprintf("%.1f", run.PushSeconds), strconv.Itoa(run.Entries), strconv.Itoa(run.Tombstones),
			fmt.Sprintf("%.2f", float64(run.Bytes)/1e6), fmt.Sprintf("%.2f", run.Seconds), strconv.Itoa(run.Pages),
			strconv.Itoa(run.FinalRecords), fmt.Sprintf("%.2f", perRecord), verified})
	}
	t.print(w)
	if r.Skipped != "" {
		fmt.Fprintln(w, "skipped:", r.Skipped)
	}
	for _, run := range r.Runs {
		if !run.Verified {
			fmt.Fprintf(w, "%s on %s, %s: verification FAILED:\n%s\n", run.Server, run.Database, run.Shape, run.Verify.summary())
		}
	}
}

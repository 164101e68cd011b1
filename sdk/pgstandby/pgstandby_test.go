//go:build linux

package pgstandby_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/syncplane/syncplane/sdk/pgstandby"
)

// The tests but TestForTest share one pair (the pattern the package
// documents); they run one after another, and each undoes what it pauses
// or stops.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgstandby.CloseShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newTable (re)creates table (note text) on the primary c: the shared pair
// outlives a test, and lives through -count=N.
func newTable(t *testing.T, c *pgx.Conn, table string) {
	t.Helper()
	exec(t, c, "DROP TABLE IF EXISTS "+table)
	exec(t, c, "CREATE TABLE "+table+" (note text NOT NULL)")
}

// count returns the rows of table on c whose note is note.
func count(t *testing.T, c *pgx.Conn, table, note string) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE note = $1", note).Scan(&n); err != nil {
		t.Fatalf("count %s on %s: %v", note, table, err)
	}
	return n
}

// lsnBehind reports whether the standby's replay position is behind the
// primary's current WAL position.
func lsnBehind(t *testing.T, primary, standby *pgx.Conn) bool {
	t.Helper()
	ctx := context.Background()
	var current string
	if err := primary.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&current); err != nil {
		t.Fatal(err)
	}
	var behind bool
	if err := standby.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() < $1::text::pg_lsn", current).Scan(&behind); err != nil {
		t.Fatal(err)
	}
	return behind
}

func TestReplicates(t *testing.T) {
	p := pgstandby.Shared(t)
	ctx := context.Background()
	primary, standby := connect(t, p.PrimaryURL()), connect(t, p.StandbyURL())

	var inRecovery bool
	if err := standby.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby in recovery: %v, %v", inRecovery, err)
	}
	newTable(t, primary, "replicates")
	exec(t, primary, "INSERT INTO replicates VALUES ('one'), ('two')")
	if err := p.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, standby, "replicates", "two"); n != 1 {
		t.Fatalf("standby has %d rows 'two', want 1", n)
	}
	// The standby is read-only.
	_, err := standby.Exec(ctx, "INSERT INTO replicates VALUES ('three')")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("insert on the standby: %v, want read_only_sql_transaction (25006)", err)
	}
}

func TestPauseReplay(t *testing.T) {
	p := pgstandby.Shared(t)
	ctx := context.Background()
	primary, standby := connect(t, p.PrimaryURL()), connect(t, p.StandbyURL())
	newTable(t, primary, "paused")
	exec(t, primary, "INSERT INTO paused VALUES ('before')")
	if err := p.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}

	if err := p.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.ResumeReplay(ctx) // leave the shared pair replaying, even on failure
	exec(t, primary, "INSERT INTO paused VALUES ('during')")
	// WAL keeps arriving, but it is not replayed: not at once, not later.
	for range 5 {
		if n := count(t, standby, "paused", "during"); n != 0 {
			t.Fatalf("the paused standby has the row written after the pause")
		}
		if !lsnBehind(t, primary, standby) {
			t.Fatalf("the paused standby's pg_last_wal_replay_lsn() is not behind the primary's pg_current_wal_lsn()")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := count(t, standby, "paused", "before"); n != 1 {
		t.Fatalf("the paused standby has %d rows 'before', want 1", n)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := p.WaitCaughtUp(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitCaughtUp while paused: %v, want a deadline", err)
	}

	if err := p.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, standby, "paused", "during"); n != 1 {
		t.Fatalf("after ResumeReplay the standby has %d rows 'during', want 1", n)
	}
}

func TestStopStartStandby(t *testing.T) {
	p := pgstandby.Shared(t)
	ctx := context.Background()
	primary := connect(t, p.PrimaryURL())
	newTable(t, primary, "stopped")
	url := p.StandbyURL()

	if err := p.StopStandby(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.StartStandby(ctx) // leave the shared pair whole, even on failure
	if err := p.StopStandby(ctx); err != nil {
		t.Fatalf("second StopStandby: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c, err := pgx.Connect(short, url); err == nil {
		c.Close(ctx)
		t.Fatal("connected to the stopped standby")
	}
	// Written while the standby is down: it must fetch it when back.
	exec(t, primary, "INSERT INTO stopped VALUES ('while down')")

	if err := p.StartStandby(ctx); err != nil {
		t.Fatal(err)
	}
	if p.StandbyURL() != url {
		t.Fatalf("StandbyURL changed across a restart: %s, then %s", url, p.StandbyURL())
	}
	if err := p.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, connect(t, url), "stopped", "while down"); n != 1 {
		t.Fatalf("the restarted standby has %d rows 'while down', want 1", n)
	}
}

// TestForTest starts a pair of its own and closes it twice.
func TestForTest(t *testing.T) {
	p := pgstandby.ForTest(t)
	for _, url := range []string{p.PrimaryURL(), p.StandbyURL()} {
		if !strings.HasPrefix(url, "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(url, "/postgres?sslmode=disable") || strings.Contains(url, ":5432/") {
			t.Errorf("URL %s", url)
		}
	}
	if p.PrimaryURL() == p.StandbyURL() {
		t.Errorf("primary and standby share %s", p.PrimaryURL())
	}
	if shared := pgstandby.Shared(t); shared.PrimaryURL() == p.PrimaryURL() {
		t.Errorf("ForTest returned the shared pair")
	}
	for _, url := range []string{p.PrimaryURL(), p.StandbyURL()} {
		connect(t, url).Close(context.Background())
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil { // and t.Cleanup's third
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(p.Dir()); !os.IsNotExist(err) {
		t.Errorf("after Close, %s: %v", p.Dir(), err)
	}
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := pgx.Connect(short, p.PrimaryURL()); err == nil {
		c.Close(short)
		t.Error("connected to the closed primary")
	}
	if err := p.StartStandby(short); err == nil {
		t.Error("StartStandby after Close succeeded")
	}
}

func TestUnavailable(t *testing.T) {
	t.Setenv("SYNCPLANE_TEST_PG_BIN", t.TempDir())
	_, err := pgstandby.Start(context.Background(), pgstandby.Options{})
	if !errors.Is(err, pgstandby.ErrUnavailable) {
		t.Fatalf("Start without binaries: %v, want ErrUnavailable", err)
	}
}

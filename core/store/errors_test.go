package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/syncplane/syncplane/core/syncdata"
)

// closedPort is a TCP address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestClassify checks the classification of storage errors on real error
// values, as the drivers return them: unavailable (503), transient (one
// more attempt), the tenant's tables missing, or none of these. A message
// that merely reads like an outage is not one.
func TestClassify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type want struct{ unavailable, transient, missing bool }
	cases := map[string]struct {
		err  error
		want want
	}{}
	add := func(name string, err error, w want) {
		if err == nil {
			t.Fatalf("%s: no error to classify", name)
		}
		cases[name] = struct {
			err  error
			want want
		}{err, w}
	}
	down, lost, gone, none := want{true, false, false}, want{true, true, false}, want{true, false, true}, want{}

	addr := closedPort(t)
	_, err := pgconn.Connect(ctx, "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2")
	add("pgconn connect refused", err, down)
	db, _ := sql.Open("pgx", "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2")
	add("database/sql ping refused", db.PingContext(ctx), down)
	db.Close()
	_, err = net.Dial("tcp", addr)
	add("net dial refused", err, down)
	add("ECONNREFUSED", syscall.ECONNREFUSED, down)
	add("ECONNRESET wrapped", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, lost)
	add("EPIPE wrapped", fmt.Errorf("write: %w", syscall.EPIPE), lost)
	add("unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), lost)
	add("bad conn", driver.ErrBadConn, lost)
	add("conn done", sql.ErrConnDone, lost)
	dctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	<-dctx.Done()
	add("deadline", dctx.Err(), down)
	cancel()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	add("canceled", cctx.Err(), none)
	for code, w := range map[string]want{
		"08006": lost, "08001": lost, "57P01": lost, "57P02": lost, "40001": lost, "40P01": lost,
		"57P03": down, "53300": down, "53100": down, "57014": down, "58030": down, "3D000": down,
		"42P01": gone, "3F000": gone,
		"23505": none, "23503": none, "22021": none, "42601": none,
	} {
		add("sqlstate "+code, fmt.Errorf("query: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: "connection refused"}), w)
	}
	add("message text only", errors.New("dial tcp: connection refused; SQLITE_BUSY; database is locked"), none)

	closed := sql.OpenDB(closedConnector{})
	closed.Close()
	add("closed sql.DB", closed.PingContext(ctx), down)

	// SQLite: a writer that holds the file past busy_timeout, and a file
	// that cannot be opened.
	path := filepath.Join(t.TempDir(), "busy.db")
	a, err := openSQLite(path, sqliteReaders, busyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Exec("CREATE TABLE x (id TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	holder, err := a.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	b, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.BeginTx(ctx, nil)
	add("sqlite busy", err, down)
	_, _ = holder.ExecContext(ctx, "ROLLBACK")
	_, err = b.Exec("INSERT INTO x VALUES ('a'), ('a')")
	add("sqlite constraint", err, none)
	c, _ := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "no", "such", "dir.db"))
	add("sqlite cantopen", c.Ping(), down)
	c.Close()

	// PostgreSQL: a session the server terminates, a missing table.
	if url := os.Getenv("SYNCPLANE_TEST_DATABASE_URL"); url != "" {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "SELECT * FROM no_such_table")
		add("postgres undefined table", err, gone)
		_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT 1")
		}
		add("postgres terminated session", err, lost)
		conn.Close(ctx)
	}

	for name, tc := range cases {
		got := classify(tc.err)
		g := want{errors.Is(got, syncdata.ErrUnavailable), errors.Is(got, syncdata.ErrTransient), errors.Is(got, syncdata.ErrTenantMissing)}
		if g != tc.want {
			t.Errorf("%s (%T: %v): unavailable, transient, missing = %v, want %v", name, tc.err, tc.err, g, tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%s: the classified error no longer wraps the original", name)
		}
	}
}

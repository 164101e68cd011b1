package httpapi_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// outcome posts a push (events given) or a pull (none) and returns the
// status, failing the test on what an outage must never produce: a 500, or
// a 200 push with a per-event UNKNOWN_ERROR, or a 503 without Retry-After.
func outcome(t *testing.T, base, tenantID, sub string, events ...map[string]any) (int, []byte) {
	t.Helper()
	path, body := "/pull", any(map[string]any{})
	if len(events) > 0 {
		path, body = "/push", map[string]any{"events": events}
	}
	code, out, hdr := post(t, base+"/v1/tenants/"+tenantID+path, token(t, tenantID, sub), body)
	switch code {
	case http.StatusOK:
		if len(events) > 0 {
			var res []push.Result
			must(t, json.Unmarshal(out, &res))
			for _, r := range res {
				if errType(r) == push.UnknownError {
					t.Errorf("%s: 200 with UNKNOWN_ERROR for %s: %s", path, r.ID, out)
				}
			}
		}
	case http.StatusServiceUnavailable:
		if hdr.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After: %s", path, out)
		}
	default:
		t.Errorf("%s: status %d: %s; want 200 or 503", path, code, out)
	}
	return code, out
}

// TestOutageTerminatedConnections: every backend of the server is
// terminated between requests (a database restart or failover does the
// same to a pool); the next push and pull find their pooled connection
// dead, retry on a new one inside the server, and succeed.
func TestOutageTerminatedConnections(t *testing.T) {
	t.Parallel()
	pg, found := storetest.Postgres(t)
	if !found {
		t.Skip("PostgreSQL only: SQLite has no connections to lose")
	}
	e := newEnv(t, pg)
	admin, err := sql.Open("pgx", e.dbURL)
	must(t, err)
	defer admin.Close()
	ok2 := func(code int, body []byte, what string) {
		t.Helper()
		if code != http.StatusOK {
			t.Fatalf("%s after the backends were terminated: %d %s; want 200 (retried on a new connection)", what, code, body)
		}
	}
	ok(t, e.push(t, "acme", "term-u", ev("", "User", "create", user("term-u"))))
	for round := range 5 {
		// Fill the pool with a few connections, then kill them all.
		for range 3 {
			e.pull(t, "acme", "term-u", map[string]any{})
		}
		var killed int
		must(t, admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed))
		if killed == 0 {
			t.Fatalf("round %d: no backend to terminate", round)
		}
		b := "term-b" + string(rune('0'+round))
		if round%2 == 0 {
			code, body := outcome(t, e.url, "acme", "term-u", ev("", "Board", "create", board(b, "term-u", "x")))
			ok2(code, body, "push")
			code, body = outcome(t, e.url, "acme", "term-u")
			ok2(code, body, "pull")
		} else {
			code, body := outcome(t, e.url, "acme", "term-u")
			ok2(code, body, "pull")
			code, body = outcome(t, e.url, "acme", "term-u", ev("", "Board", "create", board(b, "term-u", "x")))
			ok2(code, body, "push")
		}
	}
	if n := len(e.pullAll(t, "acme", "term-u")); n != 6 {
		t.Errorf("pulled %d entries, want the user and 5 boards", n)
	}
}

// proxy forwards TCP connections to a database; stop closes its port and
// every connection through it, like a database that went away; start
// opens the same port again.
type proxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	must(t, err)
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, d)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(d, c); d.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, d); d.Close(); c.Close() }()
		}
	}()
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestOutageDatabaseRefuses: the database goes away (its port refuses
// connections, the open ones are cut): push and pull answer 503 with
// Retry-After, never 500 or a per-event UNKNOWN_ERROR; when it comes back,
// the server serves again by itself.
func TestOutageDatabaseRefuses(t *testing.T) {
	t.Parallel()
	pg, found := storetest.Postgres(t)
	if !found {
		t.Skip("PostgreSQL only (SQLite's outages are TestOutageSQLiteBusy)")
	}
	direct := pg.URL(t)
	u, err := url.Parse(direct)
	must(t, err)
	p := &proxy{target: u.Host}
	p.start(t)
	t.Cleanup(p.stop)
	u.Host = p.addr

	e := &env{t: t, db: pg, dir: t.TempDir(), data: t.TempDir(), dbURL: u.String()}
	writeTenant(t, e.dir, "acme", "")
	e.url = e.start(t)
	ok(t, e.push(t, "acme", "gone-u", ev("", "User", "create", user("gone-u"))))

	p.stop()
	for i := range 3 {
		if code, body := outcome(t, e.url, "acme", "gone-u", ev("", "Board", "create", board("gone-b", "gone-u", "x"))); code != http.StatusServiceUnavailable {
			t.Errorf("push %d while the database is gone: %d %s; want 503", i, code, body)
		}
		if code, body := outcome(t, e.url, "acme", "gone-u"); code != http.StatusServiceUnavailable {
			t.Errorf("pull %d while the database is gone: %d %s; want 503", i, code, body)
		}
	}

	p.start(t)
	ok(t, e.push(t, "acme", "gone-u", ev("", "Board", "create", board("gone-b", "gone-u", "x"))))
	if n := len(e.pullAll(t, "acme", "gone-u")); n != 2 {
		t.Errorf("pulled %d entries after the database came back, want 2 (nothing of the refused pushes)", n)
	}
}

// TestOutageTenantTablesDropped: a tenant's schema is dropped under the
// running server. Its pushes and pulls answer 503 (with Retry-After) while
// it is missing, other tenants are unaffected, and once the tables are
// created again (here by another server process loading the tenant, as
// `syncplane migrate` or a restart would) the running server serves the
// tenant again without a restart.
func TestOutageTenantTablesDropped(t *testing.T) {
	t.Parallel()
	pg, found := storetest.Postgres(t)
	if !found {
		t.Skip("PostgreSQL only")
	}
	e := newEnv(t, pg)
	ok(t, e.push(t, "acme", "drop-u", ev("", "User", "create", user("drop-u"))))
	e.pull(t, "acme", "drop-u", map[string]any{})
	admin, err := sql.Open("pgx", e.dbURL)
	must(t, err)
	defer admin.Close()
	_, err = admin.Exec(`DROP SCHEMA "t_acme" CASCADE`)
	must(t, err)

	for _, events := range [][]map[string]any{{ev("", "User", "create", user("drop-u"))}, nil} {
		code, body := outcome(t, e.url, "acme", "drop-u", events...)
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "tenant") {
			t.Errorf("request to a tenant without tables: %d %s; want 503 naming the tenant's storage", code, body)
		}
	}
	ok(t, e.push(t, "beta", "drop-u", ev("", "User", "create", user("drop-u"))))

	e.start(t) // another process loads acme and creates its tables
	ok(t, e.push(t, "acme", "drop-u", ev("", "User", "create", user("drop-u"))))
	if n := len(e.pullAll(t, "acme", "drop-u")); n != 1 {
		t.Errorf("pulled %d entries from the recreated tenant, want 1", n)
	}
}

// TestOutageSQLiteBusy: another process holds the tenant's SQLite file
// locked for writing past the busy timeout: a push answers 503 with
// Retry-After (SQLITE_BUSY), and succeeds once the lock is gone; pulls
// (WAL readers) are not blocked.
func TestOutageSQLiteBusy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.DB{Name: "sqlite"})
	ok(t, e.push(t, "acme", "busy-u", ev("", "User", "create", user("busy-u"))))
	other, err := sql.Open("sqlite", "file:"+filepath.Join(e.data, "tenants", "acme.db")+"?_pragma=busy_timeout(10000)")
	must(t, err)
	defer other.Close()
	ctx := context.Background()
	conn, err := other.Conn(ctx)
	must(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	must(t, err)

	if code, body := outcome(t, e.url, "acme", "busy-u", ev("", "Board", "create", board("busy-b", "busy-u", "x"))); code != http.StatusServiceUnavailable {
		t.Errorf("push while the file is locked: %d %s; want 503", code, body)
	}
	if code, body := outcome(t, e.url, "acme", "busy-u"); code != http.StatusOK {
		t.Errorf("pull while the file is locked for writing: %d %s; want 200", code, body)
	}
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	must(t, err)
	ok(t, e.push(t, "acme", "busy-u", ev("", "Board", "create", board("busy-b", "busy-u", "x"))))
}

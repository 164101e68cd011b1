package httpapi_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

// TestTenantPlacement: tenant beta lives on a database of its own
// (database: env:BETA_DB), acme on the main one; both push and pull, each
// one's tables are on its own database, a commit of beta reaches another
// process's listener, and a tenant whose database does not answer gets 503
// while the others serve — at load (svc) and once loaded (beta).
func TestTenantPlacement(t *testing.T) {
	t.Parallel()
	db, found := storetest.Postgres(t)
	if !found {
		t.Skip("no PostgreSQL configured (SYNCPLANE_TEST_DATABASE_URL)")
	}
	mainURL, betaURL := db.URL(t), db.URL(t)
	dir := t.TempDir()
	writeTenant(t, dir, "acme", "")
	writeTenant(t, dir, "beta", "database: env:BETA_DB\n")
	writeTenant(t, dir, "svc", "database: env:DOWN_DB\n")
	writeTenant(t, dir, "limited", "database: env:UNSET_DB\n")
	var envMu sync.Mutex
	downURL := "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	getenv := func(k string) string {
		envMu.Lock()
		defer envMu.Unlock()
		return map[string]string{"BETA_DB": betaURL, "DOWN_DB": downURL}[k]
	}
	start := func() (string, *store.Store, *tenant.Registry) {
		st := db.OpenAt(t, mainURL, t.TempDir())
		reg, errs := tenant.LoadDir(context.Background(), dir, tenant.Options{Store: st, Log: quietLog(), Getenv: getenv})
		// limited's variable is not set: a configuration error (404 for
		// its requests); svc's database does not answer (503).
		if len(errs) != 2 || !strings.Contains(errs[0].Error(), "limited/tenant.yaml:7:11: database: environment variable UNSET_DB is not set") ||
			!strings.Contains(errs[1].Error(), "svc") {
			t.Fatalf("load errors %v, want limited's and svc's", errs)
		}
		t.Cleanup(func() { reg.Close() })
		srv := httptest.NewServer(httpapi.New(reg, quietLog()))
		t.Cleanup(srv.Close)
		return srv.URL, st, reg
	}
	one, st1, reg1 := start()
	two, st2, _ := start()

	// Another process hears beta's commits on beta's database.
	var mu sync.Mutex
	heard := map[string]bool{}
	lctx, stop := context.WithCancel(context.Background())
	listening := make(chan struct{}, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = st2.Listen(lctx, store.Listener{
			Notify: func(tenantID, scope, id string) {
				mu.Lock()
				heard[tenantID+"|"+scope] = true
				mu.Unlock()
			},
			Listening: func() { listening <- struct{}{} },
		})
	}()
	t.Cleanup(func() { stop(); <-done })
	for range 2 { // the main database's connection and beta's
		select {
		case <-listening:
		case <-time.After(20 * time.Second):
			t.Fatal("listening connections not up")
		}
	}

	for _, id := range []string{"acme", "beta"} {
		ok(t, pushTo(t, one, id, "pl", ev("", "User", "create", user("pl")), ev("", "Board", "create", board("pl-b", "pl", id))))
		if all := pullAllWith(t, two, id, token(t, id, "pl")); len(all) != 2 {
			t.Errorf("%s: pulled %d entries through the other server, want 2", id, len(all))
		}
	}
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, testkit.Until("beta's commit heard by the other process", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return heard["beta|pl"] && heard["acme|pl"]
	}))

	// Each tenant's tables are on its own database; the platform knows both.
	schemas := func(u string) string {
		c, err := sql.Open("pgx", u)
		must(t, err)
		defer c.Close()
		var s string
		must(t, c.QueryRow(`SELECT string_agg(schema_name, ',' ORDER BY schema_name) FROM information_schema.schemata WHERE schema_name LIKE 't\_%'`).Scan(&s))
		return s
	}
	if got := schemas(mainURL); got != "t_acme" {
		t.Errorf("tenant schemas on the main database: %q, want t_acme", got)
	}
	if got := schemas(betaURL); got != "t_beta" {
		t.Errorf("tenant schemas on beta's database: %q, want t_beta", got)
	}
	c, err := sql.Open("pgx", mainURL)
	must(t, err)
	defer c.Close()
	var n int
	must(t, c.QueryRow(`SELECT count(*) FROM syncplane_tenants WHERE id IN ('acme', 'beta')`).Scan(&n))
	if n != 2 {
		t.Errorf("%d of acme and beta registered on the main database, want 2", n)
	}

	// svc's database never answered: 503, not 404.
	code, body, hdr := post(t, one+"/v1/tenants/svc/pull", token(t, "svc", "pl"), map[string]any{})
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("svc: status %d (Retry-After %q): %s, want 503", code, hdr.Get("Retry-After"), body)
	}

	if code, body, _ := post(t, one+"/v1/tenants/limited/pull", token(t, "limited", "pl"), map[string]any{}); code != http.StatusNotFound {
		t.Errorf("limited: status %d: %s, want 404", code, body)
	}

	// Its database answers now: the retry loads it, and it serves.
	envMu.Lock()
	downURL = db.URL(t)
	envMu.Unlock()
	if errs := reg1.RetryUnavailable(context.Background(), tenant.Options{Store: st1, Log: quietLog(), Getenv: getenv}); len(errs) > 0 {
		t.Fatalf("retry: %v", errs)
	}
	ok(t, pushTo(t, one, "svc", "pl", ev("", "User", "create", user("pl"))))

	// beta's database stops taking connections: beta gets 503, acme serves.
	admin, err := sql.Open("pgx", db.AdminURL)
	must(t, err)
	defer admin.Close()
	u, err := url.Parse(betaURL)
	must(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	_, err = admin.Exec(fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS false`, name))
	must(t, err)
	_, err = admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
	must(t, err)
	code, body, _ = post(t, one+"/v1/tenants/beta/push", token(t, "beta", "pl"), map[string]any{"events": []any{ev("", "Todo", "create", todo("pl-t", "pl-b", "t"))}})
	if code != http.StatusServiceUnavailable {
		t.Errorf("beta with its database refusing connections: status %d: %s, want 503", code, body)
	}
	ok(t, pushTo(t, one, "acme", "pl", ev("", "Todo", "create", todo("pl-t", "pl-b", "t"))))

	_, err = admin.Exec(fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS true`, name))
	must(t, err)
	ok(t, pushTo(t, one, "beta", "pl", ev("", "Todo", "create", todo("pl-t", "pl-b", "t"))))
	if all := pullAllWith(t, two, "beta", token(t, "beta", "pl")); len(all) != 3 {
		t.Errorf("beta: pulled %d entries after its database returned, want 3", len(all))
	}
}

package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/tenant"
)

// TestAdminAPIWiring: the admin API is on the admin handler only with a
// token (from the environment or a file), next to /metrics, and reloads a
// tenant from its folder.
func TestAdminAPIWiring(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "demo"), os.DirFS("../../core/tenant/demo")); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"DEMO_JWT_SECRET": "demo-secret-0123456789abcdef0123456789"}[k]
	}
	st, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opt := tenant.Options{Store: st, Log: log, Getenv: getenv}
	reg, errs := tenant.LoadDir(ctx, dir, opt)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t.Cleanup(func() { reg.Close() })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })

	get := func(h http.Handler, method, path, tok string) (int, string) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	h, err := withAdminAPI(adminHandler(metrics), getenv, reg, st, &opt, log)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(h, "GET", "/admin/v1/tenants", "anything-at-all-long"); code != http.StatusNotFound {
		t.Errorf("admin API without a token configured: %d, want 404", code)
	}

	tokFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokFile, []byte("from-a-file-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, env := range []map[string]string{
		{"SYNCPLANE_ADMIN_TOKEN": "from-the-env-0123456789abcdef"},
		{"SYNCPLANE_ADMIN_TOKEN_FILE": tokFile},
	} {
		tok := env["SYNCPLANE_ADMIN_TOKEN"]
		if tok == "" {
			tok = "from-a-file-0123456789abcdef"
		}
		h, err := withAdminAPI(adminHandler(metrics), func(k string) string { return env[k] }, reg, st, &opt, log)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := get(h, "GET", "/admin/v1/tenants", tok); code != http.StatusOK || !strings.Contains(body, `"id":"demo"`) {
			t.Errorf("%v: tenants: %d %s", env, code, body)
		}
		if code, _ := get(h, "GET", "/admin/v1/tenants", "wrong-token-0123456789"); code != http.StatusUnauthorized {
			t.Errorf("%v: wrong token: %d", env, code)
		}
		if code, body := get(h, "GET", "/metrics", ""); code != http.StatusOK || body != "metrics" {
			t.Errorf("%v: /metrics next to the admin API: %d %s", env, code, body)
		}
	}

	h, err = withAdminAPI(adminHandler(metrics), func(k string) string {
		return map[string]string{"SYNCPLANE_ADMIN_TOKEN": "from-the-env-0123456789abcdef"}[k]
	}, reg, st, &opt, log)
	if err != nil {
		t.Fatal(err)
	}
	before := reg.Get("demo")
	if code, body := get(h, "POST", "/admin/v1/tenants/demo/reload", "from-the-env-0123456789abcdef"); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if reg.Get("demo") == before {
		t.Error("reload did not swap the tenant")
	}
	// A folder broken since: refused, the running version keeps serving.
	if err := os.WriteFile(filepath.Join(dir, "demo", "tenant.yaml"), []byte("id: demo\nschema: nowhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	running := reg.Get("demo")
	if code, body := get(h, "POST", "/admin/v1/tenants/demo/reload", "from-the-env-0123456789abcdef"); code != http.StatusUnprocessableEntity {
		t.Errorf("reload of a broken folder: %d %s", code, body)
	}
	if reg.Get("demo") != running {
		t.Error("a refused reload replaced the running tenant")
	}
	if code, _ := get(h, "POST", "/admin/v1/tenants/nope/reload", "from-the-env-0123456789abcdef"); code != http.StatusNotFound {
		t.Errorf("reload of an unknown tenant: %d", code)
	}
}

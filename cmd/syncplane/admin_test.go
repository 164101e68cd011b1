package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/storetest"
)

// getBody GETs url with the server's client.
func (s *server) getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := s.client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeAdmin: --admin-addr serves pprof and /metrics on its own
// listener, which stops with serve; the API address has neither pprof nor
// the admin listener when it is not asked for.
func TestServeAdmin(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := dbEnv(t, db)
		srv := startServe(t, e, "--data", t.TempDir(), "--admin-addr", "127.0.0.1:0")
		line := logLine(srv.stderr.String(), "admin serving")
		if line == nil {
			t.Fatalf("no admin log line; stderr:\n%s", srv.stderr)
		}
		admin := "http://" + line["addr"].(string)

		if code, body := srv.getBody(t, admin+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Errorf("GET admin /debug/pprof/: %d %.200s", code, body)
		}
		if code, body := srv.getBody(t, admin+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
			t.Errorf("GET admin goroutine profile: %d %.200s", code, body)
		}
		if code, body := srv.getBody(t, admin+"/metrics"); code != http.StatusOK || !strings.Contains(body, `syncplane_http_requests_total{route="/healthz",status="200",tenant=""}`) {
			t.Errorf("GET admin /metrics: %d %.2000s", code, body)
		}
		if code, body := srv.getBody(t, srv.url+"/readyz"); code != http.StatusOK || body != `{"status":"ready"}` {
			t.Errorf("GET /readyz: %d %s", code, body)
		}
		if code, _ := srv.getBody(t, srv.url+"/debug/pprof/"); code != http.StatusNotFound {
			t.Errorf("GET API /debug/pprof/: %d, want 404", code)
		}

		if err := srv.stop(t); err != nil {
			t.Errorf("serve returned %v after its context ended", err)
		}
		srv.client.CloseIdleConnections()
		if resp, err := srv.client.Get(admin + "/debug/pprof/"); err == nil {
			resp.Body.Close()
			t.Errorf("admin address still answers after serve returned: %d", resp.StatusCode)
		}
	})

	t.Run("case=off-by-default", func(t *testing.T) {
		t.Parallel()
		srv := startServe(t, env{}, "--data", t.TempDir())
		if line := logLine(srv.stderr.String(), "admin serving"); line != nil {
			t.Errorf("admin listener without --admin-addr: %v", line)
		}
	})

	t.Run("case=config", func(t *testing.T) {
		t.Parallel()
		cfg, err := loadConfig("", env{"SYNCPLANE_ADMIN_ADDR": "127.0.0.1:6060"}.get)
		if err != nil || cfg.AdminAddr != "127.0.0.1:6060" {
			t.Errorf("SYNCPLANE_ADMIN_ADDR: %+v, %v", cfg, err)
		}
	})
}

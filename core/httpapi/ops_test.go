package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/pluginhost"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestReadyz: ready while the database answers, 503 once it is closed.
func TestReadyz(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		if code, b := get(t, e.url+"/readyz"); code != http.StatusOK || string(b) != `{"status":"ready"}` {
			t.Fatalf("GET /readyz: %d %s", code, b)
		}
		must(t, e.st.Close())
		code, b := get(t, e.url+"/readyz")
		var got struct{ Error string }
		must(t, json.Unmarshal(b, &got))
		if code != http.StatusServiceUnavailable || got.Error != "not ready: storage unavailable" {
			t.Errorf("GET /readyz after close: %d %s", code, b)
		}
		if code, _ := get(t, e.url+"/healthz"); code != http.StatusOK {
			t.Errorf("GET /healthz after close: %d, want 200 (alive, not ready)", code)
		}
	})
}

// TestReadyzMigrations: a database without the platform migrations is not ready.
func TestReadyzMigrations(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		st, err := store.Open(ctx, db.URL(t), t.TempDir())
		must(t, err)
		t.Cleanup(func() { st.Close() })
		var logs testkit.LockedBuffer
		srv := httptest.NewServer(httpapi.New(tenant.NewRegistry(), slog.New(slog.NewJSONHandler(&logs, nil)), httpapi.WithReady(st.Ready)))
		t.Cleanup(srv.Close)
		// The answer is generic; the log has the cause.
		if code, b := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable ||
			(string(b) != `{"error":"not ready"}` && string(b) != `{"error":"not ready: storage unavailable"}`) {
			t.Errorf("GET /readyz before migrating: %d %s", code, b)
		}
		if !strings.Contains(logs.String(), `"msg":"not ready"`) || !strings.Contains(logs.String(), `"err":`) {
			t.Errorf("no log of the cause: %s", logs.String())
		}
		must(t, st.Migrate(ctx))
		if code, b := get(t, srv.URL+"/readyz"); code != http.StatusOK {
			t.Errorf("GET /readyz after migrating: %d %s", code, b)
		}
	})
}

// scrape reads the server's /metrics.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, b := get(t, url+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	return mfs
}

// series returns the metrics of a family whose labels include want.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range mfs[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// value is the one counter or gauge value of a family with the labels.
func value(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	s := series(mfs, name, labels)
	if len(s) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(s))
	}
	if c := s[0].GetCounter(); c != nil {
		return c.GetValue()
	}
	return s[0].GetGauge().GetValue()
}

// TestMetrics: after a push and a pull, /metrics has the requests, push
// outcomes, pulled entries, latency histograms and pool gauges; an
// unknown tenant adds no tenant label value.
func TestMetrics(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		res := e.push(t, "acme", "m1",
			ev("", "User", "create", user("m1")),
			ev("", "Board", "create", board("m-b1", "m1", "b")),
			ev("", "Todo", "create", todo("m-t1", "m-nowhere", "t")), // no such parent
			ev("", "Nope", "create", map[string]any{}),
		)
		if errType(res[0]) != "" || errType(res[1]) != "" || errType(res[2]) != push.MissingParent || errType(res[3]) != push.InvalidModel {
			t.Fatalf("push result types: %q %q %q %q", errType(res[0]), errType(res[1]), errType(res[2]), errType(res[3]))
		}
		pulled := e.pullAll(t, "acme", "m1")
		if code, _, _ := post(t, e.url+"/v1/tenants/no-such-tenant/push", token(t, "acme", "m1"), map[string]any{"events": []any{}}); code != http.StatusNotFound {
			t.Fatalf("unknown tenant: status %d", code)
		}

		mfs := scrape(t, e.url)
		tests := map[string]struct {
			name   string
			labels map[string]string
			want   float64
		}{
			"push-requests":  {"syncplane_http_requests_total", map[string]string{"tenant": "acme", "route": "/v1/tenants/:tenant/push", "status": "200"}, 1},
			"pull-requests":  {"syncplane_http_requests_total", map[string]string{"tenant": "acme", "route": "/v1/tenants/:tenant/pull", "status": "200"}, 2},
			"unknown-tenant": {"syncplane_http_requests_total", map[string]string{"tenant": "", "route": "/v1/tenants/:tenant/push", "status": "404"}, 1},
			"applied":        {"syncplane_push_events_total", map[string]string{"tenant": "acme", "outcome": "applied", "error_type": ""}, 2},
			"parent":         {"syncplane_push_events_total", map[string]string{"tenant": "acme", "outcome": "rejected", "error_type": push.MissingParent}, 1},
			"model":          {"syncplane_push_events_total", map[string]string{"tenant": "acme", "outcome": "rejected", "error_type": push.InvalidModel}, 1},
			"pulled":         {"syncplane_pull_entries_total", map[string]string{"tenant": "acme"}, float64(len(pulled))},
		}
		for name, tc := range tests {
			if got := value(t, mfs, tc.name, tc.labels); got != tc.want {
				t.Errorf("case=%s: %s%v = %v, want %v", name, tc.name, tc.labels, got, tc.want)
			}
		}
		if len(pulled) != 2 {
			t.Errorf("pulled %d entries, want 2", len(pulled))
		}
		for _, route := range []string{"/v1/tenants/:tenant/push", "/v1/tenants/:tenant/pull"} {
			h := series(mfs, "syncplane_http_request_duration_seconds", map[string]string{"route": route})
			if len(h) != 1 || h[0].GetHistogram().GetSampleCount() == 0 {
				t.Errorf("no latency histogram for %s: %v", route, h)
			}
		}
		for _, name := range []string{"syncplane_http_requests_total", "syncplane_push_events_total", "syncplane_pull_entries_total"} {
			for _, m := range mfs[name].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "tenant" && l.GetValue() != "acme" && l.GetValue() != "" {
						t.Errorf("%s has tenant=%q", name, l.GetValue())
					}
				}
			}
		}
		if open := value(t, mfs, "syncplane_db_open_connections", nil); open < 1 {
			t.Errorf("syncplane_db_open_connections = %v, want ≥ 1", open)
		}
		for _, name := range []string{"syncplane_db_in_use_connections", "syncplane_db_idle_connections", "syncplane_db_wait_count_total"} {
			if mfs[name] == nil {
				t.Errorf("no %s", name)
			}
		}
	})
}

// TestMetricsOffThePublicRouter: WithPublicMetrics(false) leaves GET
// /metrics to Metrics(), for an admin listener (issue 9, finding 8).
func TestMetricsOffThePublicRouter(t *testing.T) {
	t.Parallel()
	api := httpapi.New(tenant.NewRegistry(), quietLog(), httpapi.WithPublicMetrics(false))
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	admin := httptest.NewServer(api.Metrics())
	t.Cleanup(admin.Close)
	if code, b := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz: %d %s", code, b)
	}
	if code, b := get(t, srv.URL+"/metrics"); code != http.StatusNotFound || strings.Contains(string(b), "syncplane_") {
		t.Errorf("GET /metrics on the API: %d %.200s", code, b)
	}
	if code, b := get(t, admin.URL); code != http.StatusOK || !strings.Contains(string(b), `syncplane_http_requests_total{route="/healthz",status="200",tenant=""} 1`) {
		t.Errorf("GET Metrics(): %d %.2000s", code, b)
	}
}

// TestRequestLog: every request is logged at Info with its request id,
// tenant, method, route pattern, status and duration.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, nil)) // Info and above
	srv := httptest.NewServer(httpapi.New(tenant.NewRegistry(), log))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/tenants/acme/pull", strings.NewReader("{}"))
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "req-42" {
		t.Errorf("X-Request-Id = %q", got)
	}
	var line map[string]any
	must(t, json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &line))
	want := map[string]any{"level": "INFO", "msg": "request", "request_id": "req-42", "tenant": "acme",
		"method": "POST", "route": "/v1/tenants/:tenant/pull", "status": float64(404)}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v; line: %v", k, line[k], v, line)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Errorf("log has no duration: %v", line)
	}
}

// metered is the tenant of TestMetricsPluginAndStreams on db, alone with
// its validator plugin in the test binary: the plugin counters are the
// process's, per tenant id.
func metered(db string) string { return "metered-" + db }

func init() {
	for _, db := range []string{"sqlite", "postgres"} {
		secrets[metered(db)] = "metered-secret-0123456789abcdef0123456"
	}
}

// pluginPids returns the pids of the processes running the executable at path.
func pluginPids(t testing.TB, path string) []int {
	t.Helper()
	path, err := filepath.EvalSymlinks(path)
	must(t, err)
	dirs, err := filepath.Glob("/proc/[0-9]*")
	must(t, err)
	var pids []int
	for _, d := range dirs {
		if exe, err := os.Readlink(d + "/exe"); err == nil && exe == path {
			var pid int
			if _, err := fmt.Sscanf(filepath.Base(d), "%d", &pid); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// TestMetricsPluginAndStreams: after pushes through a tenant with a real
// validator plugin, a crash of the plugin and its restart, and with an
// open event stream, /metrics has the push batch and pull page latency
// histograms, the plugin's calls, starts, restarts, stops and running
// process, and the stream's connection gauge (back to 0 once the client
// disconnects) and pokes.
func TestMetricsPluginAndStreams(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		metered := metered(db.Name)
		// A copy of the plugin of its own, so that its process can be found.
		bin := filepath.Join(t.TempDir(), "validator")
		b, err := os.ReadFile(kanbanRules(t))
		must(t, err)
		must(t, os.WriteFile(bin, b, 0o755))
		e := &env{t: t, db: db, dir: t.TempDir(), data: t.TempDir(), dbURL: db.URL(t)}
		writeTenant(t, e.dir, metered, "validator:\n  command: "+bin+"\n  sha256: "+sha256File(t, bin)+"\n  timeout: 10s\n")
		writeTenant(t, e.dir, "beta", "")
		s := e.startLive(t, 0)
		l := func(extra ...string) map[string]string {
			m := map[string]string{"tenant": metered}
			for i := 0; i < len(extra); i += 2 {
				m[extra[i]] = extra[i+1]
			}
			return m
		}

		// The plugin counters are the process's: they count from what an
		// earlier run (-count) left.
		base := scrape(t, s.url)
		before := func(name string, labels map[string]string) float64 {
			if m := series(base, name, labels); len(m) == 1 {
				if h := m[0].GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m[0].GetCounter().GetValue()
			}
			return 0
		}

		st := openEvents(t, s.url, metered, "mu1")
		if got := value(t, scrape(t, s.url), "syncplane_sse_connections", l()); got != 1 {
			t.Errorf("syncplane_sse_connections with a stream open = %v, want 1", got)
		}
		pushes, pokes := 0, 0
		pushOK := func(events ...map[string]any) []push.Result {
			t.Helper()
			pushes++
			res := pushTo(t, s.url, metered, "mu1", events...)
			last := "" // the batch's last changelog id: the poke's
			for _, r := range res {
				if r.AppliedChangelogID != nil {
					last = max(last, *r.AppliedChangelogID)
				}
			}
			if last != "" {
				if p := st.nextPoke(t); p.ScopeKey != "mu1" || p.ChangelogID != last {
					t.Fatalf("poke %+v, want scope mu1 at %s", p, last)
				}
				pokes++
			}
			return res
		}
		ok(t, pushOK(ev("", "User", "create", user("mu1")), ev("", "Board", "create", board("mb1", "mu1", "Q1"))))
		res := pushOK(ev("", "Board", "create", board("mb2", "mu1", "Q2")), ev("", "Board", "create", board("mb3", "mu1", "   ")))
		if errType(res[0]) != "" || errType(res[1]) != push.CustomValidationFailed {
			t.Fatalf("push with a rejected board: %+v %+v", res[0].Error, res[1].Error)
		}
		pullFrom(t, s.url, metered, "mu1", map[string]any{})
		pullFrom(t, s.url, metered, "mu1", map[string]any{"lastChangelogId": *res[0].AppliedChangelogID, "waitMs": 1}) // a long poll: not a page

		// The plugin crashes; the pushes fail (retryably) until it is back.
		pids := pluginPids(t, bin)
		if len(pids) != 1 {
			t.Fatalf("plugin processes %v, want 1", pids)
		}
		must(t, syscall.Kill(pids[0], syscall.SIGKILL))
		failed := 0
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			res := pushOK(ev("", "Board", "create", board("mb4", "mu1", "Q4")))
			if errType(res[0]) == "" {
				break
			}
			if errType(res[0]) != push.ValidatorUnavailable {
				t.Fatalf("push while the plugin is down: %+v", res[0].Error)
			}
			failed++
			if time.Now().After(deadline) {
				t.Fatal("the plugin is not back after 30s")
			}
		}
		if failed == 0 {
			t.Error("no push failed after the plugin was killed")
		}

		mfs := scrape(t, s.url)
		for name, tc := range map[string]struct {
			name   string
			labels map[string]string
			want   float64
		}{
			"calls-ok":       {"syncplane_plugin_calls_total", l("outcome", pluginhost.OutcomeOK), 2},
			"calls-rejected": {"syncplane_plugin_calls_total", l("outcome", pluginhost.OutcomeRejected), 1},
			"calls-timeout":  {"syncplane_plugin_calls_total", l("outcome", pluginhost.OutcomeTimeout), 0},
			"starts":         {"syncplane_plugin_starts_total", l(), 2},
			"restarts":       {"syncplane_plugin_restarts_total", l(), 1},
			"start-failures": {"syncplane_plugin_start_failures_total", l(), 0},
			"crashes":        {"syncplane_plugin_stops_total", l("reason", pluginhost.StopCrash), 1},
			"idle-stops":     {"syncplane_plugin_stops_total", l("reason", pluginhost.StopIdle), 0},
			"running":        {"syncplane_plugin_running", l(), 1},
			"connections":    {"syncplane_sse_connections", l(), 1},
			"pokes":          {"syncplane_sse_pokes_sent_total", l(), float64(pokes)},
			"coalesced":      {"syncplane_sse_pokes_coalesced_total", l(), 0},
		} {
			if got := value(t, mfs, tc.name, tc.labels) - before(tc.name, tc.labels); got != tc.want {
				t.Errorf("case=%s: %s%v = %v more, want %v", name, tc.name, tc.labels, got, tc.want)
			}
		}
		crashed, unavailable := l("outcome", pluginhost.OutcomeCrashed), l("outcome", pluginhost.OutcomeUnavailable)
		down := value(t, mfs, "syncplane_plugin_calls_total", crashed) - before("syncplane_plugin_calls_total", crashed) +
			value(t, mfs, "syncplane_plugin_calls_total", unavailable) - before("syncplane_plugin_calls_total", unavailable)
		if down != float64(failed) {
			t.Errorf("crashed + unavailable calls = %v, want the %d failed pushes", down, failed)
		}
		for name, want := range map[string]uint64{
			"syncplane_push_batch_duration_seconds":  uint64(pushes),
			"syncplane_pull_page_duration_seconds":   1,
			"syncplane_plugin_call_duration_seconds": uint64(3 + failed),
		} {
			h := series(mfs, name, l())
			if len(h) != 1 || h[0].GetHistogram().GetSampleCount()-uint64(before(name, l())) != want {
				t.Errorf("%s{tenant=%s}: %v, want %d more observations", name, metered, h, want)
			}
		}
		// Only the tenant with a plugin has plugin series.
		for name, mf := range mfs {
			if !strings.HasPrefix(name, "syncplane_plugin_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "tenant" && lp.GetValue() != metered {
						t.Errorf("%s has tenant=%q", name, lp.GetValue())
					}
				}
			}
		}

		st.cancel() // the client goes away
		waitFor(t, "the stream's end counted", func() bool {
			return value(t, scrape(t, s.url), "syncplane_sse_connections", l()) == 0
		})
	})
}

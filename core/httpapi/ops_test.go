package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
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
	forEachDB(t, func(t *testing.T, db storetest.DB) {
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
	forEachDB(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		st, err := store.Open(ctx, db.URL(t), t.TempDir())
		must(t, err)
		t.Cleanup(func() { st.Close() })
		srv := httptest.NewServer(httpapi.New(tenant.NewRegistry(), quietLog(), httpapi.WithReady(st.Ready)))
		t.Cleanup(srv.Close)
		if code, b := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(string(b), "not ready") {
			t.Errorf("GET /readyz before migrating: %d %s", code, b)
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
	forEachDB(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		res := e.push(t, "acme", "m1",
			ev("", "User", "create", user("m1")),
			ev("", "Board", "create", board("m-b1", "m1", "b")),
			ev("", "Board", "create", board("m-b2", "nobody", "b")), // no such parent
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

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/live"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// The Grafana dashboard and the Prometheus alerting rules of
// docs/monitoring (README.md, "Dashboard and alerts").
const (
	monitoringDir  = "../../docs/monitoring"
	dashboardFile  = "syncplane-dashboard.json"
	alertsFile     = "syncplane-alerts.yml"
	alertsTestFile = "syncplane-alerts.test.yml"
)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Inputs        []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"` // a string, or {"query": ...}
			Datasource *dashDatasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *dashDatasource `json:"datasource"`
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // of a collapsed row
}

func readDashboard(t testing.TB) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, dashboardFile))
	must(t, err)
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels are the dashboard's panels, those of collapsed rows included.
func (d dashboard) panels() []dashPanel {
	var out []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// exprs are the PromQL expressions of the dashboard's targets and query
// variables, keyed by where they are.
func (d dashboard) exprs(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			must(t, json.Unmarshal(v.Query, &obj))
			q = obj.Query
		}
		out["variable "+v.Name] = q
	}
	return out
}

// alertRules are the alerting rules' expressions by alert name.
func alertRules(t testing.TB) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, alertsFile))
	must(t, err)
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert or expr: %+v", g.Name, r)
				continue
			}
			if r.For == "" {
				t.Errorf("alert %s: no for:", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: summary and description annotations are required", r.Alert)
			}
			out["alert "+r.Alert] = r.Expr
		}
	}
	return out
}

// seriesName is a metric name of syncplane's /metrics in a PromQL text.
// Label names and values never start with these prefixes.
var seriesName = regexp.MustCompile(`\b(?:syncplane|process|go)_[A-Za-z0-9_:]*`)

// usedSeries maps every metric name of the dashboard and the rules to the
// places that use it.
func usedSeries(t testing.TB) map[string][]string {
	t.Helper()
	all := readDashboard(t).exprs(t)
	for k, v := range alertRules(t) {
		all[k] = v
	}
	used := map[string][]string{}
	for where, expr := range all {
		names := seriesName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: no syncplane, process or go series in %q", where, expr)
		}
		for _, n := range names {
			used[n] = append(used[n], where)
		}
	}
	return used
}

// replicaSeries says whether name is one of the store's read replica
// series, which only a server with replicas exports.
func replicaSeries(name string) bool {
	return strings.HasPrefix(name, "syncplane_replica_") || strings.HasPrefix(name, "syncplane_pull_pages_routed") ||
		strings.HasPrefix(name, "syncplane_pull_replica_")
}

// exported says whether a scrape has the series name: a family of that
// name, or a histogram's (summary's) _bucket, _sum or _count.
func exported(mfs map[string]*dto.MetricFamily, name string) bool {
	if mf, ok := mfs[name]; ok && len(mf.GetMetric()) > 0 {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		mf := mfs[base]
		switch {
		case mf == nil || len(mf.GetMetric()) == 0:
		case mf.GetType() == dto.MetricType_HISTOGRAM:
			return true
		case mf.GetType() == dto.MetricType_SUMMARY && suffix != "_bucket":
			return true
		}
	}
	return false
}

// TestMonitoringDashboard: the dashboard is JSON Grafana imports (a
// Prometheus data source input and variable, the tenant and instance
// variables), every panel has the data source and a query, ids are unique.
func TestMonitoringDashboard(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want ≥ 36 (panel and target data sources)", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want one prometheus data source DS_PROMETHEUS", d.Inputs)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: data source %+v, want ${datasource}", v.Name, v.Datasource)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "instance": "query", "tenant": "query"} {
		if vars[name] != typ {
			t.Errorf("variable %s: type %q, want %q", name, vars[name], typ)
		}
	}
	ids := map[int]string{}
	queries := 0
	for _, p := range d.panels() {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want prometheus ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no target", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: target %+v without expr or refId", p.Title, tg)
			}
			queries++
		}
	}
	if queries < 20 {
		t.Errorf("%d queries in the dashboard, want the whole set", queries)
	}
}

// TestMonitoringSeries: every series the dashboard and the alerting rules
// use is on the /metrics of a real server: one on SQLite with a validator
// plugin, event streams and a push, a pull and a poke behind it; and the
// read replica series on one whose pull pages are read from a streaming
// standby (sdk/pgstandby: skipped without PostgreSQL's server binaries,
// failed when SYNCPLANE_TEST_REQUIRE_POSTGRES=1).
func TestMonitoringSeries(t *testing.T) {
	t.Parallel()
	used := usedSeries(t)
	check := func(t *testing.T, mfs map[string]*dto.MetricFamily, which func(string) bool) {
		t.Helper()
		n := 0
		for _, name := range slices.Sorted(maps.Keys(used)) {
			if !which(name) {
				continue
			}
			n++
			if !exported(mfs, name) {
				t.Errorf("%s is not on /metrics; used by %s", name, strings.Join(used[name], ", "))
			}
		}
		if n == 0 {
			t.Error("no series to check")
		}
	}

	t.Run("server", func(t *testing.T) {
		t.Parallel()
		db := storetest.DB{Name: "sqlite"}
		e := &env{t: t, db: db, dir: t.TempDir(), data: t.TempDir(), dbURL: db.URL(t)}
		bin := kanbanRules(t)
		writeTenant(t, e.dir, "acme", "validator:\n  command: "+bin+"\n  sha256: "+sha256File(t, bin)+"\n  timeout: 10s\n")
		st := e.db.OpenAt(t, e.dbURL, e.data)
		hub := live.NewHub()
		reg, errs := tenant.LoadDir(context.Background(), e.dir, tenant.Options{Store: st, Log: quietLog(), Live: hub})
		for _, err := range errs {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = reg.Close() })
		api := httpapi.New(reg, quietLog(), httpapi.WithLive(hub, 0), httpapi.WithReady(st.Ready), httpapi.WithDBStats(st.DBStats))
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		t.Cleanup(api.StopStreams)

		stream := openEvents(t, srv.URL, "acme", "mon1")
		res := pushTo(t, srv.URL, "acme", "mon1", ev("", "User", "create", user("mon1")),
			ev("", "Board", "create", board("mon-b1", "mon1", "   "))) // the plugin rejects a blank name
		if errType(res[0]) != "" || errType(res[1]) != push.CustomValidationFailed {
			t.Fatalf("push: %+v %+v", res[0].Error, res[1].Error)
		}
		if p := stream.nextPoke(t); p.ScopeKey != "mon1" {
			t.Fatalf("poke %+v, want scope mon1", p)
		}
		pullFrom(t, srv.URL, "acme", "mon1", map[string]any{})
		check(t, scrape(t, srv.URL), func(name string) bool { return !replicaSeries(name) })
	})

	t.Run("replicas", func(t *testing.T) {
		t.Parallel()
		e, pair := replicaEnv(t, store.ReplicaOptions{Interval: 50 * time.Millisecond})
		ok(t, e.push(t, "acme", "mon2", ev("", "User", "create", user("mon2"))))
		must(t, pair.WaitCaughtUp(context.Background()))
		e.pull(t, "acme", "mon2", map[string]any{})
		// The lag histograms have an observation once a check has run
		// since AddReplicas (and the first check already has).
		mfs := scrape(t, e.url)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); mfs = scrape(t, e.url) {
			missing := false
			for name := range used {
				missing = missing || replicaSeries(name) && !exported(mfs, name)
			}
			if !missing {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		check(t, mfs, replicaSeries)
	})
}

// promtool is the path of Prometheus's promtool, or "" after skipping the
// test for want of it; SYNCPLANE_TEST_REQUIRE_PROMTOOL=1 fails it instead
// (.ci/run installs Debian's prometheus package, which has it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("SYNCPLANE_TEST_REQUIRE_PROMTOOL") == "1" {
		t.Fatalf("promtool not found (%v), and SYNCPLANE_TEST_REQUIRE_PROMTOOL=1", err)
	}
	t.Skipf("promtool not found (%v): skipping (set SYNCPLANE_TEST_REQUIRE_PROMTOOL=1 to fail instead)", err)
	return ""
}

// TestMonitoringPromtool: promtool accepts the alerting rules, their unit
// tests pass, and every query of the dashboard parses as PromQL (as the
// expression of a recording rule, Grafana's variables replaced).
func TestMonitoringPromtool(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	run := func(t *testing.T, dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
	t.Run("check-rules", func(t *testing.T) { run(t, monitoringDir, "check", "rules", alertsFile) })
	t.Run("test-rules", func(t *testing.T) { run(t, monitoringDir, "test", "rules", alertsTestFile) })
	t.Run("dashboard-queries", func(t *testing.T) {
		grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*", "$tenant", ".*")
		type rule struct {
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		}
		var rules []rule
		exprs := readDashboard(t).exprs(t)
		for _, where := range slices.Sorted(maps.Keys(exprs)) {
			expr := exprs[where]
			if strings.HasPrefix(where, "variable ") {
				// label_values(SELECTOR, label) is Grafana's, not PromQL: its selector is.
				m := regexp.MustCompile(`^label_values\((.*), *\w+\)$`).FindStringSubmatch(expr)
				if m == nil {
					t.Errorf("%s: %q is not label_values(selector, label)", where, expr)
					continue
				}
				expr = m[1]
			}
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query:%d", len(rules)), Expr: grafana.Replace(expr)})
		}
		b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
		must(t, err)
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "dashboard-queries.yml"), b, 0o644))
		run(t, dir, "check", "rules", "dashboard-queries.yml")
	})
}

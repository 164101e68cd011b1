package pluginhost

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/syncplane/syncplane/core/testkit"
)

// gather scrapes a collector of the tenants given into name{labels} → value
// (counters and gauges) and name{labels}_count (histograms).
func gather(t *testing.T, tenants ...string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(func(tn string) bool {
		for _, x := range tenants {
			if x == tn {
				return true
			}
		}
		return false
	}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestMetrics: calls by outcome, starts, a crash and the restart after it,
// failed starts and running processes are counted per tenant, and only
// the tenants the collector includes are exposed.
func TestMetrics(t *testing.T) {
	p := newPluginFile(t)
	const tn = "metrics-test"
	stats.Lock() // count from zero under -count
	delete(stats.m, tn)
	delete(stats.m, "metrics-bad")
	stats.Unlock()
	h := New(Config{Tenant: tn, Command: p.path, SHA256: p.sum, Timeout: 10 * time.Second}, nil, nil)
	t.Cleanup(func() { _ = h.Close() })

	if _, err := validate(h, okEvents...); err != nil {
		t.Fatal(err)
	}
	if _, err := validate(h, ev("Board", `{"reject":"no"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := validate(h, ev("Error", `{}`))
	wantUnavailable(t, err)

	m := gather(t, tn)
	l := func(name string, labels ...string) string {
		return name + "{" + strings.Join(append(labels, "tenant="+tn), ",") + "}"
	}
	for k, want := range map[string]float64{
		l("syncplane_plugin_calls_total", "outcome=ok"):        1,
		l("syncplane_plugin_calls_total", "outcome=rejected"):  1,
		l("syncplane_plugin_calls_total", "outcome=error"):     1,
		l("syncplane_plugin_calls_total", "outcome=crashed"):   0,
		l("syncplane_plugin_call_duration_seconds") + "_count": 3,
		l("syncplane_plugin_starts_total"):                     1,
		l("syncplane_plugin_restarts_total"):                   0,
		l("syncplane_plugin_running"):                          1,
		l("syncplane_plugin_stops_total", "reason=crash"):      0,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("before the crash: %s = %v (present %v), want %v", k, got, ok, want)
		}
	}

	// A crash (the process is killed), noticed at the next call, and the
	// restart after the backoff.
	pid := h.pid()
	if err := killGroup(pid); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if !processGone(pid) {
			return fmt.Errorf("process %d still there", pid)
		}
		return nil
	})
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		_, err := validate(h, okEvents...)
		return err
	})
	m = gather(t, tn)
	failed := m[l("syncplane_plugin_calls_total", "outcome=crashed")] + m[l("syncplane_plugin_calls_total", "outcome=unavailable")]
	if failed < 1 {
		t.Errorf("no call failed for the crash: %v", m)
	}
	for k, want := range map[string]float64{
		l("syncplane_plugin_calls_total", "outcome=ok"):        2,
		l("syncplane_plugin_call_duration_seconds") + "_count": 4 + failed,
		l("syncplane_plugin_starts_total"):                     2,
		l("syncplane_plugin_restarts_total"):                   1,
		l("syncplane_plugin_start_failures_total"):             0,
		l("syncplane_plugin_stops_total", "reason=crash"):      1,
		l("syncplane_plugin_stops_total", "reason=idle"):       0,
		l("syncplane_plugin_running"):                          1,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("after the restart: %s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := gather(t, tn)[l("syncplane_plugin_running")]; got != 0 {
		t.Errorf("running after Close = %v, want 0", got)
	}

	// A start that fails (checksum mismatch) is counted, its call is
	// unavailable, and a tenant the collector does not include is absent.
	bad := New(Config{Tenant: "metrics-bad", Command: p.path, SHA256: strings.Repeat("0", 64)}, nil, nil)
	t.Cleanup(func() { _ = bad.Close() })
	_, err = validate(bad, okEvents...)
	wantUnavailable(t, err)
	m = gather(t, "metrics-bad")
	bl := func(name string, labels ...string) string {
		return name + "{" + strings.Join(append(labels, "tenant=metrics-bad"), ",") + "}"
	}
	for k, want := range map[string]float64{
		bl("syncplane_plugin_start_failures_total"):               1,
		bl("syncplane_plugin_starts_total"):                       0,
		bl("syncplane_plugin_calls_total", "outcome=unavailable"): 1,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("bad checksum: %s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	for k := range m {
		if strings.Contains(k, "tenant="+tn) {
			t.Errorf("excluded tenant exposed: %s", k)
		}
	}
}

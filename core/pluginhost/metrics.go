package pluginhost

import (
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a call, the values of the outcome label of
// syncplane_plugin_calls_total.
const (
	// OutcomeOK: the plugin answered and allowed every event (or, for
	// Info, described itself).
	OutcomeOK = "ok"
	// OutcomeRejected: the plugin answered and rejected at least one event.
	OutcomeRejected = "rejected"
	// OutcomeTimeout: no answer within Config.Timeout.
	OutcomeTimeout = "timeout"
	// OutcomeCrashed: the process died, or its connection broke, during
	// the call.
	OutcomeCrashed = "crashed"
	// OutcomeError: the plugin answered with a gRPC error or a malformed
	// answer (not exactly one verdict per event).
	OutcomeError = "error"
	// OutcomeUnavailable: there was no process to call: its start failed
	// or the backoff after a failure is pending, the checksum does not
	// match, no call slot or no started process came within the timeout,
	// or the host is closed.
	OutcomeUnavailable = "unavailable"
	// OutcomeCanceled: the caller's context ended before an answer.
	OutcomeCanceled = "canceled"
)

// Reasons a process was stopped, the values of the reason label of
// syncplane_plugin_stops_total. Close is not counted.
const (
	// StopCrash: the process died (crash, kill, a resource limit) or its
	// connection broke.
	StopCrash = "crash"
	// StopTimeouts: recycled after Config.MaxTimeouts consecutive timeouts.
	StopTimeouts = "timeouts"
	// StopIdle: stopped after Config.IdleTimeout without calls.
	StopIdle = "idle"
)

var (
	outcomes    = []string{OutcomeOK, OutcomeRejected, OutcomeTimeout, OutcomeCrashed, OutcomeError, OutcomeUnavailable, OutcomeCanceled}
	stopReasons = []string{StopCrash, StopTimeouts, StopIdle}
	callBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// tenantStats are the counters of one tenant's plugin hosts in this
// process. They are kept per tenant id for the life of the process, so
// that they stay monotonic when a reload replaces a tenant's host.
type tenantStats struct {
	mu            sync.Mutex
	calls         map[string]uint64 // outcome → calls
	buckets       []uint64          // calls per duration bucket (not cumulative); the last is +Inf
	count         uint64
	sum           float64 // seconds
	starts        uint64
	startFailures uint64
	restarts      uint64
	stops         map[string]uint64 // reason → stops
	running       int
}

// stats holds every tenant's counters of this process.
var stats = struct {
	sync.Mutex
	m map[string]*tenantStats
}{m: map[string]*tenantStats{}}

// statsOf returns tenant's counters, creating them.
func statsOf(tenant string) *tenantStats {
	stats.Lock()
	defer stats.Unlock()
	s := stats.m[tenant]
	if s == nil {
		s = &tenantStats{
			calls:   map[string]uint64{},
			buckets: make([]uint64, len(callBuckets)+1),
			stops:   map[string]uint64{},
		}
		stats.m[tenant] = s
	}
	return s
}

func (s *tenantStats) call(outcome string, d time.Duration) {
	sec := d.Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[outcome]++
	s.buckets[sort.SearchFloat64s(callBuckets, sec)]++ // the first bucket ≥ sec
	s.count++
	s.sum += sec
}

func (s *tenantStats) started(restart bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts++
	s.running++
	if restart {
		s.restarts++
	}
}

func (s *tenantStats) startFailed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startFailures++
}

// stopped counts a running process's end; reason "" (Close) is not
// counted as a stop.
func (s *tenantStats) stopped(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if reason != "" {
		s.stops[reason]++
	}
}

// snapshot is a copy of tenantStats for a scrape.
type snapshot struct {
	calls, stops                    map[string]uint64
	buckets                         map[float64]uint64 // cumulative
	count                           uint64
	sum                             float64
	starts, startFailures, restarts uint64
	running                         int
}

func (s *tenantStats) snapshot() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := snapshot{
		calls: maps.Clone(s.calls), stops: maps.Clone(s.stops), buckets: make(map[float64]uint64, len(callBuckets)),
		count: s.count, sum: s.sum, starts: s.starts, startFailures: s.startFailures, restarts: s.restarts, running: s.running,
	}
	var cum uint64
	for i, b := range callBuckets {
		cum += s.buckets[i]
		out.buckets[b] = cum
	}
	return out
}

// collector exposes the counters of the tenants include accepts.
type collector struct {
	include func(tenant string) bool

	calls, duration, starts, startFailures, restarts, stops, running *prometheus.Desc
}

// NewCollector returns a prometheus.Collector of this process's validator
// plugins, by tenant: calls by outcome (the Outcome constants) and their
// duration (a whole Validate or Info, waits for a call slot and for a
// start included), process starts, failed starts, restarts (starts after
// the tenant's host had a process before), stops by reason (the Stop
// constants) and running processes. Only tenants for which include
// returns true are exposed (nil: every tenant that had a host), so that
// label values stay bounded by the tenants the caller serves.
//
// The counts live in the package, per tenant id, for the life of the
// process: they survive a reload that replaces a tenant's host, and
// every collector of the process sees the same counts.
func NewCollector(include func(tenant string) bool) prometheus.Collector {
	tenant := []string{"tenant"}
	return &collector{
		include: include,
		calls: prometheus.NewDesc("syncplane_plugin_calls_total",
			"Validator plugin calls by tenant and outcome (ok, rejected, timeout, crashed, error, unavailable, canceled).",
			[]string{"tenant", "outcome"}, nil),
		duration: prometheus.NewDesc("syncplane_plugin_call_duration_seconds",
			"Validator plugin call latency by tenant, waiting for a call slot and a start included.", tenant, nil),
		starts: prometheus.NewDesc("syncplane_plugin_starts_total",
			"Validator plugin processes started, by tenant.", tenant, nil),
		startFailures: prometheus.NewDesc("syncplane_plugin_start_failures_total",
			"Validator plugin starts that failed (checksum, exec, handshake), by tenant.", tenant, nil),
		restarts: prometheus.NewDesc("syncplane_plugin_restarts_total",
			"Validator plugin processes started to replace an earlier one (after a crash, a recycling or an idle stop), by tenant.", tenant, nil),
		stops: prometheus.NewDesc("syncplane_plugin_stops_total",
			"Validator plugin processes that ended, by tenant and reason (crash, timeouts, idle).", []string{"tenant", "reason"}, nil),
		running: prometheus.NewDesc("syncplane_plugin_running",
			"Validator plugin processes running, by tenant.", tenant, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.calls, c.duration, c.starts, c.startFailures, c.restarts, c.stops, c.running} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	stats.Lock()
	all := maps.Clone(stats.m)
	stats.Unlock()
	for _, tn := range slices.Sorted(maps.Keys(all)) {
		if c.include != nil && !c.include(tn) {
			continue
		}
		s := all[tn].snapshot()
		for _, o := range outcomes {
			ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(s.calls[o]), tn, o)
		}
		ch <- prometheus.MustNewConstHistogram(c.duration, s.count, s.sum, s.buckets, tn)
		ch <- prometheus.MustNewConstMetric(c.starts, prometheus.CounterValue, float64(s.starts), tn)
		ch <- prometheus.MustNewConstMetric(c.startFailures, prometheus.CounterValue, float64(s.startFailures), tn)
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.restarts), tn)
		for _, r := range stopReasons {
			ch <- prometheus.MustNewConstMetric(c.stops, prometheus.CounterValue, float64(s.stops[r]), tn, r)
		}
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(s.running), tn)
	}
}

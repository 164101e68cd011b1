package httpapi

import (
	"database/sql"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncplane/syncplane/core/pluginhost"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/tenant"
)

// metrics are one Server's Prometheus series, in a registry of its own so
// that several servers (parallel tests) never share or collide.
//
// Label values stay bounded: tenant is a loaded tenant's id or "" (unknown
// tenants, routes without one), route is gin's route pattern or
// "unmatched", error_type is one of push's error types, outcome and reason
// of the plugin series are pluginhost's constants.
type metrics struct {
	reg          *prometheus.Registry
	handler      http.Handler
	requests     *prometheus.CounterVec   // tenant, route, status
	duration     *prometheus.HistogramVec // route
	pushEvents   *prometheus.CounterVec   // tenant, outcome, error_type
	pulled       *prometheus.CounterVec   // tenant
	pushBatch    *prometheus.HistogramVec // tenant
	pullPage     *prometheus.HistogramVec // tenant
	sseConns     *prometheus.GaugeVec     // tenant
	ssePokes     *prometheus.CounterVec   // tenant
	sseCoalesced *prometheus.CounterVec   // tenant
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// newMetrics makes a server's registry. loaded tells the tenants whose
// validator plugins are exposed (the process's plugin counters are
// pluginhost's, see pluginhost.NewCollector).
func newMetrics(dbStats func() sql.DBStats, loaded func(tenant string) bool) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncplane_http_requests_total",
			Help: "HTTP requests by tenant (\"\" when none or unknown), route pattern and status code.",
		}, []string{"tenant", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncplane_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern: a push batch, a pull page.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		pushEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncplane_push_events_total",
			Help: "Pushed events by tenant and outcome (applied or rejected), with the rejection's error type.",
		}, []string{"tenant", "outcome", "error_type"}),
		pulled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncplane_pull_entries_total",
			Help: "Changelog entries returned by pull, by tenant.",
		}, []string{"tenant"}),
		pushBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncplane_push_batch_duration_seconds",
			Help:    "Time to process one push batch (validation, plugin, transaction), by tenant.",
			Buckets: latencyBuckets,
		}, []string{"tenant"}),
		pullPage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncplane_pull_page_duration_seconds",
			Help:    "Time to read one pull page, by tenant; long polls (waitMs > 0) are left out.",
			Buckets: latencyBuckets,
		}, []string{"tenant"}),
		sseConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncplane_sse_connections",
			Help: "Open event streams (GET /v1/tenants/{tenant}/events), by tenant.",
		}, []string{"tenant"}),
		ssePokes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncplane_sse_pokes_sent_total",
			Help: "Poke events written to event streams, by tenant.",
		}, []string{"tenant"}),
		sseCoalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncplane_sse_pokes_coalesced_total",
			Help: "Pokes merged into one still pending for the same scope of a stream that had not been written yet (a slow client), by tenant.",
		}, []string{"tenant"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.pushEvents, m.pulled, m.pushBatch, m.pullPage,
		m.sseConns, m.ssePokes, m.sseCoalesced, pluginhost.NewCollector(loaded),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if dbStats != nil {
		m.reg.MustRegister(dbStatsCollector(dbStats))
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// observe counts and times every request; it runs outside recover, so a
// request that panicked is counted with its 500.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.WithLabelValues(tenantLabel(c), route, strconv.Itoa(c.Writer.Status())).Inc()
	s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// tenantLabel is the id of the request's tenant once it was found, and ""
// otherwise: a client cannot mint label values by naming tenants.
func tenantLabel(c *gin.Context) string {
	if t, ok := c.Get(tenantKey); ok {
		return t.(*tenant.Tenant).Manifest.ID
	}
	return ""
}

func (m *metrics) countPush(tenantID string, results []push.Result) {
	var applied float64
	for _, r := range results {
		if r.Error == nil {
			applied++
			continue
		}
		m.pushEvents.WithLabelValues(tenantID, "rejected", r.Error.Type).Inc()
	}
	if applied > 0 {
		m.pushEvents.WithLabelValues(tenantID, "applied", "").Add(applied)
	}
}

func (m *metrics) countPull(tenantID string, resp *pull.Response) {
	m.pulled.WithLabelValues(tenantID).Add(float64(resp.Len()))
}

// timePush observes a push batch that started at start.
func (m *metrics) timePush(tenantID string, start time.Time) {
	m.pushBatch.WithLabelValues(tenantID).Observe(time.Since(start).Seconds())
}

// timePull observes a pull page that started at start, unless it was a
// long poll (its time is mostly waiting).
func (m *metrics) timePull(tenantID string, req pull.Request, start time.Time) {
	if req.WaitMs == nil || *req.WaitMs == 0 {
		m.pullPage.WithLabelValues(tenantID).Observe(time.Since(start).Seconds())
	}
}

// dbStats exposes sql.DBStats of the platform database.
type dbStats struct {
	stats                        func() sql.DBStats
	open, inUse, idle, waitCount *prometheus.Desc
}

func dbStatsCollector(stats func() sql.DBStats) prometheus.Collector {
	return &dbStats{
		stats:     stats,
		open:      prometheus.NewDesc("syncplane_db_open_connections", "Open connections to the platform database.", nil, nil),
		inUse:     prometheus.NewDesc("syncplane_db_in_use_connections", "Platform database connections in use.", nil, nil),
		idle:      prometheus.NewDesc("syncplane_db_idle_connections", "Idle platform database connections.", nil, nil),
		waitCount: prometheus.NewDesc("syncplane_db_wait_count_total", "Times a request waited for a platform database connection.", nil, nil),
	}
}

func (d *dbStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- d.open
	ch <- d.inUse
	ch <- d.idle
	ch <- d.waitCount
}

func (d *dbStats) Collect(ch chan<- prometheus.Metric) {
	st := d.stats()
	ch <- prometheus.MustNewConstMetric(d.open, prometheus.GaugeValue, float64(st.OpenConnections))
	ch <- prometheus.MustNewConstMetric(d.inUse, prometheus.GaugeValue, float64(st.InUse))
	ch <- prometheus.MustNewConstMetric(d.idle, prometheus.GaugeValue, float64(st.Idle))
	ch <- prometheus.MustNewConstMetric(d.waitCount, prometheus.CounterValue, float64(st.WaitCount))
}

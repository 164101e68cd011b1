package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/live"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/tracing"
)

// Tenants finds a running tenant by id.
type Tenants interface {
	Get(id string) *tenant.Tenant
}

// Server is the HTTP API.
type Server struct {
	tenants Tenants
	log     *slog.Logger
	engine  *gin.Engine
	handler http.Handler // engine behind the CORS layer
	ready   func(context.Context) error
	dbStats func() sql.DBStats
	extra   []prometheus.Collector // WithCollectors
	metrics *metrics

	live      *live.Hub     // nil: no event streams
	heartbeat time.Duration // between comments on an idle event stream

	tracer trace.Tracer // WithTracerProvider; nil: no tracing

	writeTimeout  time.Duration // of an ordinary response; 0: none
	publicMetrics bool          // GET /metrics on this router (default true)
	stopped       context.Context
	stop          context.CancelFunc
}

// Option configures a Server.
type Option func(*Server)

// WithReady makes GET /readyz answer 503 while ready returns an error; it
// is called with a deadline of readyTimeout. Without it, /readyz answers
// 200 like /healthz.
func WithReady(ready func(context.Context) error) Option {
	return func(s *Server) { s.ready = ready }
}

// WithDBStats exposes the database connection pool statistics that stats
// returns on /metrics. Without it, there are no syncplane_db_* series.
func WithDBStats(stats func() sql.DBStats) Option {
	return func(s *Server) { s.dbStats = stats }
}

// WithCollectors adds series to /metrics (the store's read replicas').
func WithCollectors(cs ...prometheus.Collector) Option {
	return func(s *Server) { s.extra = append(s.extra, cs...) }
}

// WithWriteTimeout bounds the time from a request's start to the end of
// its response's writing to d, like http.Server's WriteTimeout, except for
// the responses that last by design: an event stream gets d for each of
// its writes, a long poll gets d for its page once its wait is over.
// Serve the handler with an http.Server whose WriteTimeout is 0 or at
// least d (it applies to every request before the handler runs).
func WithWriteTimeout(d time.Duration) Option {
	return func(s *Server) { s.writeTimeout = d }
}

// WithPublicMetrics says whether the API router itself serves GET
// /metrics (by default it does). The metrics name every tenant: syncplane
// serve turns them off unless configured, and mounts Metrics() on its
// admin listener instead.
func WithPublicMetrics(on bool) Option {
	return func(s *Server) { s.publicMetrics = on }
}

// WithTracerProvider traces the requests with tp (OpenTelemetry): a
// server span per request, named by its route, continuing the trace of an
// incoming W3C traceparent header; the stages below it (decoding, policy,
// the validator call, the transaction, the pull page) are its children
// (see package tracing), and the request log line gets trace_id and
// span_id. Probes and scrapes (/healthz, /readyz, /metrics) are not
// traced. Without it, or with a nil tp, nothing is traced and nothing
// of it costs.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) {
		s.tracer = nil
		if tp != nil {
			s.tracer = tp.Tracer(tracing.Name)
		}
	}
}

// readyTimeout bounds one readiness check.
const readyTimeout = 2 * time.Second

const (
	requestIDKey = "request_id"
	tenantKey    = "tenant"
	subjectKey   = "subject"
	rolesKey     = "roles"
	claimsKey    = "claims"
)

// New builds the router.
func New(tenants Tenants, log *slog.Logger, opts ...Option) *Server {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{tenants: tenants, log: log, engine: gin.New(), heartbeat: DefaultHeartbeat, publicMetrics: true}
	s.stopped, s.stop = context.WithCancel(context.Background())
	for _, o := range opts {
		o(s)
	}
	s.metrics = newMetrics(s.dbStats, func(id string) bool { return tenants.Get(id) != nil })
	s.metrics.reg.MustRegister(s.extra...)
	chain := []gin.HandlerFunc{s.writeDeadline, s.requestID}
	if s.tracer != nil {
		chain = append(chain, s.trace) // before logRequest: its line names the span
	}
	s.engine.Use(append(chain, s.logRequest, s.observe, s.recover)...)
	s.engine.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	s.engine.GET("/readyz", s.readyz)
	s.engine.GET("/openapi.json", s.openAPI)
	if s.publicMetrics {
		s.engine.GET("/metrics", gin.WrapH(s.metrics.handler))
	}
	v1 := s.engine.Group("/v1/tenants/:tenant", s.tenant, s.authenticate, s.rateLimit)
	v1.POST("/push", s.ensureRoot, s.push)
	v1.POST("/pull", s.ensureRoot, s.pull)
	v1.GET("/events", s.events)
	s.engine.NoRoute(func(c *gin.Context) { s.writeError(c, errorf(http.StatusNotFound, "no such endpoint")) })
	s.engine.NoMethod(func(c *gin.Context) { s.writeError(c, errorf(http.StatusMethodNotAllowed, "method not allowed")) })
	s.engine.HandleMethodNotAllowed = true
	s.handler = cors.New(cors.Options{
		AllowOriginVaryRequestFunc: s.allowOrigin,
		AllowedMethods:             []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:             []string{"Authorization", "Content-Type", "Last-Event-ID", "X-Request-Id"},
		ExposedHeaders:             []string{"Retry-After", "X-Request-Id"},
		MaxAge:                     600,
	}).Handler(s.engine)
	return s
}

// ServeHTTP makes the server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// allowOrigin lets a browser page from origin call a tenant's routes when
// the tenant's manifest lists the origin (or "*") in allowedOrigins. Other
// paths, unknown tenants and unlisted origins get no CORS headers, so the
// browser refuses the response. Tokens travel in the Authorization
// header, never in cookies: credentials are not allowed.
func (s *Server) allowOrigin(r *http.Request, origin string) (bool, []string) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/tenants/")
	if !ok {
		return false, nil
	}
	id, _, _ := strings.Cut(rest, "/")
	t := s.tenants.Get(id)
	if t == nil {
		return false, nil
	}
	for _, o := range t.Manifest.AllowedOrigins {
		if o == "*" || o == origin {
			return true, nil
		}
	}
	return false, nil
}

// Metrics serves the server's Prometheus metrics, for an admin listener
// (and GET /metrics of the API with WithPublicMetrics).
func (s *Server) Metrics() http.Handler { return s.metrics.handler }

// readyz answers 200 when the server can serve: the database answers and
// its migrations are applied. The cause of a 503 is logged; the answer is
// generic ("not ready: storage unavailable" or "not ready"), since the
// address is public and the cause may be SQL text or a host name.
func (s *Server) readyz(c *gin.Context) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.log.Warn("not ready", "request_id", c.GetString(requestIDKey), "err", err)
			msg := "not ready"
			if errors.Is(err, syncdata.ErrUnavailable) {
				msg = "not ready: storage unavailable"
			}
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, body{Error: msg})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// writeDeadline gives the response writeTimeout from now to be written;
// events and long polls change it (see WithWriteTimeout).
func (s *Server) writeDeadline(c *gin.Context) {
	s.setWriteDeadline(c, s.writeTimeout)
}

// setWriteDeadline sets the connection's write deadline to d from now (no
// deadline when d is 0 or WithWriteTimeout was not given). Writers that
// cannot take deadlines (a test's recorder) are left alone.
func (s *Server) setWriteDeadline(c *gin.Context, d time.Duration) {
	if s.writeTimeout <= 0 {
		return
	}
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(t)
}

func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if id == "" || len(id) > 64 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

// trace runs the request in a server span named "METHOD route" (the
// method alone for a path without a route), a child of the request's W3C
// traceparent when it has one, with the route, tenant, request id and
// status as attributes; a 5xx marks it failed.
func (s *Server) trace(c *gin.Context) {
	route := c.FullPath()
	switch route {
	case "/healthz", "/readyz", "/metrics":
		c.Next()
		return
	}
	name := c.Request.Method
	if route != "" {
		name += " " + route
	}
	ctx := propagation.TraceContext{}.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", c.Request.Method),
		attribute.String("http.route", route),
		attribute.String("url.path", c.Request.URL.Path),
		attribute.String("syncplane.request_id", c.GetString(requestIDKey)),
	))
	defer span.End()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	status := c.Writer.Status()
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if t := c.Param("tenant"); t != "" {
		span.SetAttributes(attribute.String("syncplane.tenant", t))
	}
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// recover turns a panic into a 500 without internals; the server stays up.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.writeError(c, fmt.Errorf("panic: %v", v))
		}
	}()
	c.Next()
}

// logRequest logs every request once it is answered; probes and scrapes
// (/healthz, /readyz, /metrics), which come every few seconds, at Debug.
// A traced request's line names its span (trace_id, span_id).
func (s *Server) logRequest(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	level := slog.LevelInfo
	switch route {
	case "/healthz", "/readyz", "/metrics":
		level = slog.LevelDebug
	}
	ctx := c.Request.Context()
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		s.log.Log(ctx, level, "request", "request_id", c.GetString(requestIDKey), "tenant", c.Param("tenant"),
			"method", c.Request.Method, "route", route, "status", c.Writer.Status(), "duration", time.Since(start),
			"trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
		return
	}
	s.log.Log(ctx, level, "request", "request_id", c.GetString(requestIDKey), "tenant", c.Param("tenant"),
		"method", c.Request.Method, "route", route, "status", c.Writer.Status(), "duration", time.Since(start))
}

func (s *Server) tenant(c *gin.Context) {
	t := s.tenants.Get(c.Param("tenant"))
	if t == nil {
		if u, ok := s.tenants.(interface{ Unavailable(string) error }); ok {
			if err := u.Unavailable(c.Param("tenant")); err != nil {
				// Its own database did not answer when it loaded: the
				// server retries (tenant.Registry.RetryUnavailable).
				s.log.Warn("tenant unavailable", "tenant", c.Param("tenant"), "err", err)
				c.Header("Retry-After", "10")
				s.writeError(c, errorf(http.StatusServiceUnavailable, "this tenant's storage is unavailable, retry later"))
				return
			}
		}
		s.writeError(c, errorf(http.StatusNotFound, fmt.Sprintf("unknown tenant %q", c.Param("tenant"))))
		return
	}
	c.Set(tenantKey, t)
}

func (s *Server) authenticate(c *gin.Context) {
	t := c.MustGet(tenantKey).(*tenant.Tenant)
	h := c.GetHeader("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		c.Header("WWW-Authenticate", `Bearer realm="syncplane"`)
		s.writeError(c, errorf(http.StatusUnauthorized, "missing bearer token"))
		return
	}
	claims, err := t.Verifier.Verify(strings.TrimSpace(token))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="syncplane", error="invalid_token"`)
		msg := "invalid token"
		if errors.Is(err, auth.ErrInvalidToken) {
			msg = err.Error()
		}
		s.writeError(c, errorf(http.StatusUnauthorized, msg))
		return
	}
	c.Set(subjectKey, claims.Subject)
	c.Set(rolesKey, claims.Roles)
	c.Set(claimsKey, claims.All)
}

// ensureRoot creates the subject's root record from its token when the
// tenant says so (rootFromToken) and it does not exist yet, before the
// subject pushes or pulls: its boards need their user, and its device
// pulls the user.
func (s *Server) ensureRoot(c *gin.Context) {
	t := c.MustGet(tenantKey).(*tenant.Tenant)
	claims, _ := c.MustGet(claimsKey).(map[string]any)
	if err := t.Push.EnsureRoot(c.Request.Context(), c.GetString(subjectKey), roles(c), claims); err != nil {
		s.writeError(c, err)
	}
}

func (s *Server) rateLimit(c *gin.Context) {
	t := c.MustGet(tenantKey).(*tenant.Tenant)
	if t.Limiter == nil {
		return
	}
	r := t.Limiter.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		c.Header("Retry-After", fmt.Sprint(int(math.Ceil(d.Seconds()))))
		s.writeError(c, errorf(http.StatusTooManyRequests, "rate limit of the tenant exceeded, retry later"))
	}
}

// readBody reads the request body up to the tenant's limit. The buffer
// grows as bytes arrive: a client's Content-Length reserves at most
// bodyInitialSize before its bytes come, so a slow or lying client costs
// what it has sent, not what it announced.
func (s *Server) readBody(c *gin.Context, t *tenant.Tenant) ([]byte, error) {
	limit := t.Manifest.Limits.MaxBodyBytes
	if c.Request.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", c.Request.ContentLength, limit))
	}
	var buf bytes.Buffer
	size := int64(bodyInitialSize)
	if n := c.Request.ContentLength; n >= 0 && n < size {
		size = n // a small body is read in one go, EOF included, without growing
	}
	buf.Grow(int(size) + bytes.MinRead)
	_, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errorf(http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		// http.Server's ReadTimeout: the connection is closed after this answer.
		return nil, errorf(http.StatusRequestTimeout, "body not received in time")
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "cannot read body: "+err.Error())
	}
	return buf.Bytes(), nil
}

// bodyInitialSize is the most readBody reserves for a body before its
// bytes arrive.
const bodyInitialSize = 16 << 10

func (s *Server) push(c *gin.Context) {
	t := c.MustGet(tenantKey).(*tenant.Tenant)
	b, err := s.readBody(c, t)
	if err != nil {
		s.writeError(c, err)
		return
	}
	_, span := tracing.Start(c.Request.Context(), "push.decode")
	events, err := push.DecodeBody(b, t.Manifest.Limits.MaxBatch)
	tracing.Int(span, "syncplane.body_bytes", len(b))
	tracing.Int(span, "syncplane.events", len(events))
	tracing.End(span, err)
	if tooLarge := (*push.BatchTooLargeError)(nil); errors.As(err, &tooLarge) {
		err = errorf(http.StatusRequestEntityTooLarge, tooLarge.Error())
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	start := time.Now()
	results, err := t.Push.Push(c.Request.Context(), c.GetString(subjectKey), roles(c), events)
	s.metrics.timePush(t.Manifest.ID, start)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.metrics.countPush(t.Manifest.ID, results)
	c.JSON(http.StatusOK, results)
}

func (s *Server) pull(c *gin.Context) {
	t := c.MustGet(tenantKey).(*tenant.Tenant)
	b, err := s.readBody(c, t)
	if err != nil {
		s.writeError(c, err)
		return
	}
	req, err := pull.DecodeRequest(b)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	wait := req.WaitMs != nil && *req.WaitMs > 0
	if wait {
		ctx = pull.WithWaitStop(ctx, s.stopped.Done()) // a shutdown ends the wait, not the reads
	}
	start := time.Now()
	resp, err := t.Pull.PullJSON(ctx, c.GetString(subjectKey), roles(c), req)
	s.metrics.timePull(t.Manifest.ID, req, start)
	if wait {
		// The wait writes nothing: the page gets the write timeout from now,
		// like any response.
		s.setWriteDeadline(c, s.writeTimeout)
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.metrics.countPull(t.Manifest.ID, resp)
	buf := pageBuffers.Get().(*[]byte)
	*buf = resp.AppendJSON((*buf)[:0])
	resp.Release()
	// Its length is known: the page goes out as one body, not in chunks.
	c.Header("Content-Length", strconv.Itoa(len(*buf)))
	c.Data(http.StatusOK, "application/json; charset=utf-8", *buf)
	if cap(*buf) <= 1<<20 { // keep the pool's buffers page-sized
		pageBuffers.Put(buf)
	}
}

// roles are the per-scope roles the request's token grants (nil for none).
func roles(c *gin.Context) map[string]string {
	r, _ := c.Get(rolesKey)
	m, _ := r.(map[string]string)
	return m
}

// pageBuffers hold pull responses while they are written.
var pageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// ReplicaOptions tune how pull pages are read from PostgreSQL streaming
// replicas (Store.AddReplicas). Zero values take the defaults.
type ReplicaOptions struct {
	// MaxLag: a replica whose replay is further behind the primary than
	// this leaves the routing until it catches up (default 10 s).
	MaxLag time.Duration
	// Wait: how long a pull waits for a replica to replay the heads its
	// scopes have on the primary before it reads from the primary instead
	// (default 50 ms).
	Wait time.Duration
	// Interval: how often every replica's replay position is read (default
	// 500 ms).
	Interval time.Duration
	// Log hears a replica leave and rejoin the routing.
	Log *slog.Logger
}

func (o *ReplicaOptions) defaults() {
	if o.MaxLag <= 0 {
		o.MaxLag = 10 * time.Second
	}
	if o.Wait <= 0 {
		o.Wait = 50 * time.Millisecond
	}
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// replicaSet reads pull pages from streaming replicas of the primary
// (docs/architecture.md, "Pulls from read replicas"). A page goes to a
// replica only when the replica has replayed, for every scope the page
// reads, the scope's head as the primary has it when the pull begins: every
// entry committed before the pull began (a poked one included) is then on
// the replica, and a replica replays commits in the order the primary made
// them, so nothing committed earlier in those scopes is missing either.
// Anything else (no replica in the routing, none caught up within Wait, a
// replica failing before the page's first row) reads from the primary.
type replicaSet struct {
	opt     ReplicaOptions
	primary *pgxpool.Pool
	list    []*replica
	next    atomic.Uint64 // round robin

	mu      sync.Mutex // guards history
	history []lsnAt    // the primary's WAL positions at the last checks, oldest first

	routed  *prometheus.CounterVec
	routes  map[[2]string]prometheus.Counter // routed's series, resolved once (route)
	lag     *prometheus.GaugeVec
	lagB    *prometheus.GaugeVec
	inRoute *prometheus.GaugeVec
	lagHist *prometheus.HistogramVec
	lagBH   *prometheus.HistogramVec
	waited  prometheus.Histogram
}

// replica is one standby.
type replica struct {
	name string // its URL without the password
	pool *pgxpool.Pool
	up   atomic.Bool // in the routing
	mu   sync.Mutex  // guards why
	why  string      // why it is out of the routing
}

// lsnAt is the primary's WAL position at a time.
type lsnAt struct {
	at  time.Time
	lsn int64
}

// The reasons a page goes where it goes, as /metrics labels.
const (
	routeCaughtUp  = "caught_up"  // replica: it had the heads at once
	routeWaited    = "waited"     // replica: after waiting for them
	routeNoReplica = "no_replica" // primary: no replica in the routing
	routeBehind    = "behind"     // primary: no replica had the heads within Wait
	routeFailed    = "error"      // primary: the replica failed
)

// AddReplicas makes the store read pull pages from the PostgreSQL
// streaming replicas at urls when they have replayed far enough (see
// replicaSet). A replica that cannot be reached now joins the routing once
// it can; only a URL that does not parse is an error. It starts the
// background check of the replicas' replay positions, which Close stops.
func (s *Store) AddReplicas(ctx context.Context, urls []string, opt ReplicaOptions) error {
	p, ok := s.b.(*postgres)
	if !ok {
		return errors.New("read replicas need PostgreSQL (SYNCPLANE_DATABASE_URL)")
	}
	if len(urls) == 0 {
		return nil
	}
	if p.replicas != nil {
		return errors.New("read replicas are already set")
	}
	opt.defaults()
	rs := &replicaSet{opt: opt, primary: p.pool,
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncplane_pull_pages_routed_total",
			Help: "Pull pages by where they were read (target: replica or primary) and why (reason)."}, []string{"target", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncplane_replica_lag_seconds",
			Help: "How long ago the primary had written the WAL a replica has not replayed yet, at the last check."}, []string{"replica"}),
		lagB: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncplane_replica_lag_bytes",
			Help: "WAL bytes written on the primary and not replayed by a replica yet, at the last check."}, []string{"replica"}),
		inRoute: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncplane_replica_up",
			Help: "1 while a replica serves pull pages, 0 while it is out of the routing (unreachable, not a standby, or lagging past the limit)."}, []string{"replica"}),
		lagHist: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "syncplane_replica_lag_check_seconds",
			Help:    "Replica lag at each check.",
			Buckets: []float64{0, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"replica"}),
		lagBH: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "syncplane_replica_lag_check_bytes",
			Help:    "Replica lag in WAL bytes at each check.",
			Buckets: []float64{0, 1 << 10, 8 << 10, 64 << 10, 512 << 10, 4 << 20, 32 << 20, 256 << 20}}, []string{"replica"}),
		waited: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncplane_pull_replica_wait_seconds",
			Help:    "How long pulls waited for a replica to replay their scopes' heads.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25}}),
	}
	rs.routes = map[[2]string]prometheus.Counter{}
	for _, tr := range [][2]string{{"replica", routeCaughtUp}, {"replica", routeWaited},
		{"primary", routeNoReplica}, {"primary", routeBehind}, {"primary", routeFailed}} {
		rs.routes[tr] = rs.routed.WithLabelValues(tr[0], tr[1])
	}
	for _, u := range urls {
		cfg, err := pgPoolConfig(u)
		if err != nil {
			rs.close()
			return fmt.Errorf("replica: %w", err)
		}
		// A replica that is down must not hold a pull for long.
		if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 2*time.Second {
			cfg.ConnConfig.ConnectTimeout = 2 * time.Second
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			rs.close()
			return fmt.Errorf("replica %s: %w", redact(u), err)
		}
		r := &replica{name: redact(u), pool: pool, why: "not checked yet"}
		rs.inRoute.WithLabelValues(r.name).Set(0)
		rs.list = append(rs.list, r)
	}
	rs.check(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bg.Err() != nil {
		rs.close()
		return errors.New("store closed")
	}
	p.replicas = rs
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		tick := time.NewTicker(opt.Interval)
		defer tick.Stop()
		for {
			select {
			case <-s.bg.Done():
				return
			case <-tick.C:
				rs.check(s.bg)
			}
		}
	}()
	return nil
}

// ReplicaCollectors are the /metrics series of the read replicas (none
// without them).
func (s *Store) ReplicaCollectors() []prometheus.Collector {
	p, ok := s.b.(*postgres)
	if !ok || p.replicas == nil {
		return nil
	}
	rs := p.replicas
	return []prometheus.Collector{rs.routed, rs.lag, rs.lagB, rs.inRoute, rs.lagHist, rs.lagBH, rs.waited}
}

// ReplicaStatus is one replica as the routing sees it.
type ReplicaStatus struct {
	Name string `json:"name"`          // URL without password
	Up   bool   `json:"up"`            // serves pull pages
	Why  string `json:"why,omitempty"` // why not, when !Up
}

// Replicas reports the read replicas' state.
func (s *Store) Replicas() []ReplicaStatus {
	p, ok := s.b.(*postgres)
	if !ok || p.replicas == nil {
		return nil
	}
	var out []ReplicaStatus
	for _, r := range p.replicas.list {
		r.mu.Lock()
		out = append(out, ReplicaStatus{Name: r.name, Up: r.up.Load(), Why: r.why})
		r.mu.Unlock()
	}
	return out
}

func (rs *replicaSet) close() {
	for _, r := range rs.list {
		r.pool.Close()
	}
}

// check reads the primary's WAL position and every replica's replay
// position, and puts each replica in or out of the routing.
func (rs *replicaSet) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(rs.opt.Interval, time.Second))
	defer cancel()
	now := time.Now()
	var primary int64
	err := rs.primary.QueryRow(ctx, "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").Scan(&primary)
	rs.mu.Lock()
	if err == nil {
		rs.history = append(rs.history, lsnAt{now, primary})
	} else if n := len(rs.history); n > 0 {
		primary = rs.history[n-1].lsn // the last known
	}
	// Keep what a lag up to MaxLag (and a little more) is measured against.
	for len(rs.history) > 1 && now.Sub(rs.history[1].at) > 2*rs.opt.MaxLag {
		rs.history = rs.history[1:]
	}
	history := rs.history
	rs.mu.Unlock()
	for _, r := range rs.list {
		var replayed *int64
		err := r.pool.QueryRow(ctx, "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint").Scan(&replayed)
		switch {
		case err != nil:
			rs.drop(r, "unreachable: "+err.Error())
			continue
		case replayed == nil:
			rs.drop(r, "not a standby (pg_last_wal_replay_lsn() is null)")
			continue
		}
		lag := lagOf(history, *replayed, now)
		rs.lag.WithLabelValues(r.name).Set(lag.Seconds())
		rs.lagB.WithLabelValues(r.name).Set(float64(max(0, primary-*replayed)))
		rs.lagHist.WithLabelValues(r.name).Observe(lag.Seconds())
		rs.lagBH.WithLabelValues(r.name).Observe(float64(max(0, primary-*replayed)))
		if lag > rs.opt.MaxLag {
			rs.drop(r, fmt.Sprintf("replay %s behind the primary (limit %s)", lag.Round(time.Millisecond), rs.opt.MaxLag))
			continue
		}
		rs.join(r)
	}
}

// lagOf is how long ago the primary had written WAL past replayed: the
// age of the oldest position in history (oldest first) beyond it, 0 when
// there is none.
func lagOf(history []lsnAt, replayed int64, now time.Time) time.Duration {
	for _, h := range history {
		if h.lsn > replayed {
			return now.Sub(h.at)
		}
	}
	return 0
}

// drop takes r out of the routing.
func (rs *replicaSet) drop(r *replica, why string) {
	r.mu.Lock()
	r.why = why
	r.mu.Unlock()
	if r.up.Swap(false) {
		rs.opt.Log.Warn("replica out of the pull routing", "replica", r.name, "why", why)
	}
	rs.inRoute.WithLabelValues(r.name).Set(0)
}

// join puts r (back) in the routing.
func (rs *replicaSet) join(r *replica) {
	r.mu.Lock()
	r.why = ""
	r.mu.Unlock()
	if !r.up.Swap(true) {
		rs.opt.Log.Info("replica serves pull pages", "replica", r.name)
	}
	rs.inRoute.WithLabelValues(r.name).Set(1)
}

// route counts a page read on target for reason.
func (rs *replicaSet) route(target, reason string) { rs.routes[[2]string{target, reason}].Inc() }

// pick returns the next replica in the routing, nil if there is none.
func (rs *replicaSet) pick() *replica {
	n := uint64(len(rs.list))
	start := rs.next.Add(1)
	for i := range n {
		if r := rs.list[(start+i)%n]; r.up.Load() {
			return r
		}
	}
	return nil
}

// pageRows reads a pull page on a replica (see replicaSet); done is false
// when the caller must read it on the primary, and then no row was handed
// to row.
func (rs *replicaSet) pageRows(ctx context.Context, primary *pgxpool.Pool, t *Tenant, pq *pageQuery, scopes, afters []string, limit int, row func(pageRow) (bool, error)) (done bool, err error) {
	r := rs.pick()
	if r == nil {
		rs.route("primary", routeNoReplica)
		return false, nil
	}
	p := &pgArgs{}
	heads := "SELECT scope_key, last_id FROM " + t.prefix + `"_scope_heads" WHERE scope_key = ANY(` + p.bind(scopes, "text[]") + ")"
	want := make(map[string]string, len(scopes))
	if err := queryPairs(ctx, primary, heads, p.args, want); err != nil {
		return false, nil // the primary answers for itself
	}
	fail := func(err error) (bool, error) {
		// A statement the replica refused (a tenant whose tables it has
		// not replayed yet) says nothing of the replica; a broken
		// connection takes it out of the routing until the next check.
		var pgErr *pgconn.PgError
		if ctx.Err() == nil && !errors.As(err, &pgErr) {
			rs.drop(r, "failed: "+err.Error())
		}
		rs.route("primary", routeFailed)
		return false, nil
	}
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Release()
	// The heads and the page go in one round trip; the page is read only
	// if the heads say it may be.
	b := &pgx.Batch{}
	b.Queue(heads, p.args...)
	b.Queue(pq.sql, scopes, afters, int64(limit))
	br := conn.SendBatch(ctx, b)
	have := make(map[string]string, len(want))
	rows, err := br.Query()
	if err == nil {
		err = readPairs(rows, have)
	}
	if err != nil {
		br.Close()
		return fail(err)
	}
	// page hands the page's rows to row (closing the batch after them, if
	// any) and counts the page as read on the replica for reason.
	page := func(rows pgx.Rows, err error, closing func() error, reason string) (bool, error) {
		read, err := readPgPage(rows, err, pq, row)
		if closing != nil {
			if cerr := closing(); err == nil {
				err = cerr
			}
		}
		if err != nil && !read {
			return fail(err)
		}
		rs.route("replica", reason)
		return true, classify(err)
	}
	if caughtUp(have, want) {
		rows, err := br.Query()
		return page(rows, err, br.Close, routeCaughtUp)
	}
	if err := br.Close(); err != nil {
		return fail(err)
	}
	// Behind: ask for the heads again until they are there, then read.
	start := time.Now()
	deadline := start.Add(rs.opt.Wait)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			rs.route("primary", routeBehind)
			return false, nil
		}
		select {
		case <-ctx.Done():
			return true, classify(ctx.Err())
		case <-time.After(min(wait, 5*time.Millisecond)):
		}
		clear(have)
		if err := queryPairs(ctx, conn, heads, p.args, have); err != nil {
			return fail(err)
		}
		if caughtUp(have, want) {
			rs.waited.Observe(time.Since(start).Seconds())
			rows, err := conn.Conn().Query(ctx, pq.sql, prepared, pq.formats(), scopes, afters, int64(limit))
			return page(rows, err, nil, routeWaited)
		}
	}
}

// caughtUp reports whether have holds every head of want (or a later one).
func caughtUp(have, want map[string]string) bool {
	for scope, id := range want {
		if have[scope] < id {
			return false
		}
	}
	return true
}

// queryPairs reads the (key, value) rows of q into out.
func queryPairs(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, q string, args []any, out map[string]string) error {
	rows, err := db.Query(ctx, q, append([]any{prepared}, args...)...)
	if err != nil {
		return err
	}
	return readPairs(rows, out)
}

// readPairs reads (key, value) rows into out and closes them.
func readPairs(rows pgx.Rows, out map[string]string) error {
	scan := pairInto(out)
	for rows.Next() {
		if err := scan(rows); err != nil {
			rows.Close()
			return err
		}
	}
	rows.Close()
	return rows.Err()
}

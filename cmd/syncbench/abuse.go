package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AbuseConfig is `syncbench abuse`: findings 1–4 of issue 9 (a hostile
// client of one tenant against the shared server), each against a fresh
// `syncplane serve` on each database.
type AbuseConfig struct {
	Bin         string   // syncplane executable; empty: built once
	PostgresURL string   // PostgreSQL server for scratch databases; empty: SQLite only
	DBs         []string // "sqlite", "postgres"
	Findings    []int    // of 1, 2, 3, 4
	// MaxRSS stops a finding's load when the server's RSS passes it (and
	// the server is killed, not stopped gracefully, afterwards); past
	// twice MaxRSS the server is killed at once.
	MaxRSS int64
	// ServerNofile is the open-files limit (soft and hard) set on each
	// server once it serves (prlimit); 0 leaves it as inherited (the Go
	// runtime raises its soft limit to the hard one). The server is also
	// given the connection cap (SYNCPLANE_MAX_CONNS) it would have chosen
	// had it started under that limit: ¾ of it.
	ServerNofile int
	// Settle is how long the server is left alone before an "after" RSS.
	Settle time.Duration
	// Sample is the RSS sampling interval (0: 100 ms).
	Sample time.Duration

	Page  PageAbuseConfig
	Error ErrorAbuseConfig
	Slow  SlowAbuseConfig
	Idle  IdleAbuseConfig
}

// PageAbuseConfig is finding 1: pull pages bounded by count only.
type PageAbuseConfig struct {
	Updates   int // small updates of one board
	NameBytes int // then one update with a name this long
	Limit     int // the pulls' limit
	Pulls     int // pulls from the start, one after the other
}

// ErrorAbuseConfig is finding 2: error details amplified.
type ErrorAbuseConfig struct {
	BodyBytes  int // size of the {"events":[{},{},…]} push body
	Concurrent int // then this many at once
}

// SlowAbuseConfig is finding 3: slow request bodies.
type SlowAbuseConfig struct {
	Conns         int           // connections, each one push request
	ContentLength int64         // each declares this body size
	Interval      time.Duration // and sends one byte of it per interval
	Duration      time.Duration // for this long once all are open
}

// IdleAbuseConfig is finding 4: idle keep-alive connections without a token.
type IdleAbuseConfig struct {
	Conns         int           // connections, each one GET /healthz, then idle
	AnswerTimeout time.Duration // how long a connection waits for its answer before it counts as unanswered
	Hold          time.Duration // how long they idle once open
	PullTimeout   time.Duration // a normal pull's timeout meanwhile
}

// DefaultAbuseConfig is the findings at the scale.
func DefaultAbuseConfig() AbuseConfig {
	return AbuseConfig{
		DBs: []string{"sqlite", "postgres"}, Findings: []int{1, 2, 3, 4},
		MaxRSS: 4 << 30, ServerNofile: 1024, Settle: 2 * time.Second, Sample: 100 * time.Millisecond,
		Page:  PageAbuseConfig{Updates: 499, NameBytes: 900_000, Limit: 500, Pulls: 3},
		Error: ErrorAbuseConfig{BodyBytes: 878 << 10, Concurrent: 8},
		Slow:  SlowAbuseConfig{Conns: 500, ContentLength: 1 << 20, Interval: 5 * time.Second, Duration: 40 * time.Second},
		Idle:  IdleAbuseConfig{Conns: 1000, AnswerTimeout: 5 * time.Second, Hold: 30 * time.Second, PullTimeout: 10 * time.Second},
	}
}

// AbuseReport is what `syncbench abuse` measured.
type AbuseReport struct {
	Config AbuseConfig `json:"config"`
	Runs   []*AbuseRun `json:"runs"` // one per database
	// Stopped is true when any finding stopped at --max-rss.
	Stopped bool `json:"stopped"`
}

// AbuseRun is every finding against one database.
type AbuseRun struct {
	Database string            `json:"database"`
	Page     *PageAbuseReport  `json:"page,omitempty"`
	Error    *ErrorAbuseReport `json:"error,omitempty"`
	Slow     *SlowAbuseReport  `json:"slow,omitempty"`
	Idle     *IdleAbuseReport  `json:"idle,omitempty"`
}

// AbuseServer is the server process of one finding (started fresh for
// it) and its memory: RSS of the process alone (not its plugins), from
// /proc/<pid>/status, before the finding's first request, after its load
// (and Settle), the highest sample and the kernel's VmHWM (the exact
// peak, as the process served nothing else).
type AbuseServer struct {
	PID            int   `json:"pid"`
	Nofile         int   `json:"nofile"` // its open-files limit (soft)
	RSSBeforeBytes int64 `json:"rssBeforeBytes"`
	RSSAfterBytes  int64 `json:"rssAfterBytes"`
	RSSPeakBytes   int64 `json:"rssPeakBytes"` // the highest sample
	HWMBytes       int64 `json:"hwmBytes"`
	Samples        int   `json:"samples"`
	// StoppedAtMaxRSS says when the load was stopped because the RSS
	// passed --max-rss; Killed that it passed twice that.
	StoppedAtMaxRSS string `json:"stoppedAtMaxRss,omitempty"`
	Killed          bool   `json:"killed,omitempty"`
	Err             string `json:"error,omitempty"` // the finding could not run to its end
}

// httpResult is one request's answer as the hostile client saw it.
type httpResult struct {
	Status int     `json:"status"` // 0: no answer (see Error)
	Bytes  int64   `json:"bytes"`  // response body bytes
	Ms     float64 `json:"ms"`     // until the body's last byte
	Error  string  `json:"error,omitempty"`
	Prefix string  `json:"prefix,omitempty"` // the body's first bytes
}

// RunAbuse runs the chosen findings against each database.
func RunAbuse(ctx context.Context, cfg AbuseConfig, progress io.Writer) (*AbuseReport, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Sample <= 0 {
		cfg.Sample = 100 * time.Millisecond
	}
	need := 64
	if slices.Contains(cfg.Findings, 3) {
		need = max(need, cfg.Slow.Conns+64)
	}
	if slices.Contains(cfg.Findings, 4) {
		need = max(need, cfg.Idle.Conns+64)
	}
	limit, err := RaiseFDLimit() // syncbench holds every connection it opens
	if err != nil {
		return nil, fmt.Errorf("open files limit: %w", err)
	}
	if uint64(need) > limit {
		return nil, fmt.Errorf("%d connections need more open files than syncbench's limit %d (ulimit -Hn)", need-64, limit)
	}
	if cfg.Bin == "" {
		tmp, err := os.MkdirTemp("", "syncbench-bin-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(progress, "building ./cmd/syncplane …")
		if cfg.Bin, err = BuildServer(ctx, tmp); err != nil {
			return nil, err
		}
	}
	rep := &AbuseReport{Config: cfg}
	for _, db := range cfg.DBs {
		serve := ServeConfig{Bin: cfg.Bin}
		if cfg.ServerNofile > 0 {
			serve.Env = append(serve.Env, fmt.Sprintf("SYNCPLANE_MAX_CONNS=%d", cfg.ServerNofile*3/4))
		}
		switch db {
		case "sqlite":
		case "postgres":
			if cfg.PostgresURL == "" {
				return nil, errors.New("the postgres run needs a PostgreSQL URL (--postgres)")
			}
			serve.PostgresURL = cfg.PostgresURL
		default:
			return nil, fmt.Errorf("unknown database %q (sqlite, postgres)", db)
		}
		run := &AbuseRun{Database: db}
		rep.Runs = append(rep.Runs, run)
		for _, f := range cfg.Findings {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			fmt.Fprintf(progress, "%s: finding %d …\n", db, f)
			var s *AbuseServer
			switch f {
			case 1:
				run.Page = &PageAbuseReport{}
				s = &run.Page.AbuseServer
			case 2:
				run.Error = &ErrorAbuseReport{}
				s = &run.Error.AbuseServer
			case 3:
				run.Slow = &SlowAbuseReport{}
				s = &run.Slow.AbuseServer
			case 4:
				run.Idle = &IdleAbuseReport{}
				s = &run.Idle.AbuseServer
			}
			err := withAbuseServer(ctx, cfg, serve, s, func(ctx context.Context, a *abuseTarget) error {
				switch f {
				case 1:
					return abusePage(ctx, a, cfg.Page, run.Page, progress)
				case 2:
					return abuseErrors(ctx, a, cfg.Error, run.Error, progress)
				case 3:
					return abuseSlow(ctx, a, cfg.Slow, run.Slow, progress)
				default:
					return abuseIdle(ctx, a, cfg.Idle, run.Idle, progress)
				}
			})
			if err != nil {
				return nil, fmt.Errorf("%s, finding %d: %w", db, f, err)
			}
			if s.StoppedAtMaxRSS != "" {
				rep.Stopped = true
				fmt.Fprintf(progress, "%s: finding %d stopped: %s\n", db, f, s.StoppedAtMaxRSS)
			}
		}
	}
	return rep, nil
}

func (cfg AbuseConfig) check() error {
	if len(cfg.Findings) == 0 {
		return errors.New("no findings chosen (--findings 1,2,3,4)")
	}
	for _, f := range cfg.Findings {
		if f < 1 || f > 4 {
			return fmt.Errorf("finding %d: syncbench abuse measures findings 1–4", f)
		}
	}
	switch {
	case len(cfg.DBs) == 0:
		return errors.New("no databases (--dbs)")
	case cfg.MaxRSS <= 0:
		return errors.New("--max-rss must be positive")
	case cfg.Page.Updates < 0 || cfg.Page.NameBytes < 1 || cfg.Page.Limit < 1 || cfg.Page.Pulls < 1:
		return errors.New("finding 1: --page-updates ≥ 0, --page-name-bytes, --page-limit and --page-pulls ≥ 1")
	case cfg.Error.BodyBytes < 16 || cfg.Error.Concurrent < 1:
		return errors.New("finding 2: --error-body-bytes ≥ 16 and --error-concurrent ≥ 1")
	case cfg.Slow.Conns < 1 || cfg.Slow.ContentLength < 2 || cfg.Slow.Interval <= 0 || cfg.Slow.Duration <= 0:
		return errors.New("finding 3: --slow-conns ≥ 1, --slow-content-length ≥ 2, positive --slow-interval and --slow-duration")
	case cfg.Idle.Conns < 1 || cfg.Idle.AnswerTimeout <= 0 || cfg.Idle.Hold < 0 || cfg.Idle.PullTimeout <= 0:
		return errors.New("finding 4: --idle-conns ≥ 1, positive --idle-answer-timeout and --pull-timeout")
	}
	return nil
}

// abuseTarget is the server a finding plays against.
type abuseTarget struct {
	srv    *Server
	guard  *rssGuard
	settle time.Duration
	runID  string
	sign   TokenSource
}

func (a *abuseTarget) token(ctx context.Context, name string) (subject, token string, err error) {
	subject = "abuse-" + a.runID + "-" + name
	token, err = a.sign(ctx, subject)
	return subject, token, err
}

// pushURL and pullURL are the demo tenant's endpoints.
func (a *abuseTarget) pushURL() string { return a.srv.URL + "/v1/tenants/demo/push" }
func (a *abuseTarget) pullURL() string { return a.srv.URL + "/v1/tenants/demo/pull" }

// withAbuseServer starts a fresh server for one finding, sets its
// open-files limit, samples its RSS with the --max-rss guard while f
// plays against it, and stops it (kills it when the guard tripped: a
// graceful shutdown would wait for the very request that is growing).
func withAbuseServer(ctx context.Context, cfg AbuseConfig, serve ServeConfig, s *AbuseServer,
	f func(context.Context, *abuseTarget) error) error {
	srv, err := StartServer(ctx, serve)
	if err != nil {
		return err
	}
	s.PID = srv.PID
	if cfg.ServerNofile > 0 {
		if err := setNofile(srv.PID, cfg.ServerNofile); err != nil {
			srv.Stop()
			return fmt.Errorf("server open-files limit %d (prlimit): %w", cfg.ServerNofile, err)
		}
	}
	s.Nofile, _ = getNofile(srv.PID)
	guard, gctx := startRSSGuard(ctx, srv, cfg.MaxRSS, cfg.Sample)
	s.RSSBeforeBytes = guard.sample()
	a := &abuseTarget{srv: srv, guard: guard, settle: cfg.Settle, runID: newRunID(),
		sign: SecretTokens(srv.Secret, "", "", 24*time.Hour)}
	ferr := f(gctx, a)
	s.RSSAfterBytes = guard.sample()
	guard.finish()
	_, s.HWMBytes, _ = procStatus(srv.PID)
	s.RSSPeakBytes, s.Samples, s.StoppedAtMaxRSS, s.Killed = guard.peak, guard.samples, guard.tripped, guard.killed
	if s.StoppedAtMaxRSS != "" || ctx.Err() != nil {
		srv.kill()
	}
	srv.Stop()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case ferr != nil && s.StoppedAtMaxRSS == "":
		return fmt.Errorf("%w\nserver log:\n%s", ferr, srv.Logs())
	case ferr != nil && !errors.Is(ferr, context.Canceled):
		s.Err = ferr.Error() // after the guard cancelled the load
	}
	return nil
}

// kill ends the server at once (Stop still waits for it and cleans up).
func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
}

// rssGuard samples a server's RSS; past the limit it cancels the
// finding's load, past twice the limit it kills the server.
type rssGuard struct {
	srv    *Server
	limit  int64
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	phase   string
	peak    int64
	samples int
	tripped string
	killed  bool
}

func startRSSGuard(ctx context.Context, srv *Server, limit int64, interval time.Duration) (*rssGuard, context.Context) {
	gctx, cancel := context.WithCancel(ctx)
	g := &rssGuard{srv: srv, limit: limit, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
				g.sample()
			}
		}
	}()
	return g, gctx
}

// setPhase names what the load is doing, for the stop message.
func (g *rssGuard) setPhase(p string) {
	g.mu.Lock()
	g.phase = p
	g.mu.Unlock()
}

// sample reads the RSS now (0 when the process is gone) and enforces the
// limit.
func (g *rssGuard) sample() int64 {
	rss, _, err := procStatus(g.srv.PID)
	if err != nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.samples++
	g.peak = max(g.peak, rss)
	if rss > g.limit && g.tripped == "" {
		g.tripped = fmt.Sprintf("server RSS %.0f MiB passed --max-rss %.0f MiB during %s", mib(rss), mib(g.limit), cmpOr(g.phase, "the finding"))
		g.cancel()
	}
	if rss > 2*g.limit && !g.killed {
		g.killed = true
		g.tripped += fmt.Sprintf("; killed at %.0f MiB", mib(rss))
		g.srv.kill()
	}
	return rss
}

// stopped is whether the guard cancelled the load.
func (g *rssGuard) stopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tripped != ""
}

func (g *rssGuard) finish() {
	close(g.stop)
	<-g.done
	g.cancel()
}

// settle waits a.settle (or until the guard stops the load).
func (a *abuseTarget) wait(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// countFDs is how many descriptors pid holds (-1 when unknown).
func countFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// post sends body and reads the whole answer, counting its bytes and
// keeping its first keep bytes.
func post(ctx context.Context, hc *http.Client, url, token string, body []byte, keep int) (httpResult, []byte) {
	res, kept, _ := postCounting(ctx, hc, url, token, body, keep, nil)
	return res, kept
}

// postCounting is post that also counts the occurrences of pattern in the
// answer's body.
func postCounting(ctx context.Context, hc *http.Client, url, token string, body []byte, keep int, pattern []byte) (httpResult, []byte, int) {
	var res httpResult
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		res.Error = err.Error()
		return res, nil, 0
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		res.Error = err.Error()
		res.Ms = float64(time.Since(start).Microseconds()) / 1000
		return res, nil, 0
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	w := &keepWriter{keep: keep, count: pattern}
	res.Bytes, err = io.CopyBuffer(w, resp.Body, make([]byte, 256<<10))
	if err != nil {
		res.Error = "reading the answer: " + err.Error()
	}
	res.Prefix = string(w.buf[:min(len(w.buf), 160)])
	res.Ms = float64(time.Since(start).Microseconds()) / 1000
	return res, w.buf, w.n
}

// keepWriter discards what it is given but its first keep bytes, and
// counts the occurrences of count in it (across writes).
type keepWriter struct {
	keep  int
	buf   []byte
	count []byte
	n     int
	tail  []byte // the last len(count)-1 bytes written
}

func (w *keepWriter) Write(p []byte) (int, error) {
	if n := w.keep - len(w.buf); n > 0 {
		w.buf = append(w.buf, p[:min(n, len(p))]...)
	}
	if k := len(w.count); k > 0 {
		// Occurrences that start in the tail and end in p, then those in p.
		head := p[:min(len(p), k-1)]
		joined := append(append([]byte(nil), w.tail...), head...)
		w.n += bytes.Count(joined, w.count) + bytes.Count(p, w.count)
		if len(p) >= k-1 {
			w.tail = append(w.tail[:0], p[len(p)-(k-1):]...)
		} else {
			w.tail = append(w.tail, p...)
			w.tail = w.tail[max(0, len(w.tail)-(k-1)):]
		}
	}
	return len(p), nil
}

// abuseClient is an HTTP client of its own (its own connections).
func abuseClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: timeout}
}

// statusCounts writes statuses as "200×7", "400×8, 0×1" (0: no answer).
func statusCounts(rs []httpResult) string {
	counts := map[int]int{}
	for _, r := range rs {
		counts[r.Status]++
	}
	return countsString(counts)
}

func countsString(counts map[int]int) string {
	if len(counts) == 0 {
		return "-"
	}
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(counts)) {
		name := strconv.Itoa(st)
		if st == 0 {
			name = "none"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, counts[st]))
	}
	return strings.Join(parts, ", ")
}

// byteSize is a flag of bytes: 4294967296, 4GiB, 512MiB, 878KiB.
type byteSize int64

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want bytes, optionally with KiB, MiB or GiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func runAbuse(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("syncbench abuse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := DefaultAbuseConfig()
	pg := os.Getenv("SYNCPLANE_BENCH_DATABASE_URL")
	if pg == "" {
		pg = defaultBenchPostgres
	}
	fs.StringVar(&cfg.PostgresURL, "postgres", pg, "PostgreSQL server for the postgres runs (scratch databases; env SYNCPLANE_BENCH_DATABASE_URL); empty: SQLite only")
	fs.StringVar(&cfg.Bin, "server-bin", "", "syncplane executable (default: go build ./cmd/syncplane into a temporary directory)")
	dbs := fs.String("dbs", "sqlite,postgres", "the servers' databases, in order")
	findings := fs.String("findings", "1,2,3,4", "which findings of issue 9 to play, in order")
	maxRSS := byteSize(cfg.MaxRSS)
	fs.Var(&maxRSS, "max-rss", "stop a finding when the server's RSS passes this (bytes, or with KiB, MiB, GiB; the server is killed past twice this)")
	fs.IntVar(&cfg.ServerNofile, "server-nofile", cfg.ServerNofile, "open-files limit set on each server (prlimit; 0: inherited, which Go raises to ulimit -Hn)")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "idle time before an \"after\" RSS")
	fs.IntVar(&cfg.Page.Updates, "page-updates", cfg.Page.Updates, "finding 1: small updates of one board")
	fs.IntVar(&cfg.Page.NameBytes, "page-name-bytes", cfg.Page.NameBytes, "finding 1: then one update with a name of this many bytes (the push must stay under maxBodyBytes, 1 MiB)")
	fs.IntVar(&cfg.Page.Limit, "page-limit", cfg.Page.Limit, "finding 1: the pulls' limit")
	fs.IntVar(&cfg.Page.Pulls, "page-pulls", cfg.Page.Pulls, "finding 1: pulls from the start")
	errBody := byteSize(cfg.Error.BodyBytes)
	fs.Var(&errBody, "error-body-bytes", "finding 2: size of the {\"events\":[{},{},…]} push body")
	fs.IntVar(&cfg.Error.Concurrent, "error-concurrent", cfg.Error.Concurrent, "finding 2: then this many at once")
	fs.IntVar(&cfg.Slow.Conns, "slow-conns", cfg.Slow.Conns, "finding 3: connections with a slow push body")
	slowCL := byteSize(cfg.Slow.ContentLength)
	fs.Var(&slowCL, "slow-content-length", "finding 3: the Content-Length each declares")
	fs.DurationVar(&cfg.Slow.Interval, "slow-interval", cfg.Slow.Interval, "finding 3: one body byte per interval")
	fs.DurationVar(&cfg.Slow.Duration, "slow-duration", cfg.Slow.Duration, "finding 3: how long, once all are open")
	fs.IntVar(&cfg.Idle.Conns, "idle-conns", cfg.Idle.Conns, "finding 4: idle keep-alive connections without a token")
	fs.DurationVar(&cfg.Idle.Hold, "idle-hold", cfg.Idle.Hold, "finding 4: how long they idle once open")
	fs.DurationVar(&cfg.Idle.AnswerTimeout, "idle-answer-timeout", cfg.Idle.AnswerTimeout, "finding 4: a connection's wait for its GET /healthz answer before it counts as unanswered")
	fs.DurationVar(&cfg.Idle.PullTimeout, "pull-timeout", cfg.Idle.PullTimeout, "finding 4: a normal pull's timeout while they idle")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	cfg.MaxRSS, cfg.Error.BodyBytes, cfg.Slow.ContentLength = int64(maxRSS), int(errBody), int64(slowCL)
	cfg.DBs, cfg.Findings = nil, nil
	for _, d := range strings.Split(*dbs, ",") {
		if d = strings.TrimSpace(d); d != "" && (d != "postgres" || cfg.PostgresURL != "") {
			cfg.DBs = append(cfg.DBs, d)
		}
	}
	for _, f := range strings.Split(*findings, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintf(stderr, "syncbench abuse: --findings %q: want numbers 1–4, comma-separated\n", *findings)
			return 2
		}
		cfg.Findings = append(cfg.Findings, n)
	}
	rep, err := RunAbuse(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "syncbench abuse:", err)
		return 2
	}
	return finish(stdout, *asJSON, rep, printAbuse, true)
}

// printAbuse prints the report as one table, a column per database.
func printAbuse(w io.Writer, r *AbuseReport) {
	c := r.Config
	fmt.Fprintf(w, "syncbench abuse: findings %v of issue 9, a fresh syncplane serve per finding and database; server open-files limit %s, --max-rss %.0f MiB\n",
		c.Findings, nofileName(c.ServerNofile), mib(c.MaxRSS))
	var t table
	row := func(label string, cell func(run *AbuseRun) string) {
		cells := []string{label}
		for _, run := range r.Runs {
			cells = append(cells, cell(run))
		}
		t = append(t, cells)
	}
	head := func(label string) { t = append(t, []string{label}) }
	row("", func(run *AbuseRun) string { return run.Database })
	rss := func(b ...int64) string {
		var parts []string
		for _, v := range b {
			parts = append(parts, fmt.Sprintf("%.0f", mib(v)))
		}
		return strings.Join(parts, " / ")
	}
	res := func(h httpResult) string {
		if h.Status == 0 {
			return fmt.Sprintf("no answer after %.1f s (%s)", h.Ms/1000, shortError(h.Error))
		}
		return fmt.Sprintf("%d · %s · %s", h.Status, sizeName(h.Bytes), msName(h.Ms))
	}
	if p := r.Runs[0].Page; p != nil {
		head(fmt.Sprintf("1 pull pages: %d small updates of a board + one %s name; pulls with limit %d", p.Updates, sizeName(int64(p.NameBytes)), p.Limit))
		row("  pushes: statuses · uploaded · event errors", func(run *AbuseRun) string {
			p := run.Page
			return fmt.Sprintf("%s · %s · %d", statusCounts(p.Pushes), sizeName(p.UploadBytes), p.EventErrors)
		})
		for k := range c.Page.Pulls {
			row(fmt.Sprintf("  pull %d: status · response · time · entries", k+1), func(run *AbuseRun) string {
				p := run.Page
				if k >= len(p.Pulls) {
					return "not sent"
				}
				if p.Pulls[k].Status == 0 {
					return res(p.Pulls[k])
				}
				return res(p.Pulls[k]) + fmt.Sprintf(" · %d", p.PullEntries[k])
			})
		}
		row("  RSS MiB before / after pushes / after each pull", func(run *AbuseRun) string {
			p := run.Page
			return rss(append([]int64{p.RSSBeforeBytes, p.RSSAfterPushesBytes}, p.RSSAfterPullBytes...)...)
		})
		row("  RSS MiB peak (VmHWM) / after", func(run *AbuseRun) string {
			return rss(run.Page.HWMBytes, run.Page.RSSAfterBytes) + stoppedMark(&run.Page.AbuseServer)
		})
	}
	if e := r.Runs[0].Error; e != nil {
		head(fmt.Sprintf("2 error details: push of %s, {\"events\":[{},{},…]} (%d elements)", sizeName(int64(e.BodyBytes)), e.Elements))
		row("  one: status · response · time", func(run *AbuseRun) string { return res(run.Error.One) })
		row(fmt.Sprintf("  %d at once: statuses · response (largest) · slowest", c.Error.Concurrent), func(run *AbuseRun) string {
			e := run.Error
			var big int64
			var slow float64
			for _, m := range e.Many {
				big, slow = max(big, m.Bytes), max(slow, m.Ms)
			}
			return fmt.Sprintf("%s · %s · %s", statusCounts(e.Many), sizeName(big), msName(slow))
		})
		row("  RSS MiB before / after one / after all / settled", func(run *AbuseRun) string {
			e := run.Error
			return rss(e.RSSBeforeBytes, e.RSSAfterOneBytes, e.RSSAfterManyBytes, e.RSSAfterBytes)
		})
		row("  RSS MiB peak (VmHWM)", func(run *AbuseRun) string {
			return rss(run.Error.HWMBytes) + stoppedMark(&run.Error.AbuseServer)
		})
	}
	if s := r.Runs[0].Slow; s != nil {
		head(fmt.Sprintf("3 slow bodies: %d pushes declaring %s, one byte per %s, for %s", s.Conns, sizeName(s.ContentLength),
			c.Slow.Interval, c.Slow.Duration))
		row("  opened · ended by the server (how, first after)", func(run *AbuseRun) string {
			s := run.Slow
			out := fmt.Sprintf("%d · %d", s.Opened, s.Ended)
			if s.Ended > 0 {
				var parts []string
				for _, k := range slices.Sorted(maps.Keys(s.EndedStatuses)) {
					parts = append(parts, fmt.Sprintf("%s×%d", k, s.EndedStatuses[k]))
				}
				out += fmt.Sprintf(" (%s; %.1f s)", strings.Join(parts, ", "), s.FirstEndSeconds)
			}
			if s.DialErrors > 0 {
				out += fmt.Sprintf(" · %d not connected", s.DialErrors)
			}
			return out
		})
		row("  RSS MiB before / held / peak (VmHWM) / released", func(run *AbuseRun) string {
			s := run.Slow
			return rss(s.RSSBeforeBytes, s.RSSHeld, s.HWMBytes, s.RSSAfterBytes) + stoppedMark(&s.AbuseServer)
		})
		row("  server descriptors before / held / released", func(run *AbuseRun) string {
			s := run.Slow
			return fmt.Sprintf("%d / %d / %d", s.FDsBefore, s.FDsHeld, s.FDsReleased)
		})
	}
	if i := r.Runs[0].Idle; i != nil {
		head(fmt.Sprintf("4 idle keep-alive: %d connections, GET /healthz without a token, then idle for %s", i.Conns, c.Idle.Hold))
		row("  answered (statuses) · unanswered · not connected", func(run *AbuseRun) string {
			i := run.Idle
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(i.AnswerStatuses)) {
				parts = append(parts, fmt.Sprintf("%s×%d", k, i.AnswerStatuses[k]))
			}
			return fmt.Sprintf("%d (%s) · %d · %d", i.Answered, strings.Join(parts, ", "), i.Unanswered, i.DialErrors)
		})
		row("  closed by the server during the hold", func(run *AbuseRun) string { return fmt.Sprint(run.Idle.ClosedByServer) })
		row("  server descriptors (limit) before / open / end / released", func(run *AbuseRun) string {
			i := run.Idle
			return fmt.Sprintf("(%s) %d / %d / %d / %d", nofileName(i.Nofile), i.FDsBefore, i.FDsOpen, i.FDsEnd, i.FDsReleased)
		})
		row("  a normal pull meanwhile", func(run *AbuseRun) string { return res(run.Idle.PullMeanwhile) })
		row("  at the end of the hold", func(run *AbuseRun) string { return res(run.Idle.PullEnd) })
		row("  after release", func(run *AbuseRun) string { return res(run.Idle.PullReleased) })
		row("  RSS MiB before / peak (VmHWM) / after", func(run *AbuseRun) string {
			i := run.Idle
			return rss(i.RSSBeforeBytes, i.HWMBytes, i.RSSAfterBytes) + stoppedMark(&i.AbuseServer)
		})
	}
	printSections(w, t)
	for _, run := range r.Runs {
		for _, f := range run.findings() {
			if f.s.StoppedAtMaxRSS != "" {
				fmt.Fprintf(w, "* %s, finding %d stopped: %s\n", run.Database, f.n, f.s.StoppedAtMaxRSS)
			}
			if f.s.Err != "" {
				fmt.Fprintf(w, "  %s, finding %d: %s\n", run.Database, f.n, f.s.Err)
			}
		}
	}
	fmt.Fprintln(w, "(RSS of the server process alone, from /proc; response sizes as received; \"none\": no answer)")
}

// printSections prints t as table.print does, but a row of one cell (a
// section's title) is left out of the columns' widths.
func printSections(w io.Writer, t table) {
	var cells table
	for _, r := range t {
		if len(r) > 1 {
			cells = append(cells, r)
		}
	}
	var b strings.Builder
	cells.print(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for _, r := range t {
		if len(r) == 1 {
			fmt.Fprintln(w, r[0])
			continue
		}
		fmt.Fprintln(w, lines[0])
		lines = lines[1:]
	}
}

// findings are the run's findings that ran, with their servers.
func (run *AbuseRun) findings() []struct {
	n int
	s *AbuseServer
} {
	var out []struct {
		n int
		s *AbuseServer
	}
	add := func(n int, s *AbuseServer) {
		out = append(out, struct {
			n int
			s *AbuseServer
		}{n, s})
	}
	if run.Page != nil {
		add(1, &run.Page.AbuseServer)
	}
	if run.Error != nil {
		add(2, &run.Error.AbuseServer)
	}
	if run.Slow != nil {
		add(3, &run.Slow.AbuseServer)
	}
	if run.Idle != nil {
		add(4, &run.Idle.AbuseServer)
	}
	return out
}

// shortError names why a request got no answer.
func shortError(e string) string {
	switch {
	case strings.Contains(e, "context canceled"):
		return "stopped"
	case strings.Contains(e, "Client.Timeout") || strings.Contains(e, "deadline exceeded"):
		return "timeout"
	case e == "":
		return "no error"
	}
	if i := strings.LastIndex(e, ": "); i >= 0 {
		return e[i+2:]
	}
	return e
}

func stoppedMark(s *AbuseServer) string {
	if s.StoppedAtMaxRSS != "" {
		return " *"
	}
	return ""
}

func nofileName(n int) string {
	if n <= 0 {
		return "inherited"
	}
	return strconv.Itoa(n)
}

// sizeName is bytes, KiB, MiB or GiB with one decimal.
func sizeName(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func msName(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SSEIdleConfig is an idle event-stream measurement.
type SSEIdleConfig struct {
	Conns    int         // idle GET /v1/tenants/demo/events streams
	Subjects int         // distinct token subjects, used round-robin
	Serve    ServeConfig // the server syncbench starts
	// Settle is how long the streams idle after the last one is
	// established before the server's RSS is read (0: 1 s).
	Settle time.Duration
	// Dials is how many streams are being opened at once (0: 200).
	Dials int
}

// SSEIdleReport is the server's cost of idle event streams, and whether a
// commit pokes exactly the streams of its scope.
type SSEIdleReport struct {
	Database         string  `json:"database"`
	Conns            int     `json:"conns"`
	Subjects         int     `json:"subjects"`
	Established      int     `json:"established"`
	Failed           int     `json:"failed"`
	FirstError       string  `json:"firstError,omitempty"`
	EstablishSeconds float64 `json:"establishSeconds"`

	// Server process (not its plugins): RSS before the first stream,
	// after all are established and have idled for Settle, and the peak
	// sampled in between (every ~100 ms); VmHWM at the end.
	RSSBeforeBytes  int64   `json:"rssBeforeBytes"`
	RSSAfterBytes   int64   `json:"rssAfterBytes"`
	RSSPeakBytes    int64   `json:"rssPeakBytes"`
	HWMBytes        int64   `json:"hwmBytes"`
	RSSPerConnBytes float64 `json:"rssPerConnBytes"`
	// From the server's /metrics (-1 when not exposed).
	GoroutinesBefore     int     `json:"goroutinesBefore"`
	GoroutinesAfter      int     `json:"goroutinesAfter"`
	GoroutinesPerConn    float64 `json:"goroutinesPerConn"`
	GoroutinesAfterClose int     `json:"goroutinesAfterClose"`
	HeapInuseBefore      int64   `json:"heapInuseBytesBefore"`
	HeapInuseAfter       int64   `json:"heapInuseBytesAfter"`
	// syncbench's own RSS growth per stream (the client side).
	ClientRSSPerConnBytes float64 `json:"clientRssPerConnBytes"`

	// One event pushed into one scope: its subscribers must each get a
	// poke for it; no other stream may get one.
	PokeScope       string  `json:"pokeScope"`
	PokeSubscribers int     `json:"pokeSubscribers"`
	PokeReceived    int     `json:"pokeReceived"`
	PokeUnexpected  int     `json:"pokeUnexpected"`
	PokeAllMs       float64 `json:"pokeAllMs"` // from sending the push to the last subscriber's poke
	OK              bool    `json:"ok"`
}

// sseStream is one idle event stream.
type sseStream struct {
	subject     string
	established atomic.Bool
	pokes       atomic.Int32 // pokes for the expected scope
	others      atomic.Int32 // pokes for any other scope
	poked       chan struct{}
	once        sync.Once

	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

// setConn keeps the stream's connection, or closes it when the stream was
// closed meanwhile.
func (s *sseStream) setConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.conn = c
	return true
}

func (s *sseStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// RaiseFDLimit raises the soft limit of open files to the hard limit and
// returns it; children started afterwards inherit it.
func RaiseFDLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}

// RunSSEIdle starts a server, opens cfg.Conns idle event streams to it,
// measures its memory and checks one poke.
func RunSSEIdle(ctx context.Context, cfg SSEIdleConfig, progress io.Writer) (*SSEIdleReport, error) {
	if cfg.Conns < 1 || cfg.Subjects < 1 {
		return nil, errors.New("--conns and --subjects must be at least 1")
	}
	cfg.Subjects = min(cfg.Subjects, cfg.Conns)
	if cfg.Settle <= 0 {
		cfg.Settle = time.Second
	}
	if cfg.Dials <= 0 {
		cfg.Dials = 200
	}
	limit, err := RaiseFDLimit() // before the server starts, so that it inherits it
	if err != nil {
		return nil, fmt.Errorf("open files limit: %w", err)
	}
	if uint64(cfg.Conns)+64 > limit {
		return nil, fmt.Errorf("%d streams need more open files than the limit %d (ulimit -n)", cfg.Conns, limit)
	}
	srv, err := StartServer(ctx, cfg.Serve)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	u, err := url.Parse(srv.URL)
	if err != nil {
		return nil, err
	}
	rep := &SSEIdleReport{Database: srv.DB, Conns: cfg.Conns, Subjects: cfg.Subjects,
		GoroutinesBefore: -1, GoroutinesAfter: -1, GoroutinesAfterClose: -1}
	runID := newRunID()
	subjects := make([]string, cfg.Subjects)
	tokens := map[string]string{}
	sign := SecretTokens(srv.Secret, "", "", 24*time.Hour)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("sse-%s-s%d", runID, i)
		if tokens[subjects[i]], err = sign(ctx, subjects[i]); err != nil {
			return nil, err
		}
	}
	metricsClient := &http.Client{Timeout: 30 * time.Second}
	before, _ := scrape(ctx, metricsClient, srv.URL)
	rep.GoroutinesBefore, rep.HeapInuseBefore = int(before["go_goroutines"]), int64(before["go_memstats_heap_inuse_bytes"])
	clientBefore, _, _ := procStatus(os.Getpid())
	rss := sampleRSS(srv.PID, 100*time.Millisecond)
	rep.RSSBeforeBytes = rss.current()

	// Open the streams, Dials at a time; each is established once the
	// server's ": connected" comment has arrived.
	fmt.Fprintf(progress, "opening %d event streams to %s (%s) …\n", cfg.Conns, srv.URL, srv.DB)
	streams := make([]*sseStream, cfg.Conns)
	var (
		mu       sync.Mutex
		firstErr error
		failed   int
		wg       sync.WaitGroup // one per stream, done when established or failed
		readers  sync.WaitGroup // the streams' reading goroutines
	)
	defer func() {
		for _, s := range streams {
			if s != nil {
				s.close()
			}
		}
		readers.Wait()
	}()
	sem := make(chan struct{}, cfg.Dials)
	openCtx, cancelOpen := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelOpen()
	start := time.Now()
	for i := range streams {
		s := &sseStream{subject: subjects[i%len(subjects)], poked: make(chan struct{})}
		streams[i] = s
		select {
		case sem <- struct{}{}:
		case <-openCtx.Done():
			return nil, fmt.Errorf("opening streams: %w", openCtx.Err())
		}
		wg.Add(1)
		readers.Add(1)
		go func() {
			defer readers.Done()
			err := s.run(openCtx, u.Host, "/v1/tenants/demo/events", tokens[s.subject], func() {
				s.established.Store(true)
				<-sem
				wg.Done()
			})
			if !s.established.Load() {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				<-sem
				wg.Done()
			}
		}()
	}
	wg.Wait()
	rep.EstablishSeconds = time.Since(start).Seconds()
	rep.Failed = failed
	rep.Established = cfg.Conns - failed
	if firstErr != nil {
		rep.FirstError = firstErr.Error()
	}
	fmt.Fprintf(progress, "%d established in %.1fs (%d failed); idling %s …\n", rep.Established, rep.EstablishSeconds, failed, cfg.Settle)
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after, _ := scrape(ctx, metricsClient, srv.URL)
	rep.GoroutinesAfter, rep.HeapInuseAfter = int(after["go_goroutines"]), int64(after["go_memstats_heap_inuse_bytes"])
	server := rss.finish(srv.DB)
	rep.RSSAfterBytes, rep.RSSPeakBytes, rep.HWMBytes = server.RSSEndBytes, server.RSSPeakBytes, server.HWMBytes
	if rep.Established > 0 {
		n := float64(rep.Established)
		rep.RSSPerConnBytes = float64(rep.RSSAfterBytes-rep.RSSBeforeBytes) / n
		if rep.GoroutinesBefore >= 0 && rep.GoroutinesAfter >= 0 {
			rep.GoroutinesPerConn = float64(rep.GoroutinesAfter-rep.GoroutinesBefore) / n
		}
		if clientAfter, _, err := procStatus(os.Getpid()); err == nil && clientBefore > 0 {
			rep.ClientRSSPerConnBytes = float64(clientAfter-clientBefore) / n
		}
	}

	// One commit into the first subject's scope.
	rep.PokeScope = subjects[0]
	var subscribers []*sseStream
	for _, s := range streams {
		if s.subject == rep.PokeScope && s.established.Load() {
			subscribers = append(subscribers, s)
		}
	}
	rep.PokeSubscribers = len(subscribers)
	fmt.Fprintf(progress, "pushing one event into scope %s (%d subscribers) …\n", rep.PokeScope, len(subscribers))
	pushed := time.Now()
	if err := pushPokeEvent(ctx, srv.URL, tokens[rep.PokeScope], rep.PokeScope); err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
wait:
	for _, s := range subscribers {
		select {
		case <-s.poked:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rep.PokeAllMs = float64(time.Since(pushed).Microseconds()) / 1000
	// A poke to a wrong stream would come at about the same time as the
	// right ones: give it a moment to show.
	time.Sleep(300 * time.Millisecond)
	for _, s := range streams {
		if s.subject == rep.PokeScope && s.pokes.Load() > 0 {
			rep.PokeReceived++
		}
		rep.PokeUnexpected += int(s.others.Load())
		if s.subject != rep.PokeScope {
			rep.PokeUnexpected += int(s.pokes.Load())
		}
	}

	// Close every stream; the server's goroutines should go back down.
	for _, s := range streams {
		s.close()
	}
	readers.Wait()
	if rep.GoroutinesBefore >= 0 {
		for range 100 {
			m, err := scrape(ctx, metricsClient, srv.URL)
			if err != nil {
				break
			}
			rep.GoroutinesAfterClose = int(m["go_goroutines"])
			if rep.GoroutinesAfterClose <= rep.GoroutinesBefore+10 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	rep.OK = rep.Failed == 0 && rep.Established == cfg.Conns && rep.PokeReceived == rep.PokeSubscribers &&
		rep.PokeUnexpected == 0
	return rep, nil
}

// run opens the stream and reads it until the connection ends, calling
// established once the server's first comment has arrived.
func (s *sseStream) run(ctx context.Context, host, path, token string, established func()) error {
	d := net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	if !s.setConn(conn) {
		return net.ErrClosed
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // until established
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
		path, host, token); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	body := bufio.NewReaderSize(resp.Body, 256)
	event := ""
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == ": connected":
			_ = conn.SetDeadline(time.Time{})
			established()
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "poke":
			var p poke
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &p) == nil && p.ScopeKey == s.subject {
				s.pokes.Add(1)
				s.once.Do(func() { close(s.poked) })
			} else {
				s.others.Add(1)
			}
		case line == "":
			event = ""
		}
	}
}

// poke is the data of a "poke" event.
type poke struct {
	ScopeKey    string `json:"scopeKey"`
	ChangelogID string `json:"changelogId"`
}

// pushPokeEvent creates the scope's User.
func pushPokeEvent(ctx context.Context, base, token, scope string) error {
	ts := time.Now().UTC().Format(isoMillis)
	ev := Event{ID: scope + "-poke", EntityType: "User", Operation: "create", Payload: map[string]any{
		"id": scope, "name": "User " + scope, "email": scope + "@syncbench.example",
		"emailVerified": false, "image": nil, "createdAt": ts, "updatedAt": ts, "isAnonymous": nil,
	}}
	v := &Verification{}
	if err := newClient(base, "demo", 1).push(ctx, token, []Event{ev}, Acks{}, v); err != nil {
		return err
	}
	if !v.OK() {
		return errors.New(v.summary())
	}
	return nil
}

// scrape reads the server's Prometheus metrics without labels.
func scrape(ctx context.Context, c *http.Client, base string) (map[string]float64, error) {
	out := map[string]float64{"go_goroutines": -1, "go_memstats_heap_inuse_bytes": -1}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return out, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

func runSSEIdle(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("syncbench sse-idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg SSEIdleConfig
	fs.IntVar(&cfg.Conns, "conns", 1000, "idle event streams to open")
	fs.IntVar(&cfg.Subjects, "subjects", 100, "distinct token subjects (one scope each), used round-robin")
	fs.StringVar(&cfg.Serve.Bin, "server-bin", "", "syncplane executable (default: go build ./cmd/syncplane into a temporary directory)")
	fs.StringVar(&cfg.Serve.PostgresURL, "postgres", "", "PostgreSQL URL: serve on a scratch database created there (default: embedded SQLite)")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "idle time after the last stream is established, before measuring")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	rep, err := RunSSEIdle(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "syncbench sse-idle:", err)
		return 2
	}
	return finish(stdout, *asJSON, rep, printSSEIdle, rep.OK)
}

func printSSEIdle(w io.Writer, r *SSEIdleReport) {
	fmt.Fprintf(w, "syncbench sse-idle: %d idle event streams (%d subjects) to syncplane serve (%s)\n", r.Conns, r.Subjects, r.Database)
	fmt.Fprintf(w, "  established      %d of %d in %.1fs (%d failed)\n", r.Established, r.Conns, r.EstablishSeconds, r.Failed)
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error      %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "  server RSS       before %.1f MiB, after %.1f MiB (peak %.1f, VmHWM %.1f): %.1f KiB per stream\n",
		mib(r.RSSBeforeBytes), mib(r.RSSAfterBytes), mib(r.RSSPeakBytes), mib(r.HWMBytes), r.RSSPerConnBytes/1024)
	if r.GoroutinesBefore >= 0 {
		fmt.Fprintf(w, "  goroutines       before %d, after %d: %.2f per stream; %d after closing them\n",
			r.GoroutinesBefore, r.GoroutinesAfter, r.GoroutinesPerConn, r.GoroutinesAfterClose)
		fmt.Fprintf(w, "  heap in use      before %.1f MiB, after %.1f MiB: %.1f KiB per stream\n",
			mib(r.HeapInuseBefore), mib(r.HeapInuseAfter), float64(r.HeapInuseAfter-r.HeapInuseBefore)/max(1, float64(r.Established))/1024)
	}
	fmt.Fprintf(w, "  client RSS       %.1f KiB per stream (syncbench itself)\n", r.ClientRSSPerConnBytes/1024)
	fmt.Fprintf(w, "  poke             one event into scope %s: %d of %d subscribers poked (all within %.1f ms of the push), %d unexpected pokes\n",
		r.PokeScope, r.PokeReceived, r.PokeSubscribers, r.PokeAllMs, r.PokeUnexpected)
	if r.OK {
		fmt.Fprintln(w, "ok: every stream established, the scope's subscribers poked, no other stream")
	} else {
		fmt.Fprintln(w, "FAILED")
	}
}

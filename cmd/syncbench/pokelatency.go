package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// listenApplicationName is the application_name of a syncplane server's
// listening connection (core/store.ListenApplicationName).
const listenApplicationName = "syncplane-listen"

// PokeLatencyConfig is a commit-to-poke latency measurement across two
// servers on one PostgreSQL database.
type PokeLatencyConfig struct {
	// PostgresURL is the PostgreSQL server on which the scratch database
	// syncbench_<random> is created (and dropped afterwards).
	PostgresURL string
	// Pushes is how many events are pushed, one per request, one after
	// the other: the scope's User, then Boards of it.
	Pushes int
	// Bin is the syncplane executable; empty: built from this module.
	Bin string
	// PokeTimeout is how long after its acknowledgment a push's poke may
	// take before it counts as missing (0: 10 s).
	PokeTimeout time.Duration
}

// LatencyStats are nearest-rank percentiles, in milliseconds.
type LatencyStats struct {
	P50Ms float64 `json:"p50Ms"`
	P90Ms float64 `json:"p90Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
}

// PokeLatencyReport is how long a commit through server B takes to poke
// an event stream on server A.
type PokeLatencyReport struct {
	Database   string `json:"database"` // the scratch database both servers used
	ServerAPID int    `json:"serverAPid"`
	ServerBPID int    `json:"serverBPid"`
	Scope      string `json:"scope"`  // the stream's subject, the pushes' scope
	Pushes     int    `json:"pushes"` // pushes sent
	Acked      int    `json:"acked"`  // acknowledged with a changelog id
	Poked      int    `json:"poked"`  // acknowledged, and poked with that changelog id in time
	Missing    int    `json:"missing"`
	// Pokes of a push that came after it had been given up as missing;
	// second pokes of a changelog id; pokes of another scope or of a
	// changelog id no push got.
	Late       int `json:"late"`
	Duplicate  int `json:"duplicate"`
	Unexpected int `json:"unexpected"`
	// Of the pushes poked: from sending the push to its poke on A's
	// stream, from sending it to B's answer, and from that answer to the
	// poke. A poke that arrived before the answer counts as 0 in AckToPoke,
	// and in PokeBeforeAck.
	SentToPoke    LatencyStats `json:"sentToPoke"`
	SentToAck     LatencyStats `json:"sentToAck"`
	AckToPoke     LatencyStats `json:"ackToPoke"`
	PokeBeforeAck int          `json:"pokeBeforeAck"`
	Seconds       float64      `json:"seconds"`            // the pushes, one after the other
	Failures      []string     `json:"failures,omitempty"` // the first few
	OK            bool         `json:"ok"`
}

func (r *PokeLatencyReport) failf(format string, args ...any) {
	if len(r.Failures) < 10 {
		r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	}
}

// pokeEvent is one poke read from a stream, and when it was read.
type pokeEvent struct {
	Scope, ChangelogID string
	At                 time.Time
}

// pushTiming is one push: sent, answered, poked (zero: not yet).
type pushTiming struct {
	ChangelogID     string
	Sent, Ack, Poke time.Time
	late            bool // poked after being given up
}

// pokeMatcher pairs a stream's pokes with the pushes into its scope.
type pokeMatcher struct {
	scope       string
	pushes      []pushTiming
	byID        map[string]int // changelog id → push
	missing     []bool         // given up, not poked (yet)
	dup, unexpd int
}

func newPokeMatcher(scope string, n int) *pokeMatcher {
	return &pokeMatcher{scope: scope, pushes: make([]pushTiming, n), byID: make(map[string]int, n), missing: make([]bool, n)}
}

// acked records push i's answer.
func (m *pokeMatcher) acked(i int, id string, sent, ack time.Time) {
	m.pushes[i] = pushTiming{ChangelogID: id, Sent: sent, Ack: ack}
	m.byID[id] = i
}

// take accounts for poke p and reports whether it is push want's.
func (m *pokeMatcher) take(p pokeEvent, want int) bool {
	i, ok := m.byID[p.ChangelogID]
	switch {
	case p.Scope != m.scope || !ok:
		m.unexpd++
		return false
	case !m.pushes[i].Poke.IsZero():
		m.dup++
		return false
	}
	m.pushes[i].Poke = p.At
	if m.missing[i] {
		m.missing[i], m.pushes[i].late = false, true
	}
	return i == want
}

// giveUp marks push i as missing.
func (m *pokeMatcher) giveUp(i int) { m.missing[i] = true }

// report fills rep's counts and latencies; late pokes are left out of the
// latencies (their push counts as missing).
func (m *pokeMatcher) report(rep *PokeLatencyReport) {
	var sentPoke, sentAck, ackPoke latencies
	for i, p := range m.pushes {
		if p.ChangelogID == "" {
			continue
		}
		rep.Acked++
		switch {
		case p.late:
			rep.Late++
			rep.failf("push %d (changelog id %s): poked only %.1f ms after its answer", i, p.ChangelogID, ms(p.Poke.Sub(p.Ack)))
			continue
		case p.Poke.IsZero():
			rep.failf("push %d (changelog id %s): no poke on server A", i, p.ChangelogID)
			continue
		}
		rep.Poked++
		sentPoke.add(p.Poke.Sub(p.Sent))
		sentAck.add(p.Ack.Sub(p.Sent))
		d := p.Poke.Sub(p.Ack)
		if d < 0 {
			d = 0
			rep.PokeBeforeAck++
		}
		ackPoke.add(d)
	}
	rep.Missing = rep.Acked - rep.Poked
	rep.Duplicate, rep.Unexpected = m.dup, m.unexpd
	rep.SentToPoke, rep.SentToAck, rep.AckToPoke = latencyStats(&sentPoke), latencyStats(&sentAck), latencyStats(&ackPoke)
	rep.OK = rep.Pushes > 0 && rep.Acked == rep.Pushes && rep.Poked == rep.Pushes && len(rep.Failures) == 0
}

func latencyStats(l *latencies) LatencyStats {
	return LatencyStats{P50Ms: l.percentile(50), P90Ms: l.percentile(90), P99Ms: l.percentile(99), MaxMs: l.percentile(100)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pokeStream is one event stream, its pokes delivered on a channel as they
// are read.
type pokeStream struct {
	pokes chan pokeEvent
	done  chan struct{} // closed when the stream has ended
	err   error         // why, once done is closed
}

// openPokeStream opens GET /v1/tenants/demo/events on base and returns
// once the server's ": connected" comment has arrived (the subscription
// is in place); the stream then runs until ctx ends.
func openPokeStream(ctx context.Context, base, token string) (*pokeStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/tenants/demo/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET events: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	s := &pokeStream{pokes: make(chan pokeEvent, 1024), done: make(chan struct{})}
	connected := make(chan struct{})
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		s.err = s.read(ctx, resp.Body, connected)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-connected:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("event stream ended before it was connected: %w", s.err)
	case <-timer.C:
		return nil, errors.New("event stream: no \": connected\" within 30s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read parses the stream (see core/httpapi/events.go): comment lines, and
// "event: poke" followed by "data: {"scopeKey":…,"changelogId":…}".
func (s *pokeStream) read(ctx context.Context, r io.Reader, connected chan<- struct{}) error {
	br := bufio.NewReaderSize(r, 4096)
	event, once := "", false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		now := time.Now()
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == ": connected" && !once:
			once = true
			close(connected)
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "poke":
			var p poke
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &p); err != nil {
				return fmt.Errorf("poke %q: %w", line, err)
			}
			select {
			case s.pokes <- pokeEvent{Scope: p.ScopeKey, ChangelogID: p.ChangelogID, At: now}:
			case <-ctx.Done():
				return ctx.Err()
			}
		case line == "":
			event = ""
		}
	}
}

// waitListeners waits until n syncplane servers listen for notifications
// on the database of dbURL: their listening connections (application_name
// syncplane-listen) are idle after their LISTEN. When the database does
// not show it (track_activities off) it gives up after 30 s with a note.
func waitListeners(ctx context.Context, dbURL string, n int, progress io.Writer) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for {
		var got int
		if err := conn.QueryRow(cctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND state = 'idle' AND query ILIKE 'LISTEN %'`,
			listenApplicationName).Scan(&got); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if cctx.Err() == nil {
				return err
			}
		}
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cctx.Done():
			fmt.Fprintf(progress, "note: pg_stat_activity shows %d of %d servers listening after 30s; going on\n", got, n)
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pokeLatencyEvents are the pushes: scope's User, then Boards of it.
func pokeLatencyEvents(scope string, n int) []Event {
	now := time.Now().UTC()
	ts := func(i int) string { return now.Add(time.Duration(i) * time.Millisecond).Format(isoMillis) }
	evs := make([]Event, n)
	for i := range evs {
		id := fmt.Sprintf("%s-pl%d", scope, i)
		if i == 0 {
			evs[i] = Event{ID: id, EntityType: "User", Operation: "create", Payload: map[string]any{
				"id": scope, "name": "User " + scope, "email": scope + "@syncbench.example",
				"emailVerified": false, "image": nil, "createdAt": ts(i), "updatedAt": ts(i), "isAnonymous": nil,
			}}
			continue
		}
		evs[i] = Event{ID: id, EntityType: "Board", Operation: "create", Payload: map[string]any{
			"id": fmt.Sprintf("%s-b%d", scope, i), "name": fmt.Sprintf("Board %d", i), "createdAt": ts(i), "userId": scope,
		}}
	}
	return evs
}

// RunPokeLatency creates a scratch database, starts servers A and B on it
// (sharing the demo key), opens an event stream on A for one subject and
// pushes cfg.Pushes events into its scope through B, one at a time, each
// after the previous one's poke: the time from each push to its poke on
// A's stream is PostgreSQL's NOTIFY from B's commit to A's listener plus
// both servers' work.
func RunPokeLatency(ctx context.Context, cfg PokeLatencyConfig, progress io.Writer) (*PokeLatencyReport, error) {
	if cfg.Pushes < 1 {
		return nil, errors.New("--pushes must be at least 1")
	}
	if cfg.PostgresURL == "" {
		return nil, errors.New("poke-latency needs PostgreSQL (--postgres): live updates cross processes through LISTEN/NOTIFY")
	}
	if cfg.PokeTimeout <= 0 {
		cfg.PokeTimeout = 10 * time.Second
	}
	bin := cfg.Bin
	if bin == "" {
		tmp, err := os.MkdirTemp("", "syncbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(progress, "building syncplane …")
		if bin, err = BuildServer(ctx, tmp); err != nil {
			return nil, err
		}
	}
	dbURL, drop, err := createScratchDB(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	defer drop() // after both servers have stopped (deferred later)
	rep := &PokeLatencyReport{Database: scratchName(dbURL), Scope: "u1", Pushes: cfg.Pushes}

	a, err := StartServer(ctx, ServeConfig{Bin: bin, DatabaseURL: dbURL})
	if err != nil {
		return nil, fmt.Errorf("server A: %w", err)
	}
	defer a.Stop()
	if err := waitListeners(ctx, dbURL, 1, progress); err != nil {
		return nil, fmt.Errorf("server A's listener: %w", err)
	}
	b, err := StartServer(ctx, ServeConfig{Bin: bin, DatabaseURL: dbURL, DemoKey: a.Secret})
	if err != nil {
		return nil, fmt.Errorf("server B: %w", err)
	}
	defer b.Stop()
	if !bytes.Equal(a.Secret, b.Secret) {
		return nil, errors.New("servers A and B have different demo keys")
	}
	if err := waitListeners(ctx, dbURL, 2, progress); err != nil {
		return nil, fmt.Errorf("server B's listener: %w", err)
	}
	rep.ServerAPID, rep.ServerBPID = a.PID, b.PID
	token, err := SecretTokens(a.Secret, "", "", 24*time.Hour)(ctx, rep.Scope)
	if err != nil {
		return nil, err
	}

	// Every push's request is encoded before the clock starts.
	evs := pokeLatencyEvents(rep.Scope, cfg.Pushes)
	bodies := make([][]byte, len(evs))
	for i, ev := range evs {
		if bodies[i], err = pushBody([]Event{ev}); err != nil {
			return nil, err
		}
	}
	sctx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	stream, err := openPokeStream(sctx, a.URL, token)
	if err != nil {
		return nil, fmt.Errorf("server A: %w\n%s", err, a.Logs())
	}
	defer func() { stopStream(); <-stream.done }()

	fmt.Fprintf(progress, "server A %s (pid %d), server B %s (pid %d), database %s; %d pushes through B, one at a time …\n",
		a.URL, a.PID, b.URL, b.PID, rep.Database, cfg.Pushes)
	m := newPokeMatcher(rep.Scope, cfg.Pushes)
	c := newClient(b.URL, "demo", 1)
	timer := time.NewTimer(cfg.PokeTimeout)
	defer timer.Stop()
	start := time.Now()
	for i, ev := range evs {
		acks, v := Acks{}, &Verification{}
		sent := time.Now()
		if err := c.pushEncoded(ctx, token, []Event{ev}, bodies[i], acks, v); err != nil {
			return nil, fmt.Errorf("push %d through server B: %w", i, err)
		}
		ack := time.Now()
		id, ok := acks[ev.ID]
		if !ok || !v.OK() {
			rep.failf("push %d (%s %s) through server B: %s", i, ev.Operation, ev.EntityType, strings.TrimSpace(v.summary()))
			break // the rest would push Boards of a missing User
		}
		m.acked(i, id, sent, ack)
		timer.Reset(cfg.PokeTimeout)
	wait:
		for {
			select {
			case p := <-stream.pokes:
				if m.take(p, i) {
					break wait
				}
			case <-timer.C:
				m.giveUp(i)
				break wait
			case <-stream.done:
				return nil, fmt.Errorf("server A's event stream ended after %d pushes: %v\n%s", i, stream.err, a.Logs())
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	// A duplicate or stray poke would come soon after the last one.
	settle := time.After(200 * time.Millisecond)
drain:
	for {
		select {
		case p := <-stream.pokes:
			m.take(p, -1)
		case <-settle:
			break drain
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.report(rep)
	return rep, nil
}

// scratchName is the database name of a PostgreSQL URL.
func scratchName(dbURL string) string {
	name := dbURL[strings.LastIndex(dbURL, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	return name
}

func runPokeLatency(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("syncbench poke-latency", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := os.Getenv("SYNCPLANE_BENCH_DATABASE_URL")
	if pg == "" {
		pg = defaultBenchPostgres
	}
	var cfg PokeLatencyConfig
	fs.StringVar(&cfg.PostgresURL, "postgres", pg, "PostgreSQL server for the scratch database both servers share (env SYNCPLANE_BENCH_DATABASE_URL)")
	fs.IntVar(&cfg.Pushes, "pushes", 500, "events pushed through server B, one at a time")
	fs.StringVar(&cfg.Bin, "server-bin", "", "syncplane executable (default: go build ./cmd/syncplane into a temporary directory)")
	fs.DurationVar(&cfg.PokeTimeout, "poke-timeout", 10*time.Second, "how long a push's poke may take after its answer before it counts as missing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	rep, err := RunPokeLatency(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "syncbench poke-latency:", err)
		return 2
	}
	return finish(stdout, *asJSON, rep, printPokeLatency, rep.OK)
}

func printPokeLatency(w io.Writer, r *PokeLatencyReport) {
	fmt.Fprintf(w, "syncbench poke-latency: %d pushes into scope %s through server B (pid %d), pokes on server A's event stream (pid %d); one PostgreSQL database, LISTEN/NOTIFY\n",
		r.Pushes, r.Scope, r.ServerBPID, r.ServerAPID)
	fmt.Fprintf(w, "  %-12s %9s %9s %9s %9s\n", "", "p50", "p90", "p99", "max")
	line := func(name string, s LatencyStats) {
		fmt.Fprintf(w, "  %-12s %6.2f ms %6.2f ms %6.2f ms %6.2f ms\n", name, s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs)
	}
	line("sent → poke", r.SentToPoke)
	line("sent → ack", r.SentToAck)
	line("ack → poke", r.AckToPoke)
	fmt.Fprintf(w, "  %d of %d pokes arrived before their push's answer (counted as 0 in ack → poke); %.2fs in all\n",
		r.PokeBeforeAck, r.Poked, r.Seconds)
	if r.Late+r.Duplicate+r.Unexpected > 0 {
		fmt.Fprintf(w, "  pokes also: %d late, %d duplicate, %d unexpected\n", r.Late, r.Duplicate, r.Unexpected)
	}
	if r.OK {
		fmt.Fprintf(w, "ok: %d of %d pushes acknowledged by B, each poked on A with its changelog id\n", r.Poked, r.Pushes)
		return
	}
	fmt.Fprintf(w, "FAILED: %d of %d pushes acknowledged, %d poked, %d missing\n", r.Acked, r.Pushes, r.Poked, r.Missing)
	for _, f := range r.Failures {
		fmt.Fprintln(w, "  "+f)
	}
}

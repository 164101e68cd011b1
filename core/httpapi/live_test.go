package httpapi_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/live"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// liveServer is one server process with live updates on the env's database.
type liveServer struct {
	url string
	hub *live.Hub
	api *httpapi.Server
}

// startLive runs one more server on the env's database with its own hub
// and, on PostgreSQL, its own listening connection, already listening when
// it returns, wired as cmd/syncplane serve wires it.
func (e *env) startLive(t testing.TB, heartbeat time.Duration) *liveServer {
	return e.startLiveWith(t, heartbeat, nil)
}

// startLiveWith is startLive with lost, when set, called on the
// listener's goroutine when its connection ends, before it reconnects.
func (e *env) startLiveWith(t testing.TB, heartbeat time.Duration, lost func(error)) *liveServer {
	t.Helper()
	st := e.db.OpenAt(t, e.dbURL, e.data)
	hub := live.NewHub()
	reg, errs := tenant.LoadDir(context.Background(), e.dir, tenant.Options{Store: st, Log: quietLog(), Live: hub})
	for _, err := range errs {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() }) // validator plugins
	api := httpapi.New(reg, quietLog(), httpapi.WithLive(hub, heartbeat))
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Cleanup(api.StopStreams) // before srv.Close, which waits for every request
	if st.Postgres() {
		ctx, cancel := context.WithCancel(context.Background())
		listening, done := make(chan struct{}), make(chan struct{})
		var once bool
		go func() {
			defer close(done)
			_ = st.Listen(ctx, store.Listener{
				Notify:     func(tn, sc, id string) { hub.Publish(live.Poke{Tenant: tn, Scope: sc, ChangelogID: id}) },
				Subscribed: hub.Subscribed,
				CatchUp:    func(tn string, heads map[string]string) { hub.CatchUp(tn, heads) },
				Lost:       lost,
				Listening: func() {
					if !once {
						once = true
						close(listening)
					}
				},
			})
		}()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-listening:
		case <-time.After(10 * time.Second):
			t.Fatal("listener not listening after 10s")
		}
	}
	return &liveServer{url: srv.URL, hub: hub, api: api}
}

// pair returns a server to watch on and one to commit through: two
// processes on PostgreSQL, the same one on SQLite (one process per files).
func (e *env) pair(t testing.TB, db storetest.DB) (watch, commit *liveServer) {
	watch = e.startLive(t, 0)
	if db.Name == "sqlite" {
		return watch, watch
	}
	return watch, e.startLive(t, 0)
}

// stream is an open event stream.
type stream struct {
	r      *bufio.Reader
	cancel context.CancelFunc
	done   chan struct{}
}

func openEvents(t testing.TB, base, tenantID, sub string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/tenants/"+tenantID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, tenantID, sub))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{r: bufio.NewReader(resp.Body), cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if line, err := s.r.ReadString('\n'); err != nil || line != ": connected\n" {
		t.Fatalf("events: first line %q, %v", line, err)
	}
	if line, err := s.r.ReadString('\n'); err != nil || line != "\n" {
		t.Fatalf("events: second line %q, %v", line, err)
	}
	return s
}

// next returns the next event's name and data, skipping comments.
func (s *stream) next(t testing.TB) (string, string, error) {
	t.Helper()
	var name, data string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data, nil
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

type pokeData struct {
	ScopeKey    string `json:"scopeKey"`
	ChangelogID string `json:"changelogId"`
}

// nextPoke reads events until a poke and returns it.
func (s *stream) nextPoke(t testing.TB) pokeData {
	t.Helper()
	name, data, err := s.next(t)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	var p pokeData
	if name != "poke" {
		t.Fatalf("events: event %q, want poke", name)
	}
	must(t, json.Unmarshal([]byte(data), &p))
	return p
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10s", what)
		}
	}
}

func TestEventsPokeAfterCommitThroughAnotherServer(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		watch, commit := e.pair(t, db)
		u1 := openEvents(t, watch.url, "acme", "u1")
		u2 := openEvents(t, watch.url, "acme", "u2")
		other := openEvents(t, watch.url, "beta", "u1") // same subject, another tenant
		res := pushTo(t, commit.url, "acme", "u1", ev("", "User", "create", user("u1")), ev("", "Board", "create", board("b1", "u1", "one")))
		ok(t, res)
		if p := u1.nextPoke(t); p.ScopeKey != "u1" || p.ChangelogID != *res[1].AppliedChangelogID {
			t.Errorf("u1 poke = %+v, want scope u1 at %s", p, *res[1].AppliedChangelogID)
		}
		// u2 and beta's u1 may not pull acme's u1: their first pokes are their own.
		res2 := pushTo(t, commit.url, "acme", "u2", ev("", "User", "create", user("u2")))
		res3 := pushTo(t, commit.url, "beta", "u1", ev("", "User", "create", user("u1")))
		if p := u2.nextPoke(t); p.ScopeKey != "u2" || p.ChangelogID != *res2[0].AppliedChangelogID {
			t.Errorf("u2 poke = %+v, want scope u2 at %s", p, *res2[0].AppliedChangelogID)
		}
		if p := other.nextPoke(t); p.ScopeKey != "u1" || p.ChangelogID != *res3[0].AppliedChangelogID {
			t.Errorf("beta u1 poke = %+v, want beta's u1 at %s", p, *res3[0].AppliedChangelogID)
		}
	})
}

func TestEventsUnauthorized(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.DB{Name: "sqlite"})
	s := e.startLive(t, 0)
	resp, err := http.Get(s.url + "/v1/tenants/acme/events")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || s.hub.Subscribers() != 0 {
		t.Errorf("events without a token: status %d, %d subscribers", resp.StatusCode, s.hub.Subscribers())
	}
	// Without live updates configured, there is no stream.
	code, _, _ := getAuth(t, e.url+"/v1/tenants/acme/events", token(t, "acme", "u1"))
	if code != http.StatusNotFound {
		t.Errorf("events on a server without live updates: status %d, want 404", code)
	}
}

func getAuth(t testing.TB, url, tok string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, []byte(b.String()), resp.Header
}

func TestEventsHeartbeatAndRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.DB{Name: "sqlite"})
	s := e.startLive(t, 20*time.Millisecond)
	st := openEvents(t, s.url, "acme", "u1")
	if n := s.hub.Subscribers(); n != 1 {
		t.Fatalf("Subscribers = %d, want 1", n)
	}
	for range 2 {
		if line, err := st.r.ReadString('\n'); err != nil || line != ": heartbeat\n" {
			t.Fatalf("heartbeat line %q, %v", line, err)
		}
		_, _ = st.r.ReadString('\n')
	}
	st.cancel() // the client goes away
	waitFor(t, "released", func() bool { return s.hub.Subscribers() == 0 })
}

func TestEventsEndOnShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.DB{Name: "sqlite"})
	s := e.startLive(t, 0)
	st := openEvents(t, s.url, "acme", "u1")
	pulled := make(chan pullResult, 1)
	go func() {
		code, body, _ := post(t, s.url+"/v1/tenants/acme/pull", token(t, "acme", "u1"), map[string]any{"waitMs": 30000})
		pulled <- pullResult{code, string(body)}
	}()
	waitFor(t, "waiting", func() bool { return s.hub.Subscribers() == 2 })
	s.api.StopStreams()
	if _, _, err := st.next(t); err == nil {
		t.Error("the stream goes on after StopStreams")
	}
	if p := <-pulled; p.code != http.StatusOK || !strings.Contains(p.body, `"logsWithRecords":[]`) {
		t.Errorf("waiting pull at shutdown: %d %s, want an empty page", p.code, p.body)
	}
	waitFor(t, "released", func() bool { return s.hub.Subscribers() == 0 })
}

type pullResult struct {
	code int
	body string
}

func TestLongPoll(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		watch, commit := e.pair(t, db)
		// The watching server has heard the setup commit before the polls
		// start: its poke, if late, would end the first poll's wait early.
		s := openEvents(t, watch.url, "acme", "u1")
		res := pushTo(t, commit.url, "acme", "u1", ev("", "User", "create", user("u1")))
		ok(t, res)
		if p := s.nextPoke(t); p.ChangelogID != *res[0].AppliedChangelogID {
			t.Fatalf("setup poke %+v, want %s", p, *res[0].AppliedChangelogID)
		}
		s.cancel()
		waitFor(t, "the stream released", func() bool { return watch.hub.Subscribers() == 0 })
		first := pullFrom(t, watch.url, "acme", "u1", map[string]any{})
		cursor := *first.Cursor

		t.Run("returns on a commit", func(t *testing.T) {
			// The poll is waiting (subscribed) before the push; it must come
			// back with the push's own entry. (Whether the poll's answer or the
			// push's reaches the test first is a race, not a property.)
			got := make(chan pull.Response, 1)
			go func() {
				got <- pullFrom(t, watch.url, "acme", "u1", map[string]any{"lastChangelogId": cursor, "waitMs": 30000})
			}()
			waitFor(t, "waiting", func() bool { return watch.hub.Subscribers() == 1 })
			res := pushTo(t, commit.url, "acme", "u1", ev("", "Board", "create", board("b1", "u1", "one")))
			ok(t, res)
			r := <-got
			if len(r.LogsWithRecords) != 1 || r.LogsWithRecords[0].ID != *res[0].AppliedChangelogID {
				t.Fatalf("long poll returned %+v; want exactly the commit's entry %s", r.LogsWithRecords, *res[0].AppliedChangelogID)
			}
		})
		t.Run("returns empty at its cap", func(t *testing.T) {
			all := pullFrom(t, watch.url, "acme", "u1", map[string]any{"lastChangelogId": cursor})
			start := time.Now()
			resp := pullFrom(t, watch.url, "acme", "u1", map[string]any{"lastChangelogId": *all.Cursor, "waitMs": 150})
			if len(resp.LogsWithRecords) != 0 || *resp.Cursor != *all.Cursor || time.Since(start) < 150*time.Millisecond {
				t.Errorf("long poll without commits: %d entries, cursor %v, after %v", len(resp.LogsWithRecords), *resp.Cursor, time.Since(start))
			}
			// another scope's commit does not end the wait
			done := make(chan int, 1)
			go func() {
				done <- len(pullFrom(t, watch.url, "acme", "u1", map[string]any{"lastChangelogId": *all.Cursor, "waitMs": 300}).LogsWithRecords)
			}()
			waitFor(t, "waiting", func() bool { return watch.hub.Subscribers() == 1 })
			ok(t, pushTo(t, commit.url, "acme", "u2", ev("", "User", "create", user("u2"))))
			if n := <-done; n != 0 {
				t.Errorf("long poll saw %d entries of another subject", n)
			}
		})
		waitFor(t, "released", func() bool { return watch.hub.Subscribers() == 0 })
	})
}

func TestLongPollValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.DB{Name: "sqlite"})
	for _, w := range []any{-1, 30001, "5", 1.5} {
		code, body, _ := post(t, e.url+"/v1/tenants/acme/pull", token(t, "acme", "u1"), map[string]any{"waitMs": w})
		if code != http.StatusBadRequest {
			t.Errorf("waitMs=%v: status %d %s, want 400", w, code, body)
		}
	}
	// Without a hub, waitMs is accepted and the empty page comes at once.
	resp := e.pull(t, "acme", "u1", map[string]any{"waitMs": 0})
	if len(resp.LogsWithRecords) != 0 {
		t.Errorf("empty tenant: %d entries", len(resp.LogsWithRecords))
	}
}

// TestPokeLatency measures commit-to-poke latency across two servers on
// PostgreSQL; run with SYNCPLANE_MEASURE_POKES=1.
func TestPokeLatency(t *testing.T) {
	if os.Getenv("SYNCPLANE_MEASURE_POKES") != "1" {
		t.Skip("set SYNCPLANE_MEASURE_POKES=1 to measure")
	}
	pg, okPG := storetest.Postgres(t)
	if !okPG {
		t.Skip("needs PostgreSQL")
	}
	e := newEnv(t, pg)
	watch, commit := e.pair(t, pg)
	ok(t, pushTo(t, commit.url, "acme", "u1", ev("", "User", "create", user("u1"))))
	s := openEvents(t, watch.url, "acme", "u1")
	var total, ack []time.Duration
	for i := range 300 {
		start := time.Now()
		res := pushTo(t, commit.url, "acme", "u1", ev("", "Board", "create", board(fmt.Sprintf("lat-%d", i), "u1", "n")))
		acked := time.Since(start)
		for s.nextPoke(t).ChangelogID != *res[0].AppliedChangelogID {
		}
		total, ack = append(total, time.Since(start)), append(ack, acked)
	}
	slices.Sort(total)
	slices.Sort(ack)
	q := func(d []time.Duration, p int) time.Duration { return d[len(d)*p/100] }
	t.Logf("%d pushes through server B, poke on server A's stream: push sent → poke p50 %v p99 %v; push sent → ack p50 %v p99 %v",
		len(total), q(total, 50), q(total, 99), q(ack, 50), q(ack, 99))
}

// TestEventsCatchUpAfterListenerReconnect: a commit made through another
// server while the watching server's listening connection is down (its
// NOTIFY reaches nobody) is poked on the stream once the listener is back.
func TestEventsCatchUpAfterListenerReconnect(t *testing.T) {
	t.Parallel()
	pg, okPG := storetest.Postgres(t)
	if !okPG {
		t.Skip("needs PostgreSQL")
	}
	e := newEnv(t, pg)
	lost, resume := make(chan error, 1), make(chan struct{})
	var once sync.Once
	watch := e.startLiveWith(t, 0, func(err error) {
		once.Do(func() {
			lost <- err
			<-resume // the test commits while nobody listens
		})
	})
	commit := e.startLive(t, 0)
	s := openEvents(t, watch.url, "acme", "u1")
	res := pushTo(t, commit.url, "acme", "u1", ev("", "User", "create", user("u1")))
	ok(t, res)
	if p := s.nextPoke(t); p.ChangelogID != *res[0].AppliedChangelogID {
		t.Fatalf("poke %+v, want %s", p, *res[0].AppliedChangelogID)
	}

	db, err := sql.Open("pgx", e.dbURL)
	must(t, err)
	defer db.Close()
	var killed int
	must(t, db.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, store.ListenApplicationName).Scan(&killed))
	if killed != 2 { // both servers' listeners
		t.Fatalf("terminated %d listening backends, want 2", killed)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not notice its connection's end after 10s")
	}
	res = pushTo(t, commit.url, "acme", "u1", ev("", "Board", "create", board("b1", "u1", "while down")))
	ok(t, res)
	close(resume)
	if p := s.nextPoke(t); p.ScopeKey != "u1" || p.ChangelogID != *res[0].AppliedChangelogID {
		t.Errorf("poke after the reconnection = %+v, want scope u1 at %s", p, *res[0].AppliedChangelogID)
	}
	// And the listener hears commits again.
	res = pushTo(t, commit.url, "acme", "u1", ev("", "Board", "create", board("b2", "u1", "after")))
	ok(t, res)
	if p := s.nextPoke(t); p.ChangelogID != *res[0].AppliedChangelogID {
		t.Errorf("poke after that = %+v, want %s", p, *res[0].AppliedChangelogID)
	}
}

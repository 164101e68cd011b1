package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/testkit"
)

// buildSyncplane builds this command into a temporary directory, so that
// tests can run real server processes and signal them.
func buildSyncplane(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "syncplane")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// procEnv is the test's environment without SYNCPLANE_ variables, plus kv.
func procEnv(kv ...string) []string {
	var out []string
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "SYNCPLANE_") {
			out = append(out, v)
		}
	}
	return append(out, kv...)
}

// proc is a `syncplane serve` process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *testkit.LockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // what Wait returned, once done is closed
}

// startProc starts `bin serve --addr 127.0.0.1:0 args...` without waiting
// for it to serve. The process is killed when the test ends.
func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{stderr: &testkit.LockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = env
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// ready waits until the process logged its address and answers /healthz.
func (p *proc) ready(t *testing.T, client *http.Client) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for p.url == "" {
		select {
		case <-p.done:
			t.Fatalf("serve exited (%v) before serving; stderr:\n%s", p.err, p.stderr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address; stderr:\n%s", p.stderr)
		}
		if line := logLine(p.stderr.String(), "serving"); line != nil {
			p.url = "http://" + line["addr"].(string)
		}
	}
	for {
		err := healthz(client, p.url)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz: %v; stderr:\n%s", err, p.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func healthz(client *http.Client, base string) error {
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// mintToken runs `bin token` for the demo tenant.
func mintToken(t *testing.T, bin, data, sub string) string {
	t.Helper()
	cmd := exec.Command(bin, "token", "--tenant", "demo", "--sub", sub, "--data", data)
	cmd.Env = procEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("syncplane token: %v", err)
	}
	return lastLine(string(out))
}

// pushBatch posts a batch; an error means no (usable) answer.
func pushBatch(ctx context.Context, client *http.Client, base, tok string, events []map[string]any) ([]push.Result, error) {
	b, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tenants/demo/push", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("push: status %d: %s", resp.StatusCode, body)
	}
	var res []push.Result
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("push response %s: %w", body, err)
	}
	if len(res) != len(events) {
		return nil, fmt.Errorf("push: %d results for %d events", len(res), len(events))
	}
	return res, nil
}

// pullEverything pulls the subject's scope from the start, following the
// cursor until an empty page.
func pullEverything(client *http.Client, base, tok string) ([]pull.LogWithRecord, error) {
	var all []pull.LogWithRecord
	reqBody := map[string]any{}
	for range 10000 {
		b, _ := json.Marshal(reqBody)
		req, err := http.NewRequest(http.MethodPost, base+"/v1/tenants/demo/pull", bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("pull: status %d: %s", resp.StatusCode, body)
		}
		var page pull.Response
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("pull response %s: %w", body, err)
		}
		if len(page.LogsWithRecords) == 0 {
			return all, nil
		}
		if page.Cursor == nil {
			return nil, errors.New("pull: a non-empty page without a cursor")
		}
		all = append(all, page.LogsWithRecords...)
		reqBody = map[string]any{"lastChangelogId": *page.Cursor}
	}
	return nil, errors.New("pull: too many pages")
}

// TestMultiProcessSIGKILL runs three server processes on one PostgreSQL
// database, pushes through all of them at once, SIGKILLs one mid-load and
// retries the unacknowledged batches elsewhere: nothing is lost, nothing is
// applied twice, every client pulls exactly what was acknowledged, and the
// survivors keep serving.
func TestMultiProcessSIGKILL(t *testing.T) {
	db, ok := storetest.Postgres(t)
	if !ok {
		t.Skip("SYNCPLANE_TEST_DATABASE_URL is not set")
	}
	t.Parallel()
	bin := buildSyncplane(t)
	dbURL := db.URL(t)
	data := t.TempDir()

	const (
		nProcs   = 3
		nClients = 6
		nBatches = 8
		batch    = 50
		nBoards  = batch - 1 // the first batch: the user and its boards
	)
	// The first `token` creates the demo key that every process shares.
	toks := make([]string, nClients)
	for c := range nClients {
		toks[c] = mintToken(t, bin, data, fmt.Sprintf("mp-u%d", c))
	}

	env := procEnv("SYNCPLANE_DATABASE_URL=" + dbURL)
	procs := make([]*proc, nProcs)
	// The first process migrates the database alone; the others find it
	// migrated, as when a deployment scales out.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: nClients}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for i := range procs {
		procs[i] = startProc(t, bin, env, "--data", data)
		if i == 0 {
			procs[0].ready(t, client)
		}
	}
	for _, p := range procs[1:] {
		p.ready(t, client)
	}

	// batches[c][b] is client c's batch b; the event ids are fixed, so a
	// retry sends the same events.
	batches := make([][][]map[string]any, nClients)
	for c := range nClients {
		sub := fmt.Sprintf("mp-u%d", c)
		for b := range nBatches {
			var evs []map[string]any
			for j := range batch {
				id := fmt.Sprintf("mp-%d-%d-%d", c, b, j)
				switch {
				case b == 0 && j == 0:
					evs = append(evs, testkit.OutboxEvent(id, "User", "create", testkit.User(sub)))
				case b == 0:
					evs = append(evs, testkit.OutboxEvent(id, "Board", "create", testkit.Board(fmt.Sprintf("b-%d-%d", c, j), sub, fmt.Sprintf("board %d", j))))
				default:
					board := fmt.Sprintf("b-%d-%d", c, 1+(b*batch+j)%nBoards)
					evs = append(evs, testkit.OutboxEvent(id, "Todo", "create", testkit.Todo(fmt.Sprintf("t-%d-%d-%d", c, b, j), board, "todo")))
				}
			}
			batches[c] = append(batches[c], evs)
		}
	}

	var (
		acked    = make([]map[string]string, nClients) // event id → changelog id, per client
		retries  atomic.Int64
		ackCount atomic.Int64
		killOnce sync.Once
		killed   atomic.Bool
		wg       sync.WaitGroup
	)
	const killAfter = nClients * nBatches / 4
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	for c := range nClients {
		acked[c] = map[string]string{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
			defer hc.CloseIdleConnections()
			for b, evs := range batches[c] {
				for attempt := 0; ; attempt++ {
					if attempt == 2*nProcs || ctx.Err() != nil {
						t.Errorf("client %d batch %d: not acknowledged after %d attempts", c, b, attempt)
						return
					}
					p := procs[(c+b+attempt)%nProcs]
					res, err := pushBatch(ctx, hc, p.url, toks[c], evs)
					if err != nil {
						retries.Add(1)
						continue
					}
					again := false
					for i, r := range res {
						if r.ID != evs[i]["id"] {
							t.Errorf("client %d: result %d is for %q, want %q", c, i, r.ID, evs[i]["id"])
						}
						if r.Error != nil {
							if !r.Error.Retryable {
								t.Errorf("client %d: event %s refused: %+v", c, r.ID, *r.Error)
								return
							}
							again = true
							continue
						}
						if r.AppliedChangelogID == nil {
							t.Errorf("client %d: event %s: no changelog id and no error", c, r.ID)
							return
						}
						if prev, ok := acked[c][r.ID]; ok && prev != *r.AppliedChangelogID {
							t.Errorf("client %d: event %s acknowledged as %s, then as %s", c, r.ID, prev, *r.AppliedChangelogID)
						}
						acked[c][r.ID] = *r.AppliedChangelogID
					}
					if again {
						retries.Add(1)
						continue
					}
					break
				}
				if ackCount.Add(1) == killAfter {
					killOnce.Do(func() {
						if err := procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
							t.Errorf("SIGKILL: %v", err)
						}
						killed.Store(true)
					})
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if !killed.Load() {
		t.Fatal("the load ended before the kill")
	}
	select {
	case <-procs[0].done:
	case <-time.After(5 * time.Second):
		t.Fatal("the killed process did not exit")
	}
	if retries.Load() == 0 {
		t.Error("no batch was retried: the kill did not hit the load")
	}
	t.Logf("%d events in %d batches through %d processes, %d retries after the SIGKILL", nClients*nBatches*batch, nClients*nBatches, nProcs, retries.Load())

	// Every event was acknowledged, each with its own changelog id.
	owner := map[string]string{} // changelog id → event id
	for c := range nClients {
		if len(acked[c]) != nBatches*batch {
			t.Errorf("client %d: %d events acknowledged, want %d", c, len(acked[c]), nBatches*batch)
		}
		for ev, cl := range acked[c] {
			if other, dup := owner[cl]; dup {
				t.Errorf("changelog id %s acknowledged for both %s and %s", cl, other, ev)
			}
			owner[cl] = ev
		}
	}

	survivors := procs[1:]
	for c := range nClients {
		p := survivors[c%len(survivors)]
		// Sending an applied batch again is acknowledged with the same ids.
		res, err := pushBatch(context.Background(), client, p.url, toks[c], batches[c][0])
		if err != nil {
			t.Fatalf("client %d: re-push: %v", c, err)
		}
		for _, r := range res {
			if r.Error != nil || r.AppliedChangelogID == nil || *r.AppliedChangelogID != acked[c][r.ID] {
				t.Errorf("client %d: re-pushed %s: %+v, want changelog id %s", c, r.ID, r, acked[c][r.ID])
			}
		}

		logs, err := pullEverything(client, p.url, toks[c])
		if err != nil {
			t.Fatalf("client %d: %v", c, err)
		}
		seen := map[string]int{}
		for _, l := range logs {
			seen[l.ChangelogID]++
			ev, ok := owner[l.ChangelogID]
			switch {
			case !ok:
				t.Errorf("client %d pulled changelog id %s (event %s) that no push acknowledged", c, l.ChangelogID, l.OutboxEventID)
			case acked[c][ev] != l.ChangelogID:
				t.Errorf("client %d pulled changelog id %s of another client's event %s", c, l.ChangelogID, ev)
			case l.OutboxEventID != ev:
				t.Errorf("client %d: changelog id %s pulled for event %s, acknowledged for %s", c, l.ChangelogID, l.OutboxEventID, ev)
			}
		}
		for ev, cl := range acked[c] {
			if seen[cl] != 1 {
				t.Errorf("client %d: event %s (changelog id %s) pulled %d times, want once", c, ev, cl, seen[cl])
			}
		}
		if len(logs) != len(acked[c]) {
			t.Errorf("client %d pulled %d entries, want %d", c, len(logs), len(acked[c]))
		}
	}
	for _, p := range survivors {
		if err := healthz(client, p.url); err != nil {
			t.Errorf("survivor %s: /healthz: %v; stderr:\n%s", p.url, err, p.stderr)
		}
	}
}

// TestGracefulShutdown: SIGTERM while a push is in flight. The push is
// acknowledged, the process exits 0 and accepts nothing afterwards.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	bin := buildSyncplane(t)
	data := t.TempDir()
	tok := mintToken(t, bin, data, "gs-u")
	p := startProc(t, bin, procEnv(), "--data", data)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	p.ready(t, client)

	evs := []map[string]any{testkit.OutboxEvent("gs-0", "User", "create", testkit.User("gs-u"))}
	for j := 1; j < 100; j++ {
		if j < 10 {
			evs = append(evs, testkit.OutboxEvent(fmt.Sprintf("gs-%d", j), "Board", "create", testkit.Board(fmt.Sprintf("gs-b%d", j), "gs-u", "board")))
		} else {
			evs = append(evs, testkit.OutboxEvent(fmt.Sprintf("gs-%d", j), "Todo", "create", testkit.Todo(fmt.Sprintf("gs-t%d", j), fmt.Sprintf("gs-b%d", 1+j%9), "todo")))
		}
	}
	// SIGTERM must arrive while the server is handling the push. The request
	// is sent with "Expect: 100-continue", so the server answers "100
	// Continue" only once the handler reads the body: from then on the request
	// is in flight by any definition. It goes over a connection of its own:
	// reusing the idle keep-alive connection left by ready() would race with
	// Shutdown, which closes idle connections (a client that loses that race
	// retries its unacknowledged batch; idempotency makes that safe).
	handling := make(chan struct{})
	var once sync.Once
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got100Continue: func() { once.Do(func() { close(handling) }) },
	})
	pushClient := &http.Client{
		Transport: expectContinue{&http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 20 * time.Second}},
		Timeout:   20 * time.Second,
	}
	type answer struct {
		res []push.Result
		err error
	}
	answers := make(chan answer, 1)
	go func() {
		res, err := pushBatch(ctx, pushClient, p.url, tok, evs)
		answers <- answer{res, err}
	}()
	select {
	case <-handling:
	case a := <-answers:
		t.Fatalf("push answered before the server read it: %v", a.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start reading the push")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	a := <-answers
	if a.err != nil {
		t.Fatalf("in-flight push during SIGTERM: %v; stderr:\n%s", a.err, p.stderr)
	}
	for _, r := range a.res {
		if r.Error != nil || r.AppliedChangelogID == nil {
			t.Errorf("event %s not applied: %+v", r.ID, r.Error)
		}
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM; stderr:\n%s", p.stderr)
	}
	if p.err != nil {
		t.Errorf("serve exited with %v after SIGTERM, want 0; stderr:\n%s", p.err, p.stderr)
	}
	if logLine(p.stderr.String(), "shutting down: finishing in-flight requests") == nil {
		t.Errorf("no shutdown log; stderr:\n%s", p.stderr)
	}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	if err := healthz(fresh, p.url); err == nil {
		t.Error("a request after the shutdown was answered")
	}
}

// expectContinue sends every request with "Expect: 100-continue".
type expectContinue struct{ rt http.RoundTripper }

func (e expectContinue) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Expect", "100-continue")
	return e.rt.RoundTrip(req)
}

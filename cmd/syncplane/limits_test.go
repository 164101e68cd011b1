package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/storetest"
)

// demoToken mints a token of the demo tenant served from data.
func demoToken(t *testing.T, e env, data, sub string) string {
	t.Helper()
	out, _, err := runCmd(t, e, "token", "--tenant", "demo", "--sub", sub, "--data", data)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return lastLine(out)
}

// dial opens a raw TCP connection to the server; reads and writes fail
// after 20 s, a guard against a test that hangs (never what it checks).
func (s *server) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	must(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// get sends GET path on the raw connection c and reads the response.
func get(t *testing.T, c net.Conn, r *bufio.Reader, path string) (*http.Response, error) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: syncplane\r\n\r\n", path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// closedByServer reports whether the next read of c finds the connection
// closed (EOF or reset), not a timeout of the test's guard.
func closedByServer(r *bufio.Reader) (bool, error) {
	_, err := r.ReadByte()
	if err == nil {
		return false, errors.New("read a byte, want the connection closed")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, err
	}
	return true, nil
}

// TestServeSlowBody: a client that sends its body one byte at a time is
// cut off by the read timeout (408, then the connection closes) long
// before its body would be complete (issue 9, finding 3).
func TestServeSlowBody(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := startServe(t, env{}, "--data", data, "--read-timeout", "1s", "--read-header-timeout", "1s")
	tok := demoToken(t, env{}, data, "slow")
	c := srv.dial(t)
	const size = 1000 // at one byte every 100 ms: 100 s
	fmt.Fprintf(c, "POST /v1/tenants/demo/push HTTP/1.1\r\nHost: syncplane\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", tok, size)
	sent := make(chan int, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for ; n < size; n++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to the slow body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "body not received in time") {
		t.Errorf("slow body: %d %s", resp.StatusCode, b)
	}
	if closed, err := closedByServer(r); !closed {
		t.Errorf("connection not closed after the 408: %v", err)
	}
	stop <- struct{}{}
	if n := <-sent; n >= size {
		t.Errorf("the whole body was sent (%d bytes)", n)
	}
}

// TestServeIdleTimeout: a keep-alive connection left idle is closed after
// the idle timeout (issue 9, finding 4).
func TestServeIdleTimeout(t *testing.T) {
	t.Parallel()
	srv := startServe(t, env{}, "--data", t.TempDir(), "--idle-timeout", "300ms")
	c := srv.dial(t)
	r := bufio.NewReader(c)
	resp, err := get(t, c, r, "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /healthz: %v, %v (close %v)", resp, err, resp != nil && resp.Close)
	}
	if closed, err := closedByServer(r); !closed {
		t.Errorf("idle connection not closed: %v", err)
	}
}

// TestServeConnCap: past --max-conns, a connection takes the place of an
// idle keep-alive connection if there is one, and is refused with a 503
// and Retry-After otherwise; a refused client can come back once a place
// is free.
func TestServeConnCap(t *testing.T) {
	t.Parallel()
	t.Run("case=refused", func(t *testing.T) {
		t.Parallel()
		srv := startServe(t, env{}, "--data", t.TempDir(), "--max-conns", "2")
		if line := logLine(srv.stderr.String(), "connection cap"); line == nil || line["maxConns"] != float64(2) {
			t.Errorf("log of the cap: %v", line)
		}
		// Two connections that are busy sending their first request, then
		// one more. (Until the health check's connection is gone, the
		// second may take its place, or be refused while the server has
		// not seen it idle yet: then try again.)
		var a, b net.Conn
		waitFor(t, "a connection refused past two busy ones", func() bool {
			a, b = srv.dial(t), srv.dial(t)
			for _, conn := range []net.Conn{a, b} {
				fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: syncplane\r\n") // not the blank line yet
			}
			c := srv.dial(t)
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("connection past the cap: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
				string(body) != `{"error":"too many connections to this server, retry later"}`+"\n" {
				t.Fatalf("connection past the cap: %d %v %q", resp.StatusCode, resp.Header, body)
			}
			if closed, err := closedByServer(r); !closed {
				t.Errorf("refused connection left open: %v", err)
			}
			// a and b were within the cap if they are answered.
			for _, conn := range []net.Conn{a, b} {
				fmt.Fprint(conn, "\r\n")
				if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusOK {
					a.Close()
					b.Close()
					return false
				}
			}
			return true
		})
		a.Close()
		waitFor(t, "a place after a closed connection", func() bool {
			d := srv.dial(t)
			resp, err := get(t, d, bufio.NewReader(d), "/healthz")
			d.Close()
			return err == nil && resp.StatusCode == http.StatusOK
		})
	})

	t.Run("case=idle-makes-way", func(t *testing.T) {
		t.Parallel()
		srv := startServe(t, env{}, "--data", t.TempDir(), "--max-conns", "2")
		srv.client.CloseIdleConnections()
		idle := make([]*bufio.Reader, 2)
		for i := range idle {
			c := srv.dial(t)
			idle[i] = bufio.NewReader(c)
			waitFor(t, "a request within the cap", func() bool {
				resp, err := get(t, c, idle[i], "/healthz")
				if err != nil { // refused while the health check's connection closes
					c = srv.dial(t)
					idle[i] = bufio.NewReader(c)
				}
				return err == nil && resp.StatusCode == http.StatusOK
			})
		}
		// Both places are taken by idle connections: a new one is served
		// (once the server has seen them idle), in the place of the first.
		waitFor(t, "a request past the cap of idle connections", func() bool {
			c := srv.dial(t)
			resp, err := get(t, c, bufio.NewReader(c), "/healthz")
			return err == nil && resp.StatusCode == http.StatusOK
		})
		if closed, err := closedByServer(idle[0]); !closed {
			t.Errorf("the longest-idle connection was not closed: %v", err)
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeLongResponsesOutliveWriteTimeout: an event stream and a long
// poll last longer than the read and write timeouts of ordinary requests.
func TestServeLongResponsesOutliveWriteTimeout(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := dbEnv(t, db)
		data := t.TempDir()
		srv := startServe(t, e, "--data", data, "--write-timeout", "500ms", "--read-timeout", "500ms", "--read-header-timeout", "500ms")
		tok := demoToken(t, e, data, "long")
		srv.pushUser(t, "demo", tok, "long")

		// The event stream: open, quiet for four write timeouts, then a poke.
		req, _ := http.NewRequest(http.MethodGet, srv.url+"/v1/tenants/demo/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		stream := &http.Client{Transport: &http.Transport{}} // no client timeout: the stream lasts
		defer stream.CloseIdleConnections()
		resp, err := stream.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /events: %v %v", resp, err)
		}
		defer resp.Body.Close()
		lines := bufio.NewScanner(resp.Body)
		if !lines.Scan() || lines.Text() != ": connected" {
			t.Fatalf("stream opened with %q", lines.Text())
		}

		// The long poll: it waits four write timeouts for a commit that
		// does not come (nobody writes the scope of a subject without
		// records, and no poke of an earlier commit can wake it), then
		// answers its empty page.
		start := time.Now()
		code, body := srv.post(t, "/v1/tenants/demo/pull", demoToken(t, e, data, "idle"), map[string]any{"waitMs": 2000})
		if code != http.StatusOK || !bytes.Contains(body, []byte(`"logsWithRecords":[]`)) {
			t.Fatalf("long poll: %d %s", code, body)
		}
		if waited := time.Since(start); waited < 2*time.Second {
			t.Fatalf("the long poll answered after %v: it did not wait, so it proves nothing", waited)
		}

		// The stream, open all along, gets the poke of a new commit.
		board := map[string]any{"id": "long-b", "entityType": "Board", "operation": "create",
			"payload":   map[string]any{"id": "long-b", "name": "b", "createdAt": ts, "userId": "long"},
			"createdAt": ts, "tries": 0, "lastError": nil, "synced": false, "syncedAt": nil, "retryable": true, "lastAttemptedAt": nil}
		if code, body := srv.post(t, "/v1/tenants/demo/push", tok, map[string]any{"events": []any{board}}); code != http.StatusOK ||
			!bytes.Contains(body, []byte(`"error":null`)) {
			t.Fatalf("push: %d %s", code, body)
		}
		for lines.Scan() {
			if lines.Text() == "event: poke" {
				return
			}
		}
		t.Errorf("stream ended without a poke: %v", lines.Err())
	})
}

// TestServeMetricsAddress: /metrics names every tenant, so the API
// address serves it only with --public-metrics (the admin address always
// does; see TestServeAdmin).
func TestServeMetricsAddress(t *testing.T) {
	t.Parallel()
	srv := startServe(t, env{}, "--data", t.TempDir())
	if code, body := srv.getBody(t, srv.url+"/metrics"); code != http.StatusNotFound || strings.Contains(body, "syncplane_") {
		t.Errorf("GET /metrics on the API address: %d %.200s", code, body)
	}
	pub := startServe(t, env{"SYNCPLANE_PUBLIC_METRICS": "true"}, "--data", t.TempDir())
	if code, body := pub.getBody(t, pub.url+"/metrics"); code != http.StatusOK || !strings.Contains(body, "syncplane_http_requests_total") {
		t.Errorf("GET /metrics with SYNCPLANE_PUBLIC_METRICS: %d %.200s", code, body)
	}
}

// TestLimitsConfig: the server limits come from the file, the
// environment and the flags (each over the one before), with defaults.
func TestLimitsConfig(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "syncplane.yaml")
	must(t, os.WriteFile(file, []byte("readTimeout: 5s\nwriteTimeout: 1m\nidleTimeout: 2m\nreadHeaderTimeout: 2s\n"+
		"maxHeaderBytes: 8192\nmaxConns: 7\npublicMetrics: true\n"), 0o644))
	fromFile := Config{Addr: ":8080", DataDir: "./data", LogLevel: "info", ReadTimeout: 5 * time.Second, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, ReadHeaderTimeout: 2 * time.Second, MaxHeaderBytes: 8192, MaxConns: 7, PublicMetrics: true}
	tests := map[string]struct {
		file string
		env  env
		want Config
	}{
		"defaults": {want: Config{Addr: ":8080", DataDir: "./data", LogLevel: "info", ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 75 * time.Second, MaxHeaderBytes: 64 << 10}},
		"file": {file: file, want: fromFile},
		"env-over-file": {file: file, env: env{"SYNCPLANE_READ_TIMEOUT": "3s", "SYNCPLANE_MAX_CONNS": "-1", "SYNCPLANE_PUBLIC_METRICS": "false",
			"SYNCPLANE_WRITE_TIMEOUT": "", "SYNCPLANE_IDLE_TIMEOUT": "10s", "SYNCPLANE_MAX_HEADER_BYTES": "4096", "SYNCPLANE_READ_HEADER_TIMEOUT": "1s"},
			want: func() Config {
				c := fromFile
				c.ReadTimeout, c.MaxConns, c.PublicMetrics, c.IdleTimeout, c.MaxHeaderBytes, c.ReadHeaderTimeout = 3*time.Second, -1, false, 10*time.Second, 4096, time.Second
				return c
			}()},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			got, err := loadConfig(tc.file, tc.env.get)
			if err == nil {
				err = checkLimits(&got)
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("case=errors", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			env     env
			args    []string
			wantErr string
		}{
			{env{"SYNCPLANE_READ_TIMEOUT": "soon"}, nil, `SYNCPLANE_READ_TIMEOUT: time: invalid duration "soon"`},
			{env{"SYNCPLANE_MAX_CONNS": "many"}, nil, "SYNCPLANE_MAX_CONNS"},
			{env{"SYNCPLANE_READ_TIMEOUT": "3s"}, []string{"--read-timeout", "-1s"}, "readTimeout must be positive"},
			{nil, []string{"--read-timeout", "1s"}, "readHeaderTimeout (10s) must not exceed readTimeout (1s)"},
			{nil, []string{"--max-header-bytes", "100"}, "maxHeaderBytes must be at least 4096"},
			{nil, []string{"--max-conns", "-2"}, "maxConns must be positive, 0 (automatic) or -1"},
		} {
			_, _, err := runCmd(t, tc.env, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("serve with %v %v: %v, want %q", tc.env, tc.args, err, tc.wantErr)
			}
		}
	})

	t.Run("case=automatic-cap", func(t *testing.T) {
		t.Parallel()
		n := connCap(0)
		if files, ok := openFileLimit(); ok && files*3/4 < defaultMaxConns {
			if want := max(int(files*3/4), 1); n != want {
				t.Errorf("connCap(0) = %d with %d open files, want %d", n, files, want)
			}
		} else if n != defaultMaxConns {
			t.Errorf("connCap(0) = %d, want %d", n, defaultMaxConns)
		}
		if connCap(5) != 5 || connCap(-1) != -1 {
			t.Errorf("connCap(5), connCap(-1) = %d, %d", connCap(5), connCap(-1))
		}
	})
}

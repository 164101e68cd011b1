package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/syncplane/syncplane/sdk/pgscratch"
)

// serverPackage is what --serve builds when no --server-bin is given.
const serverPackage = "github.com/syncplane/syncplane/cmd/syncplane"

// ServeConfig is how syncbench starts a `syncplane serve` of its own.
type ServeConfig struct {
	// Bin is the syncplane executable; empty: BuildServer builds one.
	Bin string
	// PostgresURL, when set, is a PostgreSQL server URL on which a scratch
	// database syncbench_<random> is created for the server (its
	// SYNCPLANE_DATABASE_URL) and dropped afterwards; empty: the embedded
	// SQLite store in the temporary data directory.
	PostgresURL string
	// DatabaseURL, when set instead of PostgresURL, is an existing
	// PostgreSQL database the server uses as it is (neither created nor
	// dropped): how several servers share one database.
	DatabaseURL string
	// DemoKey, when set, is written to <data>/demo.key before the server
	// starts, so that it signs the demo tenant's tokens with this key
	// (another server's Secret) instead of generating one.
	DemoKey []byte
	// LogLevel is the server's SYNCPLANE_LOG_LEVEL; empty: info.
	LogLevel string
	// Env holds more KEY=VALUE settings for the server.
	Env []string
}

// Database names the store: "sqlite" or "postgres".
func (c ServeConfig) Database() string {
	if c.PostgresURL != "" || c.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite"
}

// ServerReport is the server process syncbench ran and its memory.
type ServerReport struct {
	Database string `json:"database"` // sqlite or postgres
	PID      int    `json:"pid"`
	// Resident set size of the server process alone (not its plugins),
	// sampled from /proc/<pid>/status every ~100 ms: when the load started
	// (after startup), its peak during the run, when the load ended, and
	// the kernel's high-water mark (VmHWM, over the process's lifetime).
	RSSStartBytes int64 `json:"rssStartBytes"`
	RSSPeakBytes  int64 `json:"rssPeakBytes"`
	RSSEndBytes   int64 `json:"rssEndBytes"`
	HWMBytes      int64 `json:"hwmBytes"`
	Samples       int   `json:"samples"`
}

// toolchainGo is the go command: the one on PATH, else the toolchain's.
func toolchainGo() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // fallback only
}

// BuildServer builds ./cmd/syncplane (the module's, so the working
// directory must be inside it) into dir and returns the executable's path.
func BuildServer(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "syncplane")
	cmd := exec.CommandContext(ctx, toolchainGo(), "build", "-o", bin, serverPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run syncbench inside the syncplane module, or give --server-bin): %v\n%s",
			serverPackage, err, out)
	}
	return bin, nil
}

// Server is a running `syncplane serve` started by StartServer.
type Server struct {
	URL    string // http://127.0.0.1:<port>
	PID    int
	Data   string // its --data directory
	Secret []byte // the demo tenant's HS256 key, from <data>/demo.key
	DBURL  string // its SYNCPLANE_DATABASE_URL; "" for SQLite
	DB     string // sqlite or postgres

	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error
	logs     *tailLog
	cleanups []func()
	stopOnce sync.Once
}

// StartServer starts `syncplane serve --addr 127.0.0.1:0` on a temporary
// data directory (and a scratch PostgreSQL database with
// cfg.PostgresURL, or the database cfg.DatabaseURL), waits until it serves
// the demo tenant, and reads the demo key it generated (or was given,
// cfg.DemoKey). The caller must Stop it; the process is also
// killed by the kernel if syncbench dies (Pdeathsig).
func StartServer(ctx context.Context, cfg ServeConfig) (s *Server, err error) {
	s = &Server{done: make(chan struct{}), logs: &tailLog{max: 40}, DB: cfg.Database()}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if cfg.PostgresURL != "" && cfg.DatabaseURL != "" {
		return s, errors.New("serve: give a PostgreSQL server (for a scratch database) or a database, not both")
	}
	bin := cfg.Bin
	tmp, err := os.MkdirTemp("", "syncbench-")
	if err != nil {
		return s, err
	}
	s.cleanups = append(s.cleanups, func() { _ = os.RemoveAll(tmp) })
	if bin == "" {
		if bin, err = BuildServer(ctx, tmp); err != nil {
			return s, err
		}
	}
	s.Data = filepath.Join(tmp, "data")
	if cfg.DemoKey != nil {
		if err := os.MkdirAll(s.Data, 0o750); err != nil {
			return s, err
		}
		if err := os.WriteFile(filepath.Join(s.Data, "demo.key"), append(append([]byte(nil), cfg.DemoKey...), '\n'), 0o600); err != nil {
			return s, err
		}
	}
	// The server is syncbench's own, on loopback: its /metrics (goroutines,
	// heap) are read on the API address, which serve leaves off by default.
	env := serverEnv(append([]string{"SYNCPLANE_LOG_LEVEL=" + cmpOr(cfg.LogLevel, "info"), "SYNCPLANE_PUBLIC_METRICS=true"}, cfg.Env...)...)
	switch {
	case cfg.DatabaseURL != "":
		s.DBURL = cfg.DatabaseURL
		env = append(env, "SYNCPLANE_DATABASE_URL="+cfg.DatabaseURL)
	case cfg.PostgresURL != "":
		dbURL, drop, err := createScratchDB(ctx, cfg.PostgresURL)
		if err != nil {
			return s, err
		}
		s.cleanups = append(s.cleanups, drop)
		s.DBURL = dbURL
		env = append(env, "SYNCPLANE_DATABASE_URL="+dbURL)
	}
	s.cmd = exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", s.Data)
	s.cmd.Env = env
	s.cmd.Stdout = io.Discard
	// Its own process group keeps a terminal's ^C away from it (syncbench
	// stops it in order, with SIGTERM); Pdeathsig kills it when syncbench
	// dies without doing so.
	s.cmd.SysProcAttr = childProcAttr()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return s, err
	}
	if err := s.cmd.Start(); err != nil {
		return s, fmt.Errorf("start %s: %w", bin, err)
	}
	s.PID = s.cmd.Process.Pid
	addr := make(chan string, 1)
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		s.logs.scan(stderr, addr) // reads until the process closes stderr
	}()
	go func() {
		<-logsDone
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()

	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-s.done:
		return s, fmt.Errorf("syncplane serve exited (%v) before serving:\n%s", s.waitErr, s.logs)
	case <-deadline.C:
		return s, fmt.Errorf("syncplane serve did not log its address within 60s:\n%s", s.logs)
	case <-ctx.Done():
		return s, ctx.Err()
	}
	if err := waitHealthy(ctx, s.URL, s.done); err != nil {
		return s, fmt.Errorf("%w\n%s", err, s.logs)
	}
	key, err := os.ReadFile(filepath.Join(s.Data, "demo.key"))
	if err != nil {
		return s, fmt.Errorf("demo key: %w", err)
	}
	s.Secret = []byte(strings.TrimSpace(string(key)))
	return s, nil
}

// serverEnv is syncbench's environment without SYNCPLANE_ variables (so
// the server uses what syncbench chose), plus kv.
func serverEnv(kv ...string) []string {
	var out []string
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "SYNCPLANE_") {
			out = append(out, v)
		}
	}
	return append(out, kv...)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func waitHealthy(ctx context.Context, base string, done <-chan struct{}) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(base + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s/healthz: %w", base, err)
		}
		select {
		case <-done:
			return errors.New("syncplane serve exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop ends the server with SIGTERM (SIGKILL after 30 s), then removes
// its data directory and drops its scratch database. It is safe to call
// more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
		for i := len(s.cleanups) - 1; i >= 0; i-- {
			s.cleanups[i]()
		}
	})
}

// Logs is the tail of the server's stderr.
func (s *Server) Logs() string { return s.logs.String() }

// tailLog keeps the last lines of a process's log.
type tailLog struct {
	mu    sync.Mutex
	lines []string
	max   int
}

// scan reads r to its end, sending the "serving" line's address to addr.
func (l *tailLog) scan(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		if !sent && strings.Contains(line, `"serving"`) {
			var m struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "serving" && m.Addr != "" {
				addr <- m.Addr
				sent = true
			}
		}
		l.mu.Lock()
		l.lines = append(l.lines, line)
		if len(l.lines) > l.max {
			l.lines = l.lines[len(l.lines)-l.max:]
		}
		l.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MiB: keep the pipe flowing
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// procStatus reads VmRSS and VmHWM of pid, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return rss, hwm, nil
}

// rssSampler samples a process's RSS every interval until stopped.
type rssSampler struct {
	pid     int
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	start   int64
	peak    int64
	last    int64
	samples int
}

// sampleRSS starts sampling pid (one sample at once).
func sampleRSS(pid int, interval time.Duration) *rssSampler {
	r := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	r.sample()
	r.start = r.last
	go func() {
		defer close(r.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				r.sample()
			}
		}
	}()
	return r
}

func (r *rssSampler) sample() {
	rss, _, err := procStatus(r.pid)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.last, r.peak = rss, max(r.peak, rss)
	r.samples++
	r.mu.Unlock()
}

// current is the last sample.
func (r *rssSampler) current() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// finish takes a last sample, stops and reports.
func (r *rssSampler) finish(db string) *ServerReport {
	close(r.stop)
	<-r.done
	r.sample()
	_, hwm, _ := procStatus(r.pid)
	r.mu.Lock()
	defer r.mu.Unlock()
	return &ServerReport{Database: db, PID: r.pid, RSSStartBytes: r.start, RSSPeakBytes: r.peak,
		RSSEndBytes: r.last, HWMBytes: hwm, Samples: r.samples}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// createScratchDB creates syncbench_<random> on the PostgreSQL server of
// adminURL and returns its URL and a function dropping it.
func createScratchDB(ctx context.Context, adminURL string) (string, func(), error) {
	return pgscratch.Create(ctx, adminURL, "syncbench_", func(err error) { fmt.Fprintf(os.Stderr, "syncbench: %v\n", err) })
}

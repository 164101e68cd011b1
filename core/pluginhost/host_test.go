package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/testkit"
)

// builtPlugin is the test plugin (testdata/plugin), built once by TestMain;
// every test runs its own copy.
var builtPlugin []byte

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if spec := os.Getenv(orphanEnv); spec != "" {
		return orphan(spec)
	}
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Built as a tenant would (cgo when a C compiler is there, which costs
	// address space: glibc thread stacks and malloc arenas). Not with
	// -race, whose shadow memory would not fit any RLIMIT_AS.
	bin := filepath.Join(dir, "plugin")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/plugin")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test plugin: %v\n%s", err, out)
		return 1
	}
	if builtPlugin, err = os.ReadFile(bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// orphanEnv makes the test binary a host that starts a plugin, prints its
// pid and exits without closing anything (TestPluginDiesWithHost).
const orphanEnv = "PLUGINHOST_TEST_ORPHAN"

func orphan(spec string) int {
	path, sum, _ := strings.Cut(spec, " ")
	h := New(Config{Tenant: "acme", Command: path, SHA256: sum}, nil, nil)
	if _, err := h.Validate(context.Background(), "u1", okEvents); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(h.pid())
	return 0
}

// pluginFile is a test's copy of the plugin.
type pluginFile struct {
	path string
	sum  string // sha256 of builtPlugin
}

func newPluginFile(t *testing.T) *pluginFile {
	t.Helper()
	if findPrlimit() == "" {
		t.Skip("prlimit(1) not installed")
	}
	p := &pluginFile{path: filepath.Join(t.TempDir(), "plugin")}
	s := sha256.Sum256(builtPlugin)
	p.sum = hex.EncodeToString(s[:])
	p.write(t, builtPlugin)
	return p
}

// write replaces the executable (rename: no ETXTBSY while it runs).
func (p *pluginFile) write(t *testing.T, b []byte) {
	t.Helper()
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		t.Fatal(err)
	}
}

func (p *pluginFile) setMode(t *testing.T, mode string) {
	t.Helper()
	if err := os.WriteFile(p.path+".mode", []byte(mode), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (p *pluginFile) clearMode(t *testing.T) {
	t.Helper()
	if err := os.Remove(p.path + ".mode"); err != nil {
		t.Fatal(err)
	}
}

// runs is how many times the executable started.
func (p *pluginFile) runs() int {
	b, _ := os.ReadFile(p.path + ".runs")
	return bytes.Count(b, []byte("\n"))
}

func newHost(t *testing.T, p *pluginFile, cfg Config, r Reader) (*Host, *testkit.LockedBuffer) {
	t.Helper()
	logs := &testkit.LockedBuffer{}
	cfg.Tenant, cfg.Command, cfg.SHA256 = "acme", p.path, p.sum
	h := New(cfg, r, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		_ = h.Close()
		if t.Failed() {
			t.Logf("host log:\n%s", logs)
		}
	})
	return h, logs
}

func ev(model, payload string) syncdata.ValidationEvent {
	return syncdata.ValidationEvent{ID: "e-" + model, Model: model, Operation: "create", Key: json.RawMessage(`["k"]`), Payload: json.RawMessage(payload), Scope: "user:u1"}
}

var okEvents = []syncdata.ValidationEvent{ev("Board", `{"name":"a"}`)}

func validate(h *Host, events ...syncdata.ValidationEvent) ([]syncdata.Verdict, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.Validate(ctx, "u1", events)
}

// warmUp makes sure the plugin runs (a start may outlast a short timeout
// on a loaded machine).
func warmUp(t *testing.T, h *Host) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		_, err := validate(h, okEvents...)
		return err
	})
}

// processGone reports whether pid no longer runs (gone or a zombie: in a
// container nobody may reap an orphan).
func processGone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, rest, _ := bytes.Cut(stat, []byte(") "))
	return bytes.HasPrefix(rest, []byte("Z"))
}

func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want one wrapping ErrUnavailable", err)
	}
}

func TestAllowReject(t *testing.T) {
	p := newPluginFile(t)
	h, logs := newHost(t, p, Config{}, nil)

	got, err := validate(h,
		ev("Board", `{"name":"a"}`),
		ev("Board", `{"name":"","reject":"board name must not be empty"}`),
		ev("Todo", `{"title":"t"}`),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []syncdata.Verdict{{Allow: true}, {Allow: false, Message: "board name must not be empty"}, {Allow: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}

	name, version, caps, err := h.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"testplugin", "1.2.3", []string{"read"}}, []any{name, version, caps}); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
	if p.runs() != 1 {
		t.Errorf("started %d times, want 1", p.runs())
	}
	// The plugin's stderr is in the log with the tenant, and a line that
	// would panic go-plugin's parser did not.
	for _, s := range []string{`"tenant":"acme"`, `plugin stderr hello`, `\"@message\":5`} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %s", s)
		}
	}
}

func TestInfoUnimplemented(t *testing.T) {
	p := newPluginFile(t)
	p.setMode(t, "noinfo")
	h, _ := newHost(t, p, Config{}, nil)
	name, version, caps, err := h.Info(context.Background())
	if err != nil || name != "" || version != "" || caps != nil {
		t.Fatalf("Info = %q, %q, %v, %v; want empty and no error", name, version, caps, err)
	}
}

func TestFailureTable(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		setup func(t *testing.T, p *pluginFile)
		// call is the failing call; nil: a normal one.
		call func(t *testing.T, h *Host, p *pluginFile) error
		// check runs after the failure.
		check func(t *testing.T, h *Host, p *pluginFile, logs *testkit.LockedBuffer, err error)
		// fix removes the cause; nil: nothing to remove.
		fix func(t *testing.T, p *pluginFile)
	}{{
		name:  "binary missing",
		setup: func(t *testing.T, p *pluginFile) { _ = os.Remove(p.path) },
		fix:   func(t *testing.T, p *pluginFile) { p.write(t, builtPlugin) },
	}, {
		name:  "wrong checksum",
		setup: func(t *testing.T, p *pluginFile) { p.write(t, append(slices.Clone(builtPlugin), 0)) },
		check: func(t *testing.T, h *Host, p *pluginFile, logs *testkit.LockedBuffer, err error) {
			if !strings.Contains(err.Error(), "checksum mismatch") {
				t.Errorf("err = %v, want a checksum mismatch", err)
			}
			if n := p.runs(); n != 0 {
				t.Errorf("the tampered executable ran %d times", n)
			}
			if !strings.Contains(logs.String(), `"level":"ERROR","msg":"validator plugin checksum mismatch`) {
				t.Errorf("no operator-facing log line")
			}
		},
		fix: func(t *testing.T, p *pluginFile) { p.write(t, builtPlugin) },
	}, {
		name:  "garbage on stdout before the handshake",
		setup: func(t *testing.T, p *pluginFile) { p.setMode(t, "garbage") },
		fix:   func(t *testing.T, p *pluginFile) { p.clearMode(t) },
	}, {
		name:  "exits at start",
		setup: func(t *testing.T, p *pluginFile) { p.setMode(t, "exit") },
		fix:   func(t *testing.T, p *pluginFile) { p.clearMode(t) },
	}, {
		name: "killed (-9) mid-call",
		call: func(t *testing.T, h *Host, p *pluginFile) error {
			go func() {
				for {
					b, err := os.ReadFile(p.path + ".blocked")
					if pid, _ := strconv.Atoi(string(b)); err == nil && pid > 0 {
						_ = syscall.Kill(pid, syscall.SIGKILL)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			_, err := validate(h, ev("Block", `{}`))
			return err
		},
		check: func(t *testing.T, h *Host, p *pluginFile, logs *testkit.LockedBuffer, err error) {
			// Within the backoff, calls fail fast without a start.
			start := time.Now()
			_, err = validate(h, okEvents...)
			wantUnavailable(t, err)
			if !strings.Contains(err.Error(), "next start in") || time.Since(start) > 50*time.Millisecond {
				t.Errorf("call during the backoff: %v after %s, want a fast failure", err, time.Since(start))
			}
		},
	}, {
		name: "hangs past the deadline",
		cfg:  Config{Timeout: 300 * time.Millisecond},
		call: func(t *testing.T, h *Host, p *pluginFile) error {
			warmUp(t, h) // so the deadline meets the handler, not the start
			start := time.Now()
			_, err := validate(h, ev("Hang", `{}`))
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the call took %s, want about the 300ms deadline", d)
			}
			return err
		},
	}, {
		name: "handler returns a gRPC error",
		call: func(t *testing.T, h *Host, p *pluginFile) error {
			_, err := validate(h, ev("Error", `{}`))
			return err
		},
	}, {
		name: "handler panics",
		call: func(t *testing.T, h *Host, p *pluginFile) error {
			_, err := validate(h, ev("Panic", `{}`))
			return err
		},
	}, {
		name: "allocates past its memory limit",
		call: func(t *testing.T, h *Host, p *pluginFile) error {
			// Within the default 1 GiB of address space, 64 MB fit.
			if _, err := validate(h, ev("Alloc", `{"mb":64}`)); err != nil {
				t.Fatalf("64 MB: %v", err)
			}
			_, err := validate(h, ev("Alloc", `{"mb":2048}`))
			return err
		},
	}, {
		name: "wrong number of verdicts",
		call: func(t *testing.T, h *Host, p *pluginFile) error {
			_, err := validate(h, ev("Wrong", `{}`), ev("Board", `{}`))
			return err
		},
		check: func(t *testing.T, h *Host, p *pluginFile, logs *testkit.LockedBuffer, err error) {
			if !strings.Contains(err.Error(), "3 verdicts for 2 events") {
				t.Errorf("err = %v, want it to name the verdict count", err)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPluginFile(t)
			if tt.setup != nil {
				tt.setup(t, p)
			}
			h, logs := newHost(t, p, tt.cfg, nil)
			var err error
			if tt.call != nil {
				err = tt.call(t, h, p)
			} else {
				_, err = validate(h, okEvents...)
			}
			wantUnavailable(t, err)
			t.Logf("error: %v", err)
			if tt.check != nil {
				tt.check(t, h, p, logs, err)
			}
			if tt.fix != nil {
				tt.fix(t, p)
			}
			testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
				got, err := validate(h, okEvents...)
				if err != nil {
					return err
				}
				if !got[0].Allow {
					return fmt.Errorf("verdict %+v", got[0])
				}
				return nil
			})
		})
	}
}

func TestIsolation(t *testing.T) {
	t.Setenv("SYNCPLANE_TEST_SECRET", "hunter2")
	p := newPluginFile(t)
	h, _ := newHost(t, p, Config{MemoryBytes: 1536 << 20, CPUSeconds: 7}, nil)

	got, err := validate(h, ev("Env", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"PATH": true, "MALLOC_ARENA_MAX": true, "SYNCPLANE_VALIDATOR_PLUGIN": true, "PLUGIN_MIN_PORT": true, "PLUGIN_MAX_PORT": true, "PLUGIN_PROTOCOL_VERSIONS": true}
	env := strings.Split(got[0].Message, "\n")
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !allowed[k] {
			t.Errorf("plugin environment has %q", kv)
		}
	}
	if !slices.Contains(env, "PATH=/usr/bin:/bin") || strings.Contains(got[0].Message, "hunter2") {
		t.Errorf("plugin environment = %q", env)
	}

	pid := h.pid()
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("process group of %d = %d, %v; want its own", pid, pgid, err)
	}
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("Max address space         %-20d %-20d bytes", 1536<<20, 1536<<20),
		fmt.Sprintf("Max cpu time              %-20d %-20d seconds", 7, 7),
	} {
		if !strings.Contains(string(limits), want) {
			t.Errorf("limits of the plugin lack %q:\n%s", want, limits)
		}
	}
}

type fakeReader struct {
	mu     sync.Mutex
	scopes [][]string
	wheres []map[string]any
}

// records of the tenant; Find returns those in the scopes it is given.
var records = []struct {
	scope, json string
}{
	{"user:u1", `{"id":"b1","owner":"u1","name":"x"}`},
	{"user:u2", `{"id":"b2","owner":"u1","name":"x"}`},
	{"board:b", `{"id":"b3","owner":"u1","name":"x"}`},
}

func (f *fakeReader) Find(_ context.Context, scopes []string, model string, where map[string]any, limit int) ([]json.RawMessage, error) {
	f.mu.Lock()
	f.scopes, f.wheres = append(f.scopes, scopes), append(f.wheres, where)
	f.mu.Unlock()
	var out []json.RawMessage
	for _, r := range records {
		if model == "Board" && slices.Contains(scopes, r.scope) && len(out) < limit {
			out = append(out, json.RawMessage(r.json))
		}
	}
	return out, nil
}

func (f *fakeReader) Count(ctx context.Context, scopes []string, model string, where map[string]any) (int64, error) {
	recs, err := f.Find(ctx, scopes, model, where, maxFindLimit)
	return int64(len(recs)), err
}

func TestHostReader(t *testing.T) {
	p := newPluginFile(t)
	r := &fakeReader{}
	h, _ := newHost(t, p, Config{}, r)

	read := ev("Read", `{"owner":"u1"}`)
	count := ev("Count", `{"owner":"u1"}`)
	other := ev("Board", `{}`)
	other.Scope = "board:b"
	got, err := validate(h, read, count, other)
	if err != nil {
		t.Fatal(err)
	}
	want := []syncdata.Verdict{
		{Allow: true, Message: records[0].json + "|" + records[2].json},
		{Allow: true, Message: "2"},
		{Allow: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	wantScopes := [][]string{{"board:b", "user:u1"}, {"board:b", "user:u1"}}
	if diff := cmp.Diff(wantScopes, r.scopes); diff != "" {
		t.Errorf("scopes of the reads (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"owner": "u1"}, r.wheres[0]); diff != "" {
		t.Errorf("where (-want +got):\n%s", diff)
	}

	// A read with the previous call's id is refused, and does not reach
	// the Reader.
	got, err = validate(h, ev("Stale", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Message != "error PermissionDenied" {
		t.Errorf("stale read: %q, want PermissionDenied", got[0].Message)
	}
	if len(r.scopes) != 2 {
		t.Errorf("the Reader got %d reads, want 2", len(r.scopes))
	}
	h.calls.mu.Lock()
	open := len(h.calls.m)
	h.calls.mu.Unlock()
	if open != 0 {
		t.Errorf("%d call ids still open", open)
	}
}

func TestConcurrencyBound(t *testing.T) {
	p := newPluginFile(t)
	h, _ := newHost(t, p, Config{MaxConcurrent: 2, Timeout: 5 * time.Second}, nil)

	const n = 6
	var wg sync.WaitGroup
	maxSeen := make([]int, n)
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			got, err := validate(h, ev("Slow", `{}`))
			if err == nil {
				maxSeen[i], err = strconv.Atoi(got[0].Message)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if m := slices.Max(maxSeen); m != 2 {
		t.Errorf("at most %d calls were in flight in the plugin, want 2 (%v)", m, maxSeen)
	}
	if d := time.Since(start); d < 3*150*time.Millisecond {
		t.Errorf("%d calls of 150ms, 2 at a time, took %s", n, d)
	}
}

func TestIdleStopAndLazyRestart(t *testing.T) {
	p := newPluginFile(t)
	h, _ := newHost(t, p, Config{IdleTimeout: 200 * time.Millisecond}, nil)
	if _, err := validate(h, okEvents...); err != nil {
		t.Fatal(err)
	}
	pid := h.pid()
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if !processGone(pid) || h.pid() != 0 {
			return fmt.Errorf("process %d still there", pid)
		}
		return nil
	})
	if _, err := validate(h, okEvents...); err != nil {
		t.Fatal(err)
	}
	if h.pid() == pid || h.pid() == 0 || p.runs() != 2 {
		t.Errorf("pid %d after %d (%d starts), want a new process", h.pid(), pid, p.runs())
	}
}

func TestRecycleAfterTimeouts(t *testing.T) {
	p := newPluginFile(t)
	h, _ := newHost(t, p, Config{Timeout: 300 * time.Millisecond, MaxTimeouts: 2}, nil)
	warmUp(t, h)
	pid := h.pid()
	for i := range 2 {
		_, err := validate(h, ev("Hang", `{}`))
		wantUnavailable(t, err)
		if i == 0 && h.pid() != pid {
			t.Fatalf("recycled after one timeout")
		}
	}
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if !processGone(pid) {
			return fmt.Errorf("process %d still there after 2 timeouts", pid)
		}
		return nil
	})
	if _, err := validate(h, okEvents...); err != nil {
		t.Fatal(err)
	}
	if h.pid() == pid {
		t.Errorf("same process after recycling")
	}
}

func TestClose(t *testing.T) {
	p := newPluginFile(t)
	h, _ := newHost(t, p, Config{}, &fakeReader{})
	if _, err := validate(h, ev("Read", `{}`)); err != nil {
		t.Fatal(err)
	}
	pid := h.pid()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Errorf("process %d alive after Close", pid)
	}
	_, err := validate(h, okEvents...)
	wantUnavailable(t, err)
	if _, _, _, err := h.Info(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Info after Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
}

func TestCloseWhileCallsRun(t *testing.T) {
	p := newPluginFile(t)
	h, _ := newHost(t, p, Config{Timeout: 5 * time.Second}, nil)
	if _, err := validate(h, okEvents...); err != nil {
		t.Fatal(err)
	}
	pid := h.pid()
	errc := make(chan error, 1)
	go func() {
		_, err := validate(h, ev("Hang", `{}`))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	_ = h.Close()
	wantUnavailable(t, <-errc)
	if d := time.Since(start); d > 2*time.Second || !processGone(pid) {
		t.Errorf("Close took %s; process gone: %v", d, processGone(pid))
	}
}

func TestPluginDiesWithHost(t *testing.T) {
	p := newPluginFile(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"="+p.path+" "+p.sum)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("host process: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 0 {
		t.Fatalf("host process printed %q", out)
	}
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if !processGone(pid) {
			return fmt.Errorf("plugin %d outlived its host", pid)
		}
		return nil
	})
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for n := range 12 {
		got = append(got, backoff(n))
	}
	ms := time.Millisecond
	want := []time.Duration{0, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 12800 * ms, 25600 * ms, 30 * time.Second, 30 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	if backoff(1000) != maxBackoff {
		t.Errorf("backoff(1000) = %s", backoff(1000))
	}
}

func TestParseRead(t *testing.T) {
	for _, tt := range []struct {
		model, where string
		ok           bool
	}{
		{"Board", ``, true},
		{"Board", `{"owner":"u1","n":1,"b":true,"z":null}`, true},
		{"", `{}`, false},
		{"Board", `null`, false},
		{"Board", `[1]`, false},
		{"Board", `{"a":{"b":1}}`, false},
		{"Board", `{"a":[1]}`, false},
		{"Board", `{"a":1} x`, false},
		{"Board", `{"a":1}{}`, false},
		{"Board", " {\"a\":1}\n", true},
	} {
		_, err := parseRead(tt.model, tt.where)
		if (err == nil) != tt.ok {
			t.Errorf("parseRead(%q, %q) = %v, want ok=%v", tt.model, tt.where, err, tt.ok)
		}
	}
}

// TestParseReadNumbers: numbers of a where reach the Reader as the text
// the plugin sent, not rounded to a float64 (a BigInt beyond 2^53, a
// Decimal with more digits than a float64 holds).
func TestParseReadNumbers(t *testing.T) {
	const where = `{"big":9007199254740993,"dec":12345678901234567890.123456789,"f":0.30000000000000004}`
	got, err := parseRead("Num", where)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"big": json.Number("9007199254740993"), "dec": json.Number("12345678901234567890.123456789"),
		"f": json.Number("0.30000000000000004")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("where (-want +got):\n%s", diff)
	}
	if b, _ := json.Marshal(got); string(b) != where {
		t.Errorf("where encodes as %s, want %s", b, where)
	}
}

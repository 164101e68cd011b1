package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncplane/syncplane/core/storetest"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	if os.Getenv("SYNCBENCH_TEST_HELPER") == "serve" {
		serveHelper()
		return
	}
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// syncplaneBin builds ./cmd/syncplane once per test binary.
func syncplaneBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "syncbench-test-"); binErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binPath, binErr = BuildServer(ctx, binDir)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serveHelper is the test binary re-executed as a syncbench that starts a
// server, prints its pid and waits to be killed.
func serveHelper() {
	srv, err := StartServer(context.Background(), ServeConfig{Bin: os.Getenv("SYNCBENCH_TEST_BIN")})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("pid", srv.PID)
	select {}
}

// gone reports whether pid has exited (or is a zombie nobody reaped).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "State:") {
			return strings.Contains(line, "Z")
		}
	}
	return false
}

// waitGone waits (generously) for pid to exit.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !gone(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("server process %d is still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeMode(t *testing.T) {
	bin := syncplaneBin(t)
	for _, db := range storetest.Databases(t) {
		t.Run("db="+db.Name, func(t *testing.T) {
			cfg := smallConfig(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := RunServed(ctx, cfg, ServeConfig{Bin: bin, PostgresURL: db.AdminURL})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Verified {
				t.Fatalf("verification failed (%d):\n%s", rep.Verify.Failures, rep.Verify.summary())
			}
			s := rep.Server
			if s == nil {
				t.Fatal("no server report")
			}
			if s.Database != db.Name || s.PID <= 0 || s.Samples < 2 || s.RSSStartBytes <= 0 ||
				s.RSSPeakBytes < s.RSSStartBytes || s.RSSPeakBytes < s.RSSEndBytes || s.HWMBytes < s.RSSPeakBytes {
				t.Errorf("server report %+v", s)
			}
			if c := rep.CPU; c == nil || c.ServerPushMicrosPerEvent <= 0 || c.ServerPullMicrosPerEntry <= 0 {
				t.Errorf("server CPU %+v, want it measured", c)
			} else if _, visible := postgresCPU(); db.Name == "postgres" && visible && (c.PostgresPushMicrosPerEvent <= 0 || c.PostgresPullMicrosPerEntry <= 0) {
				t.Errorf("PostgreSQL CPU %+v, want it measured (its processes are visible)", c)
			}
			if rep.Events != cfg.plan().Events(-1) || rep.Pull.Entries != cfg.plan().Records() {
				t.Errorf("events %d, pulled %d, want %d (a compacted changelog: each record's latest entry)", rep.Events, rep.Pull.Entries, cfg.plan().Records())
			}
			waitGone(t, s.PID) // stopped before RunServed returned
		})
	}
}

// TestServeCommand runs `syncbench --serve --json` and checks its flags.
func TestServeCommand(t *testing.T) {
	bin := syncplaneBin(t)
	var out, errb strings.Builder
	code := run(context.Background(), []string{"--serve", "--server-bin", bin, "--users", "2", "--boards-per-user", "2",
		"--todos-per-board", "3", "--clients", "2", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	var rep Report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil || !rep.Verified || rep.Server == nil || rep.Server.RSSPeakBytes <= 0 {
		t.Fatalf("--json output %s: %v", out.String(), err)
	}
	out.Reset()
	if code := run(context.Background(), []string{"--serve", "--url", "http://127.0.0.1:1"}, &out, &errb); code != 2 {
		t.Fatalf("--serve with --url: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"--serve", "--server-bin", "/nonexistent/syncplane", "--users", "1"}, &out, &errb); code != 2 {
		t.Fatalf("a missing server binary: exit %d, want 2", code)
	}
}

// TestStartServerPostgresScratchDatabase checks the server's database is
// a fresh one, dropped by Stop.
func TestStartServerPostgresScratchDatabase(t *testing.T) {
	pg, ok := storetest.Postgres(t)
	if !ok {
		t.Skip("SYNCPLANE_TEST_DATABASE_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := StartServer(ctx, ServeConfig{Bin: syncplaneBin(t), PostgresURL: pg.AdminURL})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	name := srv.DBURL[strings.LastIndex(srv.DBURL, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	if !strings.HasPrefix(name, "syncbench_") || srv.DB != "postgres" || len(srv.Secret) < 32 {
		t.Fatalf("server %+v", srv)
	}
	conn, err := pgx.Connect(ctx, pg.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exists := func() bool {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	var conns int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&conns); err != nil || conns == 0 {
		t.Errorf("the server has no connection to %s (%d, %v)", name, conns, err)
	}
	if !exists() {
		t.Fatalf("database %s does not exist while the server runs", name)
	}
	srv.Stop()
	waitGone(t, srv.PID)
	if exists() {
		t.Errorf("database %s is still there after Stop", name)
	}
	if _, err := os.Stat(srv.Data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s: %v, want removed", srv.Data, err)
	}
}

// TestServerDiesWithSyncbench kills a syncbench that started a server:
// the kernel takes the server down with it.
func TestServerDiesWithSyncbench(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Its temporary directory (left behind by the kill) is the test's.
	cmd.Env = append(os.Environ(), "SYNCBENCH_TEST_HELPER=serve", "SYNCBENCH_TEST_BIN="+syncplaneBin(t), "TMPDIR="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if gone(pid) {
		t.Fatalf("server %d is not running", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, pid)
}

func TestProcStatus(t *testing.T) {
	rss, hwm, err := procStatus(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("rss %d, hwm %d, %v", rss, hwm, err)
	}
	if _, _, err := procStatus(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}

//go:build unix

package e2e_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestBrowser runs driver.mjs once per database (subtests db=sqlite and
// db=postgres): a page bundling the prisma-idb client generated from the
// demo tenant's schema folder syncs two Chromium contexts through a
// `syncplane serve` built from this tree. The driver prints a table of
// every scenario step (shown with -v, and on failure).
//
// It skips without node, npm or chromium unless
// SYNCPLANE_TEST_REQUIRE_BROWSER=1, and its postgres subtest skips without
// SYNCPLANE_TEST_DATABASE_URL unless SYNCPLANE_TEST_REQUIRE_POSTGRES=1.
// SYNCPLANE_E2E_CHROMIUM names the browser (default: chromium on PATH, or
// /usr/bin/chromium); SYNCPLANE_E2E_SCHEMA another schema folder.
func TestBrowser(t *testing.T) {
	requireBrowser := os.Getenv("SYNCPLANE_TEST_REQUIRE_BROWSER") == "1"
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if requireBrowser {
			t.Fatalf("%s, and SYNCPLANE_TEST_REQUIRE_BROWSER=1", msg)
		}
		t.Skipf("%s: skipping the browser e2e test (set SYNCPLANE_TEST_REQUIRE_BROWSER=1 to fail instead)", msg)
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing("%s not found: the browser e2e test needs Node.js 20+ and npm", tool)
		}
	}
	chromium := findChromium()
	if chromium == "" {
		missing("chromium not found (apt-get install chromium, or set SYNCPLANE_E2E_CHROMIUM)")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root := moduleRoot(t, ctx)
	schema := os.Getenv("SYNCPLANE_E2E_SCHEMA")
	if schema == "" {
		schema = filepath.Join(root, "core", "tenant", "demo", "prisma")
	}
	if err := npmCI(ctx); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "syncplane")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/syncplane")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/syncplane: %v\n%s", err, out)
	}

	run := func(t *testing.T, label, dbURL string) {
		args := []string{"driver.mjs", "--server-bin", bin, "--schema", schema, "--work", t.TempDir(), "--chromium", chromium, "--label", label}
		if dbURL != "" {
			args = append(args, "--database-url", dbURL)
		}
		rctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(rctx, "node", args...)
		cmd.Env = os.Environ()
		// The driver starts syncplane and Chromium: on a timeout, end its
		// whole process group, not only node.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node driver.mjs (db=%s): %v\n%s", label, err, out)
		}
		t.Logf("node driver.mjs (db=%s):\n%s", label, out)
	}

	t.Run("db=sqlite", func(t *testing.T) { run(t, "sqlite", "") })
	t.Run("db=postgres", func(t *testing.T) {
		admin := os.Getenv("SYNCPLANE_TEST_DATABASE_URL")
		if admin == "" {
			if os.Getenv("SYNCPLANE_TEST_REQUIRE_POSTGRES") == "1" {
				t.Fatal("SYNCPLANE_TEST_DATABASE_URL is not set, and SYNCPLANE_TEST_REQUIRE_POSTGRES=1")
			}
			t.Skip("SYNCPLANE_TEST_DATABASE_URL is not set: skipping the PostgreSQL run (set SYNCPLANE_TEST_REQUIRE_POSTGRES=1 to fail instead)")
		}
		dbURL, drop, err := scratchDB(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		defer drop()
		run(t, "postgres", dbURL)
	})
}

func findChromium() string {
	if p := os.Getenv("SYNCPLANE_E2E_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	return ""
}

func moduleRoot(t *testing.T, ctx context.Context) string {
	t.Helper()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod)))
}

// npmCI runs `npm ci` when node_modules does not match package.json and
// package-lock.json (a stamp in node_modules records what it last ran
// for); a lock file keeps concurrent test binaries from installing at once.
func npmCI(ctx context.Context) error {
	lock, err := os.OpenFile(".build.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock .build.lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json", ".npmrc"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	const stamp = "node_modules/.syncplane-stamp"
	if old, err := os.ReadFile(stamp); err == nil && string(old) == sum {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci: %v\n%s", err, out)
	}
	return os.WriteFile(stamp, []byte(sum), 0o644)
}

// scratchDB creates syncplane_e2e_<random> on the PostgreSQL server of
// adminURL and returns its URL and a function dropping it.
func scratchDB(ctx context.Context, adminURL string) (string, func(), error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("SYNCPLANE_TEST_DATABASE_URL: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "syncplane_e2e_" + hex.EncodeToString(b[:])
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create scratch database: %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(dctx, adminURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: drop database %s: %v\n", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: drop database %s: %v\n", name, err)
		}
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

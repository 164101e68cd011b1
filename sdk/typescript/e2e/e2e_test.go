//go:build unix

package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncplane/syncplane/sdk/nodetest"
	"github.com/syncplane/syncplane/sdk/pgscratch"
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
	const requireBrowser = "SYNCPLANE_TEST_REQUIRE_BROWSER"
	nodetest.RequireNode(t, requireBrowser, "the browser e2e test needs Node.js 20+ and npm")
	chromium := findChromium()
	if chromium == "" {
		nodetest.Missing(t, requireBrowser, "chromium not found (apt-get install chromium, or set SYNCPLANE_E2E_CHROMIUM)")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	schema := os.Getenv("SYNCPLANE_E2E_SCHEMA")
	if schema == "" {
		schema = filepath.Join(nodetest.ModuleRoot(t, ctx), "core", "tenant", "demo", "prisma")
	}
	if err := nodetest.Npm(ctx, ".", nodetest.CI()); err != nil {
		t.Fatal(err)
	}
	// Not -race even under `go test -race` (unlike TestKit), as this test
	// has always built it: a race-built server would run the timed
	// scenarios several times slower.
	bin := nodetest.BuildSyncplane(t, ctx, false)

	// The driver starts syncplane and Chromium: on a timeout, RunNode ends
	// its whole process group, not only node.
	run := func(t *testing.T, label, dbURL string) {
		args := []string{"driver.mjs", "--server-bin", bin, "--schema", schema, "--work", t.TempDir(), "--chromium", chromium, "--label", label}
		if dbURL != "" {
			args = append(args, "--database-url", dbURL)
		}
		nodetest.RunNode(t, ctx, 4*time.Minute, nil, args...)
	}

	t.Run("db=sqlite", func(t *testing.T) { run(t, "sqlite", "") })
	t.Run("db=postgres", func(t *testing.T) {
		admin := os.Getenv("SYNCPLANE_TEST_DATABASE_URL")
		if admin == "" {
			nodetest.Missing(t, "SYNCPLANE_TEST_REQUIRE_POSTGRES", "SYNCPLANE_TEST_DATABASE_URL is not set (the PostgreSQL run needs it)")
		}
		dbURL, drop, err := pgscratch.Create(ctx, admin, "syncplane_e2e_", func(err error) { t.Logf("e2e: %v", err) })
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

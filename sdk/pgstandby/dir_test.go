//go:build linux

package pgstandby

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSweepStale removes a directory whose lock nobody holds, and keeps one
// whose lock is held and one without a lock file.
func TestSweepStale(t *testing.T) {
	parent := t.TempDir()
	held, err := os.MkdirTemp(parent, "pgstandby-")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := createLocked(held)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	stale, err := os.MkdirTemp(parent, "pgstandby-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, lockName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	unlocked, err := os.MkdirTemp(parent, "pgstandby-")
	if err != nil {
		t.Fatal(err)
	}

	sweepStale(parent)
	for dir, want := range map[string]bool{held: true, stale: false, unlocked: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(dir), err == nil, want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		sign int
	}{{"15", "9.6", 1}, {"9.6", "15", -1}, {"16", "16", 0}, {"10", "9", 1}} {
		got := compareVersions(c.a, c.b)
		if (got > 0) != (c.sign > 0) || (got < 0) != (c.sign < 0) {
			t.Errorf("compareVersions(%s, %s) = %d", c.a, c.b, got)
		}
	}
}

// TestPortTaken starts a pair whose first port picks are taken: each server
// must move to another port.
func TestPortTaken(t *testing.T) {
	if _, err := findBins(""); err != nil {
		t.Skip(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pickPort = func() (int, error) {
		picks++
		if picks%2 == 1 {
			return busy, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()

	p, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if picks != 4 || p.primary.port == busy || p.standby.port == busy {
		t.Fatalf("%d picks, ports %d and %d, taken %d", picks, p.primary.port, p.standby.port, busy)
	}
	if !strings.Contains(readFrom(p.primary.log, 0), "could not bind") {
		t.Errorf("primary.log does not show the failed bind")
	}
}

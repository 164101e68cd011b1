//go:build linux

package pgstandby

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
)

// requireEnv makes a missing PostgreSQL fail the test rather than skip it
// when it is "1", as for storetest.
const requireEnv = "SYNCPLANE_TEST_REQUIRE_POSTGRES"

// ForTest starts a pair of the test's own (default Options) and closes it
// when the test ends, logging the servers' last log lines first if the test
// failed. Without the server binaries it skips the test, or fails it when
// SYNCPLANE_TEST_REQUIRE_POSTGRES=1; a start that fails otherwise fails the
// test.
func ForTest(t testing.TB) *Pair {
	t.Helper()
	p, err := Start(context.Background(), Options{})
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.logTails(t)
		}
		if err := p.Close(); err != nil {
			t.Errorf("pgstandby: close: %v", err)
		}
	})
	return p
}

// shared is the pair Shared hands out.
var shared struct {
	once sync.Once
	pair *Pair
	err  error
}

// Shared returns the package's shared pair, started by its first call
// (default Options), with ForTest's skipping and failing. The tests that
// use it see each other's tables, so they should use names of their own,
// and a test that pauses replay or stops the standby must undo that before
// it ends (a deferred ResumeReplay, StartStandby) and not run in parallel
// with other users. The pair lives until CloseShared, which TestMain calls
// after m.Run (see the package documentation); without it the servers
// still stop when the test binary exits, but the directory stays until a
// later Start removes it.
func Shared(t testing.TB) *Pair {
	t.Helper()
	shared.once.Do(func() {
		shared.pair, shared.err = Start(context.Background(), Options{})
	})
	if shared.err != nil {
		fail(t, shared.err)
	}
	return shared.pair
}

// CloseShared closes the shared pair, if Shared started one. Call it from
// TestMain once m.Run has returned; Shared must not be called after it.
func CloseShared() error {
	shared.once.Do(func() { shared.err = errClosed }) // no pair after this
	if shared.pair == nil {
		return nil
	}
	return shared.pair.Close()
}

// fail skips t for want of the server binaries (or fails it when
// SYNCPLANE_TEST_REQUIRE_POSTGRES=1), or fails it for any other error.
func fail(t testing.TB, err error) {
	t.Helper()
	switch {
	case !errors.Is(err, ErrUnavailable):
		t.Fatalf("pgstandby: %v", err)
	case os.Getenv(requireEnv) == "1":
		t.Fatalf("pgstandby: %v, and %s=1", err, requireEnv)
	default:
		t.Skipf("pgstandby: %v: skipping (set %s=1 to fail instead)", err, requireEnv)
	}
}

// logTails logs the last lines of the servers' logs.
func (p *Pair) logTails(t testing.TB) {
	t.Helper()
	t.Logf("pgstandby pair in %s:\n%s\n%s", p.dir, tailText(p.primary.log, ""), tailText(p.standby.log, ""))
}

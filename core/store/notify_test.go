package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/store"
)

// TestListen: a committed changelog append notifies every listener once
// per scope with its last id; a rolled back one notifies nobody. goleak
// (TestMain) checks that Listen's connection goroutines end with ctx.
func TestListen(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		if !e.st.Postgres() {
			if err := e.st.Listen(t.Context(), store.Listener{}); err == nil {
				t.Error("Listen on SQLite: no error")
			}
			return
		}
		tn := kanbanTenant(t, e.st, "acme-eu")
		type note struct{ tenant, scope, id string }
		got := make(chan note, 16)
		listening := make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- e.st.Listen(ctx, store.Listener{
				Notify:    func(tn, sc, id string) { got <- note{tn, sc, id} },
				Listening: func() { listening <- struct{}{} },
			})
		}()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Listen = %v", err)
			}
		}()
		<-listening
		rolledBack := errors.New("roll back")
		if err := inTx(t, tn, func(x *store.Tx) error {
			if _, err := x.LockScopes(t.Context(), []string{"w0"}); err != nil {
				return err
			}
			if err := x.AppendChangelog(t.Context(), entries(t, "w0", "", 1, "rb"), map[string]string{"w0": "x"}); err != nil {
				return err
			}
			return rolledBack
		}); !errors.Is(err, rolledBack) {
			t.Fatal(err)
		}
		es := append(entries(t, "w1", "", 2, "e1"), entries(t, "w|2", "", 1, "e2")...)
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		want := map[note]bool{{"acme-eu", "w1", es[1].ID}: true, {"acme-eu", "w|2", es[2].ID}: true}
		for range 2 {
			select {
			case n := <-got:
				if !want[n] {
					t.Errorf("unexpected notification %+v", n)
				}
				delete(want, n)
			case <-time.After(10 * time.Second):
				t.Fatalf("missing notifications %v", want)
			}
		}
		select {
		case n := <-got:
			t.Errorf("unexpected notification %+v", n)
		case <-time.After(50 * time.Millisecond):
		}
	})
}

// TestListenCatchUpAfterReconnect: commits another process makes while the
// listening connection is down notify nobody; after the reconnection
// Listen reads the heads of the subscribed scopes and hands them to
// CatchUp. The connection is killed with pg_terminate_backend, found by
// its application_name, and the test commits while Listen sits in Lost,
// before it reconnects.
func TestListenCatchUpAfterReconnect(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		if !e.st.Postgres() {
			return
		}
		tn := kanbanTenant(t, e.st, "acme-eu")
		other := kanbanTenant(t, e.reopen(t), "acme-eu") // another server process
		before := entries(t, "w1", "", 1, "before")
		listenMust(t, appendEntries(t, tn, before))

		type note struct{ tenant, scope, id string }
		var (
			notes     = make(chan note, 16)
			caught    = make(chan map[string]map[string]string, 4)
			failed    = make(chan string, 4)
			listening = make(chan struct{}, 4)
			lost      = make(chan error, 1)
			resume    = make(chan struct{})
		)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- e.st.Listen(ctx, store.Listener{
				Notify: func(tn, sc, id string) { notes <- note{tn, sc, id} },
				Subscribed: func() map[string][]string {
					// "gone" has no schema: its catch-up fails, the others' does not.
					return map[string][]string{"acme-eu": {"w1", "w2", "w|4"}, "gone": {"x"}}
				},
				CatchUp:       func(tn string, heads map[string]string) { caught <- map[string]map[string]string{tn: heads} },
				CatchUpFailed: func(tn string, err error) { failed <- tn },
				Listening:     func() { listening <- struct{}{} },
				Lost: func(err error) {
					lost <- err
					<-resume // the test commits while nobody listens
				},
			})
		}()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Listen = %v", err)
			}
		}()
		recv := func(what string, ch <-chan map[string]map[string]string) map[string]map[string]string {
			t.Helper()
			select {
			case v := <-ch:
				return v
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s after 10s", what)
				return nil
			}
		}
		// The first connection catches up too: w1 has a commit, w2 and w|4 none.
		if diff := cmp.Diff(map[string]map[string]string{"acme-eu": {"w1": before[0].ID}}, recv("first catch-up", caught)); diff != "" {
			t.Errorf("first catch-up (-want +got):\n%s", diff)
		}
		if tn := <-failed; tn != "gone" {
			t.Errorf("CatchUpFailed(%q), want gone", tn)
		}
		<-listening

		db, err := sql.Open("pgx", e.url)
		listenMust(t, err)
		defer db.Close()
		var killed int
		listenMust(t, db.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND datname = current_database()`, store.ListenApplicationName).Scan(&killed))
		if killed != 1 {
			t.Fatalf("terminated %d listening backends, want 1", killed)
		}
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("Listen did not notice its connection's end after 10s")
		}
		// Commits while the connection is down, through the other process:
		// a subscribed scope, one with a '|' in its key, one nobody waits on.
		w2 := entries(t, "w2", "", 2, "down")
		w4 := entries(t, "w|4", "", 1, "down4")
		listenMust(t, appendEntries(t, other, append(append(w2, w4...), entries(t, "w3", "", 1, "unwatched")...)))
		close(resume)

		want := map[string]map[string]string{"acme-eu": {"w1": before[0].ID, "w2": w2[1].ID, "w|4": w4[0].ID}}
		if diff := cmp.Diff(want, recv("catch-up after the reconnection", caught)); diff != "" {
			t.Errorf("catch-up after the reconnection (-want +got):\n%s", diff)
		}
		<-listening
		select {
		case n := <-notes:
			t.Errorf("a notification of a commit made while nobody listened: %+v", n)
		default:
		}
		// And it listens again.
		after := entries(t, "w2", w2[1].ID, 1, "after")
		listenMust(t, appendEntries(t, other, after))
		select {
		case n := <-notes:
			if n != (note{"acme-eu", "w2", after[0].ID}) {
				t.Errorf("notification after the reconnection: %+v", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no notification after the reconnection")
		}
	})
}

func listenMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

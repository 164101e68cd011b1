package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

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

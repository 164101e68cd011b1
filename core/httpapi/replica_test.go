package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/testkit"
	"github.com/syncplane/syncplane/sdk/pgstandby"
)

// replicaEnv is an env on a fresh database of a real primary with a
// streaming standby of its own (pgstandby), whose servers read pull pages
// from the standby.
func replicaEnv(t *testing.T, opt store.ReplicaOptions) (*env, *pgstandby.Pair) {
	t.Helper()
	pair := pgstandby.ForTest(t)
	db := storetest.DB{Name: "postgres", AdminURL: pair.PrimaryURL()}
	e := &env{t: t, db: db, dir: t.TempDir(), data: t.TempDir()}
	e.dbURL = db.URL(t)
	e.replicas, e.replicaOpt = []string{onStandby(t, e.dbURL, pair.StandbyURL())}, opt
	writeTenant(t, e.dir, "acme", "limits:\n  pullPageMax: 100\n")
	e.url = e.start(t)
	return e, pair
}

// onStandby is database URL dbURL of the primary, on the standby at
// standbyURL (the same databases: it replays the whole cluster).
func onStandby(t *testing.T, dbURL, standbyURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	must(t, err)
	s, err := url.Parse(standbyURL)
	must(t, err)
	u.Host = s.Host
	return u.String()
}

// routed is how many pull pages st read on target for reason.
func routed(t *testing.T, st *store.Store, target, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(st.ReplicaCollectors()...)
	fams, err := reg.Gather()
	must(t, err)
	for _, f := range fams {
		if f.GetName() != "syncplane_pull_pages_routed_total" {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				want := map[string]string{"target": target, "reason": reason}[l.GetName()]
				if l.GetValue() != want {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// onReplica is how many pull pages st read on a replica.
func onReplica(t *testing.T, st *store.Store) float64 {
	t.Helper()
	return routed(t, st, "replica", "caught_up") + routed(t, st, "replica", "waited")
}

// TestReplicaNoSkip is the no-skip stress test (8 writers through two
// server processes, a reader following the cursor through both) with the
// pull pages read from a streaming standby wherever it has caught up.
func TestReplicaNoSkip(t *testing.T) {
	t.Parallel()
	e, _ := replicaEnv(t, store.ReplicaOptions{Interval: 100 * time.Millisecond})
	servers := []string{e.url, e.start(t)}
	for round := range 2 {
		noSkipRound(t, e, servers, "acme", fmt.Sprintf("rs-u%d", round), false)
	}
	noSkipRound(t, e, servers, "acme", "rs-scope", true)
	var onReplica float64
	for _, st := range e.stores {
		onReplica += routed(t, st, "replica", "caught_up") + routed(t, st, "replica", "waited")
	}
	if onReplica == 0 {
		t.Error("no pull page was read from the replica")
	}
	t.Logf("pages read on the replica: %v", onReplica)
}

// TestReplicaPokeThenPull: while the standby replays nothing, a pull that
// follows a committed push (the moment a poke goes out) still returns the
// pushed entry, from the primary; once replay resumes, pages come from the
// replica again. A replica that stays behind past the limit leaves the
// routing and returns once it has caught up.
func TestReplicaPokeThenPull(t *testing.T) {
	t.Parallel()
	e, pair := replicaEnv(t, store.ReplicaOptions{Interval: 50 * time.Millisecond, MaxLag: 2 * time.Second})
	other := e.start(t) // the pulling process is not the pushing one
	st := e.stores[1]
	ctx := context.Background()
	ok(t, e.push(t, "acme", "pk", ev("", "User", "create", user("pk")), ev("", "Board", "create", board("pk-b", "pk", "b"))))
	must(t, pair.WaitCaughtUp(ctx))
	// On a loaded machine a check may take the replica out for a moment:
	// it serves the page once it is back in the routing.
	var first pull.Response
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		before := onReplica(t, st)
		first = pullFrom(t, other, "acme", "pk", map[string]any{})
		if len(first.LogsWithRecords) != 2 || first.Cursor == nil {
			t.Fatalf("first pull: %+v", first)
		}
		if onReplica(t, st) == before {
			return fmt.Errorf("a caught-up replica did not serve the page: %+v", st.Replicas())
		}
		return nil
	})

	must(t, pair.PauseReplay(ctx))
	for i := range 3 {
		res := e.push(t, "acme", "pk", ev("", "Todo", "create", todo(fmt.Sprintf("pk-t%d", i), "pk-b", "t")))
		ok(t, res)
		page := pullFrom(t, other, "acme", "pk", map[string]any{"lastChangelogId": *first.Cursor})
		ids := pageIDs(page)
		if len(ids) == 0 || ids[len(ids)-1] != *res[0].AppliedChangelogID {
			t.Fatalf("pull after push %d while the replica is paused: ids %v, want the last %s", i, ids, *res[0].AppliedChangelogID)
		}
	}
	// Read on the primary because the replica was behind (or, on a
	// loaded machine, already out of the routing for its lag).
	if routed(t, st, "primary", "behind")+routed(t, st, "primary", "no_replica") == 0 {
		t.Error("no page counted as read on the primary because the replica was behind")
	}
	// Behind past MaxLag: out of the routing.
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		ok(t, e.push(t, "acme", "pk", ev("", "Todo", "update", todo("pk-t0", "pk-b", "again"))))
		if r := st.Replicas(); len(r) != 1 || r[0].Up {
			return fmt.Errorf("replica still routed: %+v", r)
		}
		return nil
	})
	t.Logf("paused replica: %+v", st.Replicas())
	noReplica := routed(t, st, "primary", "no_replica")
	all := pullAllWith(t, other, "acme", token(t, "acme", "pk"))
	if len(all) != 5 {
		t.Errorf("pulled %d entries with the replica out, want 5", len(all))
	}
	if routed(t, st, "primary", "no_replica") == noReplica {
		t.Error("pages with the replica out of the routing were not counted as no_replica")
	}

	must(t, pair.ResumeReplay(ctx))
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, testkit.Until("replica back in the routing", func() bool {
		r := st.Replicas()
		return len(r) == 1 && r[0].Up
	}))
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		before := onReplica(t, st)
		if all := pullAllWith(t, other, "acme", token(t, "acme", "pk")); len(all) != 5 {
			t.Fatalf("pulled %d entries after replay resumed, want 5", len(all))
		}
		if onReplica(t, st) == before {
			return fmt.Errorf("the replica serves no page after it caught up: %+v", st.Replicas())
		}
		return nil
	})
}

// TestReplicaFailure: a standby that stops leaves the routing, pulls go
// on from the primary, and it returns by itself once it runs again.
func TestReplicaFailure(t *testing.T) {
	t.Parallel()
	e, pair := replicaEnv(t, store.ReplicaOptions{Interval: 50 * time.Millisecond})
	st := e.stores[0]
	ctx := context.Background()
	ok(t, e.push(t, "acme", "rf", ev("", "User", "create", user("rf")), ev("", "Board", "create", board("rf-b", "rf", "b"))))

	must(t, pair.StopStandby(ctx))
	ok(t, e.push(t, "acme", "rf", ev("", "Todo", "create", todo("rf-t", "rf-b", "t"))))
	if all := e.pullAll(t, "acme", "rf"); len(all) != 3 {
		t.Errorf("pulled %d entries with the standby down, want 3", len(all))
	}
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, testkit.Until("replica out of the routing", func() bool {
		r := st.Replicas()
		return len(r) == 1 && !r[0].Up
	}))
	t.Logf("stopped replica: %+v", st.Replicas())
	if routed(t, st, "primary", "error")+routed(t, st, "primary", "no_replica") == 0 {
		t.Error("no page counted as read on the primary while the standby was down")
	}
	if all := e.pullAll(t, "acme", "rf"); len(all) != 3 {
		t.Errorf("pulled %d entries with the replica out of the routing, want 3", len(all))
	}

	must(t, pair.StartStandby(ctx))
	testkit.Eventually(t, 30*time.Second, 100*time.Millisecond, testkit.Until("replica back in the routing", func() bool {
		r := st.Replicas()
		return len(r) == 1 && r[0].Up
	}))
	testkit.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		before := onReplica(t, st)
		if all := e.pullAll(t, "acme", "rf"); len(all) != 3 {
			t.Fatalf("pulled %d entries after the standby returned, want 3", len(all))
		}
		if onReplica(t, st) == before {
			return fmt.Errorf("the returned replica serves no page: %+v", st.Replicas())
		}
		return nil
	})
}

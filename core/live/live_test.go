package live_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/syncplane/syncplane/core/live"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPokesReachTheirScopesOnly(t *testing.T) {
	t.Parallel()
	h := live.NewHub()
	a := h.Subscribe("acme", []string{"u1", "u2"})
	defer a.Close()
	b := h.Subscribe("beta", []string{"u1"})
	defer b.Close()
	h.Publish(live.Poke{Tenant: "acme", Scope: "u1", ChangelogID: "01"})
	h.Publish(live.Poke{Tenant: "acme", Scope: "u3", ChangelogID: "02"})
	<-a.Ready()
	want := []live.Poke{{Tenant: "acme", Scope: "u1", ChangelogID: "01"}}
	if diff := cmp.Diff(want, a.Take()); diff != "" {
		t.Errorf("acme subscriber (-want +got):\n%s", diff)
	}
	select {
	case <-b.Ready():
		t.Errorf("beta subscriber got %v", b.Take())
	default:
	}
}

func TestSlowSubscriberCoalescesAndNeverBlocks(t *testing.T) {
	t.Parallel()
	h := live.NewHub()
	slow := h.Subscribe("acme", []string{"s1", "s2"})
	defer slow.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.Publish(live.Poke{Tenant: "acme", Scope: fmt.Sprintf("s%d", 1+w%2), ChangelogID: fmt.Sprintf("%04d-%d", i, w)})
			}
		})
	}
	wg.Wait() // nobody read: publishers finished anyway
	<-slow.Ready()
	got := slow.Take()
	want := []live.Poke{{Tenant: "acme", Scope: "s1", ChangelogID: "0999-2"}, {Tenant: "acme", Scope: "s2", ChangelogID: "0999-3"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("coalesced pokes (-want +got):\n%s", diff)
	}
}

func TestCloseReleases(t *testing.T) {
	t.Parallel()
	h := live.NewHub()
	s := h.Subscribe("acme", []string{"u1"})
	ready, stop := h.Tenant("acme").Watch([]string{"u1", "u2"})
	if n := h.Subscribers(); n != 2 {
		t.Fatalf("Subscribers = %d, want 2", n)
	}
	h.Tenant("acme").Notify(map[string]string{"u2": "07"})
	<-ready
	s.SetScopes([]string{"u9"})
	s.Close()
	s.Close()
	stop()
	if n := h.Subscribers(); n != 0 {
		t.Fatalf("Subscribers after Close = %d, want 0", n)
	}
	h.Publish(live.Poke{Tenant: "acme", Scope: "u1", ChangelogID: "08"})
	if got := s.Take(); len(got) != 0 {
		t.Errorf("closed subscription took %v", got)
	}
}

// TestCatchUp: after pokes may have gone unheard, the heads read from the
// database poke exactly the subscribed scopes that moved past what the hub
// announced, once.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	h := live.NewHub()
	a := h.Subscribe("acme", []string{"u1", "u2", "u3"})
	defer a.Close()
	b := h.Subscribe("acme", []string{"u2"})
	defer b.Close()
	h.Publish(live.Poke{Tenant: "acme", Scope: "u1", ChangelogID: "05"})
	h.Publish(live.Poke{Tenant: "acme", Scope: "u2", ChangelogID: "06"})
	<-a.Ready()
	a.Take()
	<-b.Ready()
	b.Take()

	want := map[string][]string{"acme": {"u1", "u2", "u3"}}
	if diff := cmp.Diff(want, h.Subscribed()); diff != "" {
		t.Errorf("Subscribed (-want +got):\n%s", diff)
	}
	// u1 did not move, u2 did, u3 got its first commit, u9 has no subscriber,
	// and beta is another tenant.
	if n := h.CatchUp("acme", map[string]string{"u1": "05", "u2": "09", "u3": "07", "u9": "08"}); n != 2 {
		t.Errorf("CatchUp poked %d scopes, want 2", n)
	}
	h.CatchUp("beta", map[string]string{"u1": "10"})
	<-a.Ready()
	if diff := cmp.Diff([]live.Poke{{Tenant: "acme", Scope: "u2", ChangelogID: "09"}, {Tenant: "acme", Scope: "u3", ChangelogID: "07"}}, a.Take()); diff != "" {
		t.Errorf("a's pokes (-want +got):\n%s", diff)
	}
	<-b.Ready()
	if diff := cmp.Diff([]live.Poke{{Tenant: "acme", Scope: "u2", ChangelogID: "09"}}, b.Take()); diff != "" {
		t.Errorf("b's pokes (-want +got):\n%s", diff)
	}
	// The same heads again (a second reconnect without commits), or an
	// older notification heard late: nothing new.
	if n := h.CatchUp("acme", map[string]string{"u2": "09", "u3": "07"}); n != 0 {
		t.Errorf("second CatchUp poked %d scopes, want 0", n)
	}
	h.Publish(live.Poke{Tenant: "acme", Scope: "u2", ChangelogID: "08"}) // still delivered: Publish never filters
	<-b.Ready()
	b.Take()
	if n := h.CatchUp("acme", map[string]string{"u2": "09"}); n != 0 {
		t.Errorf("CatchUp after an older poke poked %d scopes, want 0", n)
	}
	// A scope that lost its subscribers is forgotten, with what it was told.
	a.Close()
	b.Close()
	if got := h.Subscribed(); len(got) != 0 {
		t.Errorf("Subscribed after Close = %v", got)
	}
	c := h.Subscribe("acme", []string{"u2"})
	defer c.Close()
	if n := h.CatchUp("acme", map[string]string{"u2": "09"}); n != 1 {
		t.Errorf("CatchUp for a new subscriber poked %d scopes, want 1", n)
	}
}

// TestCoalescedCount: pokes merged into a pending one are counted per
// subscription.
func TestCoalescedCount(t *testing.T) {
	t.Parallel()
	h := live.NewHub()
	s := h.Subscribe("acme", []string{"u1", "u2"})
	defer s.Close()
	for _, p := range [][2]string{{"u1", "01"}, {"u1", "02"}, {"u2", "03"}, {"u1", "04"}} {
		h.Publish(live.Poke{Tenant: "acme", Scope: p[0], ChangelogID: p[1]})
	}
	if n := s.Coalesced(); n != 2 {
		t.Errorf("Coalesced = %d, want 2", n)
	}
	<-s.Ready()
	if got := s.Take(); len(got) != 2 || got[0].ChangelogID != "04" {
		t.Errorf("Take = %v", got)
	}
	h.Publish(live.Poke{Tenant: "acme", Scope: "u1", ChangelogID: "05"})
	if n := s.Coalesced(); n != 2 {
		t.Errorf("Coalesced after Take and one poke = %d, want 2", n)
	}
}

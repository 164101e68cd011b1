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

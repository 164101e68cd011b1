package live

import (
	"maps"
	"slices"
	"sync"
)

// Poke says that scope of tenant got a commit whose last changelog id is
// ChangelogID. Clients pull as usual when they get one.
type Poke struct {
	Tenant      string
	Scope       string
	ChangelogID string
}

// Hub fans pokes out to subscribers. Publishing never blocks: a slow
// subscriber's pending pokes are coalesced per scope (the latest id wins),
// so none of its scopes is ever forgotten and memory stays bounded by its
// number of scopes. The zero value is not usable; use NewHub.
type Hub struct {
	mu   sync.RWMutex
	subs map[string]map[string]map[*Subscription]struct{} // tenant → scope → subscribers
	n    int
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[string]map[*Subscription]struct{}{}}
}

// Publish delivers a poke to every subscriber of its tenant and scope.
// Call it after the commit, never inside the transaction.
func (h *Hub) Publish(p Poke) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[p.Tenant][p.Scope] {
		s.offer(p.Scope, p.ChangelogID)
	}
}

// Subscribers reports how many subscriptions are open.
func (h *Hub) Subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.n
}

// Subscribe opens a subscription to the given scopes of tenant. The caller
// must Close it.
func (h *Hub) Subscribe(tenant string, scopes []string) *Subscription {
	s := &Subscription{hub: h, tenant: tenant, ready: make(chan struct{}, 1), pending: map[string]string{}}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	h.index(s, scopes)
	return s
}

// index registers s under scopes; h.mu is held.
func (h *Hub) index(s *Subscription, scopes []string) {
	byScope := h.subs[s.tenant]
	if byScope == nil {
		byScope = map[string]map[*Subscription]struct{}{}
		h.subs[s.tenant] = byScope
	}
	s.scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
	for _, sc := range s.scopes {
		if byScope[sc] == nil {
			byScope[sc] = map[*Subscription]struct{}{}
		}
		byScope[sc][s] = struct{}{}
	}
}

// unindex removes s from its scopes; h.mu is held.
func (h *Hub) unindex(s *Subscription) {
	byScope := h.subs[s.tenant]
	for _, sc := range s.scopes {
		delete(byScope[sc], s)
		if len(byScope[sc]) == 0 {
			delete(byScope, sc)
		}
	}
	if len(byScope) == 0 {
		delete(h.subs, s.tenant)
	}
	s.scopes = nil
}

// Tenant returns the hub as seen by one tenant's services.
func (h *Hub) Tenant(id string) Tenant { return Tenant{hub: h, id: id} }

// Tenant is a hub bound to one tenant: it implements push.Notifier and
// pull.Waiter.
type Tenant struct {
	hub *Hub
	id  string
}

// Notify publishes a poke per scope (scope → last changelog id).
func (t Tenant) Notify(heads map[string]string) {
	for sc, id := range heads {
		t.hub.Publish(Poke{Tenant: t.id, Scope: sc, ChangelogID: id})
	}
}

// Watch returns a channel that becomes ready once one of scopes gets a
// commit after the call, and the function that releases the watch.
func (t Tenant) Watch(scopes []string) (<-chan struct{}, func()) {
	s := t.hub.Subscribe(t.id, scopes)
	return s.Ready(), s.Close
}

// Subscription receives the pokes of some scopes of one tenant.
type Subscription struct {
	hub    *Hub
	tenant string
	scopes []string // guarded by hub.mu
	ready  chan struct{}

	mu      sync.Mutex
	pending map[string]string // scope → latest changelog id not yet taken
	closed  bool
}

// Ready receives a value when pokes are pending; Take them.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the pending pokes, one per scope with its latest id, in
// scope order, and forgets them.
func (s *Subscription) Take() []Poke {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Poke, 0, len(s.pending))
	for _, sc := range slices.Sorted(maps.Keys(s.pending)) {
		out = append(out, Poke{Tenant: s.tenant, Scope: sc, ChangelogID: s.pending[sc]})
	}
	clear(s.pending)
	return out
}

// SetScopes replaces the scopes the subscription follows (the subject's
// pullable scopes changed). Pokes already pending stay.
func (s *Subscription) SetScopes(scopes []string) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	h.unindex(s)
	h.index(s, scopes)
}

// Close releases the subscription; it is safe to call more than once.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	h.unindex(s)
	h.n--
}

func (s *Subscription) offer(scope, id string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if id > s.pending[scope] {
		s.pending[scope] = id
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default: // already signalled
	}
}

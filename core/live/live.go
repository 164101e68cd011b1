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
//
// For every scope that has subscribers the hub remembers the highest id it
// announced, so that CatchUp can tell which scopes moved while pokes were
// not heard.
type Hub struct {
	mu   sync.RWMutex
	subs map[string]map[string]*scopeSubs // tenant → scope → subscribers
	n    int
}

// scopeSubs are the subscribers of one scope and what they were told.
type scopeSubs struct {
	subs map[*Subscription]struct{} // guarded by Hub.mu

	mu        sync.Mutex
	announced string // highest changelog id published to the scope's subscribers
}

// announce records id as published and reports whether it is past what
// was announced before.
func (e *scopeSubs) announce(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if id <= e.announced {
		return false
	}
	e.announced = id
	return true
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[string]*scopeSubs{}}
}

// Publish delivers a poke to every subscriber of its tenant and scope.
// Call it after the commit, never inside the transaction.
func (h *Hub) Publish(p Poke) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	e := h.subs[p.Tenant][p.Scope]
	if e == nil {
		return
	}
	e.announce(p.ChangelogID)
	for s := range e.subs {
		s.offer(p.Scope, p.ChangelogID)
	}
}

// CatchUp pokes the subscribers of tenant's scopes whose head (heads:
// scope → last changelog id, as read from the database) is past the last
// id the hub announced for the scope since it got subscribers. Call it
// when commits may have gone unheard, such as after the PostgreSQL
// listening connection was lost and reestablished: scopes that did not
// move are not poked again. It returns the number of scopes poked.
func (h *Hub) CatchUp(tenant string, heads map[string]string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for sc, id := range heads {
		e := h.subs[tenant][sc]
		if e == nil || id == "" || !e.announce(id) {
			continue
		}
		n++
		for s := range e.subs {
			s.offer(sc, id)
		}
	}
	return n
}

// Subscribed returns the scopes that have subscribers, sorted, by tenant.
func (h *Hub) Subscribed() map[string][]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string][]string, len(h.subs))
	for tn, byScope := range h.subs {
		out[tn] = slices.Sorted(maps.Keys(byScope))
	}
	return out
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
		byScope = map[string]*scopeSubs{}
		h.subs[s.tenant] = byScope
	}
	s.scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
	for _, sc := range s.scopes {
		if byScope[sc] == nil {
			byScope[sc] = &scopeSubs{subs: map[*Subscription]struct{}{}}
		}
		byScope[sc].subs[s] = struct{}{}
	}
}

// unindex removes s from its scopes; h.mu is held. A scope left without
// subscribers is forgotten, with what was announced to it.
func (h *Hub) unindex(s *Subscription) {
	byScope := h.subs[s.tenant]
	for _, sc := range s.scopes {
		if e := byScope[sc]; e != nil {
			delete(e.subs, s)
			if len(e.subs) == 0 {
				delete(byScope, sc)
			}
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

	mu        sync.Mutex
	pending   map[string]string // scope → latest changelog id not yet taken
	coalesced uint64
	closed    bool
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

// Coalesced returns how many pokes so far arrived for a scope that had a
// poke pending already (not yet taken) and were merged into it: what a
// slow subscriber did not get one by one.
func (s *Subscription) Coalesced() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.coalesced
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
	if last, ok := s.pending[scope]; ok {
		s.coalesced++
		if id > last {
			s.pending[scope] = id
		}
	} else {
		s.pending[scope] = id
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default: // already signalled
	}
}

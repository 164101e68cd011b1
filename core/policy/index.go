package policy

import (
	"fmt"
	"slices"
	"sync"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/util"
)

// narrowMax bounds the cache of narrow enforcers: when it holds this many
// it is emptied and starts over.
const narrowMax = 10_000

// index finds the p and g rules that can take part in a decision for a
// subject and its token role, so that Casbin only walks those.
//
// A p rule can only match a request (sub, role, ...) when its subject is *,
// sub itself, the token role, or a role sub holds through g lines in the
// requested scope (the matcher's last term). The roles sub holds in some
// scope are among those reachable from sub over the g lines of every scope,
// so the rules of all those subjects are candidates; Casbin, run over the
// candidates and the g lines leaving sub and its roles, still makes the
// actual decision. Every other rule cannot match, so leaving it out changes
// neither the decision nor the deciding rule (the candidates keep their file
// order).
type index struct {
	// model is the parsed platform model, never given to an enforcer: each
	// narrow enforcer gets a copy.
	model model.Model
	// anyone lists the p rules whose subject is *; bySub the others by
	// subject. Both hold indices into Enforcer.p, in file order.
	anyone []int
	bySub  map[string][]int
	// gByUser lists the g rules by user (indices into Enforcer.g, in file
	// order); roles the distinct roles of those rules by user.
	gByUser map[string][]int
	roles   map[string][]string
	// narrow caches the narrow enforcers per (sub, token role). It is shared
	// by the copies WithoutCache makes; nil builds one for every request.
	narrow *narrowCache
}

func newIndex(m model.Model, p, g []rule) *index {
	x := &index{model: m, bySub: make(map[string][]int), gByUser: make(map[string][]int), roles: make(map[string][]string), narrow: newNarrowCache()}
	for i, r := range p {
		if sub := r.fields[0]; sub == "*" {
			x.anyone = append(x.anyone, i)
		} else {
			x.bySub[sub] = append(x.bySub[sub], i)
		}
	}
	for i, r := range g {
		user, role := r.fields[0], r.fields[1]
		x.gByUser[user] = append(x.gByUser[user], i)
		if !slices.Contains(x.roles[user], role) {
			x.roles[user] = append(x.roles[user], role)
		}
	}
	return x
}

// narrowKey identifies a narrow enforcer.
type narrowKey struct{ sub, role string }

// narrowEnforcer is a Casbin enforcer over the candidate rules of one
// narrowKey; ce is nil when there is no candidate p rule, so that every
// request is denied with no deciding rule.
type narrowEnforcer struct {
	ce *casbin.Enforcer
}

// enforce is Casbin's Enforce on the narrow enforcer.
func (n *narrowEnforcer) enforce(sub, role, scope, model, act string) (bool, error) {
	if n.ce == nil {
		return false, nil
	}
	return n.ce.Enforce(sub, role, scope, model, act)
}

// enforceEx is Casbin's EnforceEx on the narrow enforcer.
func (n *narrowEnforcer) enforceEx(sub, role, scope, model, act string) (bool, []string, error) {
	if n.ce == nil {
		return false, nil, nil
	}
	return n.ce.EnforceEx(sub, role, scope, model, act)
}

// narrowFor returns the narrow enforcer for sub with token role role, from
// the cache or built and cached.
func (e *Enforcer) narrowFor(sub, role string) (*narrowEnforcer, error) {
	key := narrowKey{sub: sub, role: role}
	if n := e.idx.narrow.get(key); n != nil {
		return n, nil
	}
	n, err := e.buildNarrow(sub, role)
	if err != nil {
		return nil, err
	}
	return e.idx.narrow.put(key, n), nil
}

// buildNarrow builds the Casbin enforcer holding the p rules whose subject
// is *, sub, role or a role reachable from sub over the g lines, and the g
// lines whose user is sub or one of those roles.
func (e *Enforcer) buildNarrow(sub, role string) (*narrowEnforcer, error) {
	x := e.idx
	// users: sub and every role reachable from it, whatever the scope.
	users := []string{sub}
	seen := map[string]bool{sub: true}
	for i := 0; i < len(users); i++ {
		for _, r := range x.roles[users[i]] {
			if !seen[r] {
				seen[r] = true
				users = append(users, r)
			}
		}
	}
	subjects := users
	if role != "" && !seen[role] {
		subjects = append(slices.Clip(users), role)
	}
	pIdx := slices.Clone(x.anyone)
	for _, s := range subjects {
		pIdx = append(pIdx, x.bySub[s]...)
	}
	if len(pIdx) == 0 {
		return &narrowEnforcer{}, nil
	}
	slices.Sort(pIdx)
	var gIdx []int
	for _, u := range users {
		gIdx = append(gIdx, x.gByUser[u]...)
	}
	slices.Sort(gIdx)

	pRules := make([][]string, len(pIdx))
	for i, j := range pIdx {
		pRules[i] = e.p[j].fields
	}
	gRules := make([][]string, len(gIdx))
	for i, j := range gIdx {
		gRules[i] = e.g[j].fields
	}
	ce, err := newCasbin(x.model, pRules, gRules)
	if err != nil {
		return nil, err
	}
	return &narrowEnforcer{ce: ce}, nil
}

// newCasbin builds a Casbin enforcer with a copy of m and the rules p and g.
func newCasbin(m model.Model, p, g [][]string) (*casbin.Enforcer, error) {
	ce, err := casbin.NewEnforcer(m.Copy())
	if err != nil {
		return nil, fmt.Errorf("policy: build enforcer: %w", err)
	}
	// Scope patterns in g lines ("g, dana, admin, org-*"): the role holds in
	// every scope the pattern matches. Set before the g lines are added, so
	// that the role manager links each literal scope to the patterns that
	// match it as it goes.
	ce.AddNamedDomainMatchingFunc("g", "keyMatch", util.KeyMatch)
	if len(p) > 0 {
		if ok, err := ce.AddPolicies(p); err != nil || !ok {
			return nil, fmt.Errorf("policy: load p lines: ok=%t: %w", ok, err)
		}
	}
	if len(g) > 0 {
		if ok, err := ce.AddGroupingPolicies(g); err != nil || !ok {
			return nil, fmt.Errorf("policy: load g lines: ok=%t: %w", ok, err)
		}
	}
	return ce, nil
}

// narrowCache remembers the narrow enforcers of one immutable Enforcer. A
// nil cache remembers nothing.
type narrowCache struct {
	mu sync.RWMutex
	m  map[narrowKey]*narrowEnforcer
}

func newNarrowCache() *narrowCache {
	return &narrowCache{m: make(map[narrowKey]*narrowEnforcer)}
}

func (c *narrowCache) get(k narrowKey) *narrowEnforcer {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	n := c.m[k]
	c.mu.RUnlock()
	return n
}

// put caches n under k unless another goroutine got there first, and
// returns the cached enforcer.
func (c *narrowCache) put(k narrowKey, n *narrowEnforcer) *narrowEnforcer {
	if c == nil {
		return n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		return old
	}
	if len(c.m) >= narrowMax {
		clear(c.m)
	}
	c.m[k] = n
	return n
}

// len reports how many narrow enforcers the cache holds.
func (c *narrowCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

package policy

import "sync"

// cacheMax bounds the decision cache: when it holds this many decisions it
// is emptied and starts over.
const cacheMax = 100_000

// decisionKey is everything a decision depends on besides the policy.
type decisionKey struct {
	sub, role, scope, model, act string
}

// decisionCache remembers the decisions of one immutable Enforcer. A nil
// cache remembers nothing.
type decisionCache struct {
	mu sync.RWMutex
	m  map[decisionKey]bool
}

func newDecisionCache() *decisionCache {
	return &decisionCache{m: make(map[decisionKey]bool)}
}

func (c *decisionCache) get(k decisionKey) (allow, hit bool) {
	if c == nil {
		return false, false
	}
	c.mu.RLock()
	allow, hit = c.m[k]
	c.mu.RUnlock()
	return allow, hit
}

func (c *decisionCache) put(k decisionKey, allow bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if len(c.m) >= cacheMax {
		clear(c.m)
	}
	c.m[k] = allow
	c.mu.Unlock()
}

// len reports how many decisions the cache holds.
func (c *decisionCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

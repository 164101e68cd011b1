package policy

import (
	"fmt"
	"testing"
)

// The decision cache never holds more than cacheMax decisions and keeps
// answering right after it starts over.
func TestDecisionCacheBound(t *testing.T) {
	t.Parallel()
	c := newDecisionCache()
	for i := range cacheMax + 10 {
		c.put(decisionKey{sub: fmt.Sprint(i), act: "pull"}, i%2 == 0)
		if n := c.len(); n > cacheMax {
			t.Fatalf("cache holds %d decisions, bound %d", n, cacheMax)
		}
	}
	if n := c.len(); n != 10 {
		t.Errorf("cache holds %d decisions after starting over, want 10", n)
	}
	if allow, hit := c.get(decisionKey{sub: fmt.Sprint(cacheMax + 2), act: "pull"}); !hit || !allow {
		t.Errorf("get = %t, %t; want true, true", allow, hit)
	}
	if _, hit := c.get(decisionKey{sub: "0", act: "pull"}); hit {
		t.Error("a decision from before the reset is still cached")
	}
	var off *decisionCache
	off.put(decisionKey{}, true)
	if _, hit := off.get(decisionKey{}); hit || off.len() != 0 {
		t.Error("a nil cache remembers")
	}
}

// Allow caches its decisions, per token role too; Explain bypasses the cache.
func TestAllowCaches(t *testing.T) {
	t.Parallel()
	e, err := New([]byte("p, *, $self, *, *, allow\np, editor, team-*, *, pull, allow\n"), "c.csv")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ok, _ := e.Allow("u1", nil, "u1", "Todo", ActPull); !ok {
			t.Fatal("u1 denied in u1")
		}
		if ok, _ := e.Allow("u1", map[string]string{"team-1": "editor"}, "team-1", "Todo", ActPull); !ok {
			t.Fatal("token editor denied in team-1")
		}
		if ok, _ := e.Allow("u1", nil, "team-1", "Todo", ActPull); ok {
			t.Fatal("u1 allowed in team-1 without a role")
		}
		if _, _, err := e.Explain("u1", nil, "u2", "Todo", ActPull); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.cache.len(); n != 3 {
		t.Errorf("cache holds %d decisions, want 3", n)
	}
	// requests that cannot match are not cached
	_, _ = e.Allow("", nil, "u1", "Todo", ActPull)
	_, _ = e.Allow("u1", nil, "u1", "Todo", "read")
	if n := e.cache.len(); n != 3 {
		t.Errorf("cache holds %d decisions, want 3", n)
	}
}

// The cache of per-subject enforcers never holds more than narrowMax
// enforcers, keeps the first one built for a key, and a nil cache holds
// none.
func TestNarrowCacheBound(t *testing.T) {
	t.Parallel()
	c := newNarrowCache()
	first := &narrowEnforcer{}
	if got := c.put(narrowKey{sub: "a"}, first); got != first {
		t.Fatal("put returned another enforcer")
	}
	if got := c.put(narrowKey{sub: "a"}, &narrowEnforcer{}); got != first {
		t.Error("a second put replaced the cached enforcer")
	}
	for i := range narrowMax + 10 {
		c.put(narrowKey{sub: fmt.Sprint(i), role: "r"}, &narrowEnforcer{})
		if n := c.len(); n > narrowMax {
			t.Fatalf("cache holds %d enforcers, bound %d", n, narrowMax)
		}
	}
	if n := c.len(); n != 11 {
		t.Errorf("cache holds %d enforcers after starting over, want 11", n)
	}
	var off *narrowCache
	n := &narrowEnforcer{}
	if off.put(narrowKey{}, n) != n || off.get(narrowKey{}) != nil || off.len() != 0 {
		t.Error("a nil cache remembers")
	}
}

// Allow builds one enforcer per subject and token role, holding only the
// rules that can concern them.
func TestNarrowEnforcers(t *testing.T) {
	t.Parallel()
	const pol = "p, *, $self, *, *, allow\np, editor, team-*, *, *, allow\np, viewer, team-*, *, pull, allow\n" +
		"p, lead, *, *, *, allow\np, bob, hq, *, pull, allow\ng, ann, editor, team-1\ng, editor, viewer, *\ng, bob, lead, org-*\n"
	e, err := New([]byte(pol), "n.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		sub, role string
		p, g      int
	}{
		{"ann", "", 3, 2},     // *, editor, viewer through editor
		{"ann", "lead", 4, 2}, // and the token's role
		{"bob", "", 3, 1},     // *, bob, lead
		{"cat", "", 1, 0},     // *
		{"cat", "cat", 1, 0},
	} {
		if _, err := e.Allow(r.sub, map[string]string{"s": r.role}, "s", "Todo", ActPull); err != nil {
			t.Fatal(err)
		}
		n := e.idx.narrow.get(narrowKey{r.sub, r.role})
		if n == nil {
			t.Fatalf("no enforcer cached for %s/%s", r.sub, r.role)
		}
		p, _ := n.ce.GetPolicy()
		g, _ := n.ce.GetGroupingPolicy()
		if len(p) != r.p || len(g) != r.g {
			t.Errorf("%s/%s: enforcer holds %d p and %d g lines, want %d and %d:\n%v\n%v", r.sub, r.role, len(p), len(g), r.p, r.g, p, g)
		}
	}
	if n := e.idx.narrow.len(); n != 5 {
		t.Errorf("%d enforcers cached, want 5", n)
	}

	// no rule can concern a subject without roles: denied, no Casbin
	e, err = New([]byte("p, admin, *, *, *, allow\np, admin, *, Log, delete, deny\ng, ann, admin, *\n"), "none.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"cat", "ann"} {
		allow, lines, err := e.Explain(sub, nil, "s", "Todo", ActPull)
		if ok, _ := e.Allow(sub, nil, "s", "Todo", ActPull); err != nil || ok != allow || allow != (sub == "ann") || (len(lines) == 0) == allow {
			t.Errorf("%s: Allow = %t, Explain = %t, %v, %v", sub, ok, allow, lines, err)
		}
	}
	if n := e.idx.narrow.get(narrowKey{"cat", ""}); n == nil || n.ce != nil {
		t.Errorf("enforcer for cat = %+v, want one without Casbin", n)
	}
}

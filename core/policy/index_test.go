package policy_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/util"

	"github.com/syncplane/syncplane/core/policy"
	"github.com/syncplane/syncplane/policies"
)

// fullCasbin builds a plain Casbin enforcer over the whole policy, the way
// the platform model is meant to be used, as the reference for Allow. It
// also returns the fields of the policy's lines, by line type.
func fullCasbin(t *testing.T, pol []byte) (ce *casbin.Enforcer, p, g [][]string) {
	t.Helper()
	seen := map[string]bool{}
	for _, raw := range strings.Split(string(pol), "\n") {
		text := strings.TrimSpace(raw)
		if text == "" || strings.HasPrefix(text, "#") || seen[text] {
			continue
		}
		seen[text] = true
		fields := strings.Split(text, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if fields[0] == "p" {
			p = append(p, fields[1:])
		} else {
			g = append(g, fields[1:])
		}
	}
	m, err := model.NewModelFromString(policies.Model())
	if err != nil {
		t.Fatal(err)
	}
	if ce, err = casbin.NewEnforcer(m); err != nil {
		t.Fatal(err)
	}
	ce.AddNamedDomainMatchingFunc("g", "keyMatch", util.KeyMatch)
	if _, err := ce.AddPolicies(p); err != nil {
		t.Fatal(err)
	}
	if len(g) > 0 {
		if _, err := ce.AddGroupingPolicies(g); err != nil {
			t.Fatal(err)
		}
	}
	return ce, p, g
}

// randomPolicy generates a policy of about 500 lines: users and roles,
// roles holding other roles (a cycle, and a chain longer than Casbin's
// hierarchy limit of 10), literal and pattern scopes in g and p lines,
// $self, model patterns, action wildcards, allow and deny lines, subjects
// named like a role or *.
func randomPolicy(r *rand.Rand) []byte {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	user := func() string { return fmt.Sprintf("u%d", r.IntN(40)) }
	role := func() string { return fmt.Sprintf("r%d", r.IntN(16)) }
	scope := func() string {
		return pick(fmt.Sprintf("team-%d", r.IntN(8)), fmt.Sprintf("org-%d", r.IntN(4)), "team-*", "org-1*", "org-*", "*", "hq")
	}
	var b strings.Builder
	b.WriteString("p, *, $self, *, *, allow\n")
	// chain r0 -> r1 -> ... -> r15 in every scope, and a cycle r15 -> r3
	for i := range 15 {
		fmt.Fprintf(&b, "g, r%d, r%d, *\n", i, i+1)
	}
	b.WriteString("g, r15, r3, team-*\n")
	for range 120 {
		u := user()
		if r.IntN(5) == 0 {
			u = role()
		}
		fmt.Fprintf(&b, "g, %s, %s, %s\n", u, role(), scope())
	}
	for range 360 {
		sub := pick("*", user(), role(), role(), role(), "ghost")
		sc := scope()
		if r.IntN(8) == 0 {
			sc = policy.Self
		}
		obj := pick("*", "M*", fmt.Sprintf("M%d", r.IntN(6)), fmt.Sprintf("M%d", r.IntN(6)), "Audit")
		act := pick("*", "create", "update", "delete", "pull")
		eft := "allow"
		if r.IntN(4) == 0 {
			eft = "deny"
		}
		fmt.Fprintf(&b, "p, %s, %s, %s, %s, %s\n", sub, sc, obj, act, eft)
	}
	return []byte(b.String())
}

// vocab collects the names a policy uses, for random requests: subjects
// (g users and roles, p subjects), scopes (patterns both as written and
// expanded) and models.
func vocab(r *rand.Rand, p, g [][]string) (subs, scopes, models []string) {
	add := func(s *[]string, v string) {
		*s = append(*s, v)
		if prefix, ok := strings.CutSuffix(v, "*"); ok {
			*s = append(*s, prefix+"x", prefix+fmt.Sprint(r.IntN(20)))
			if prefix != "" {
				*s = append(*s, prefix)
			}
		}
	}
	for _, l := range g {
		add(&subs, l[0])
		add(&subs, l[1])
		add(&scopes, l[2])
	}
	for _, l := range p {
		add(&subs, l[0])
		add(&scopes, l[1])
		add(&models, l[2])
	}
	subs = append(subs, "nobody", "u7", "r0")
	scopes = append(scopes, "elsewhere", "team-1", "org-12")
	models = append(models, "Other", "M1")
	for _, s := range []*[]string{&subs, &scopes, &models} {
		slices.Sort(*s)
		*s = slices.Compact(*s)
	}
	return subs, scopes, models
}

// checkSameAsFullCasbin compares Allow and Explain with a full Casbin
// enforcer for n random requests.
func checkSameAsFullCasbin(t *testing.T, pol []byte, name string, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(42, uint64(len(pol))))
	ref, p, g := fullCasbin(t, pol)
	e, err := policy.New(pol, name)
	if err != nil {
		t.Fatal(err)
	}
	cold := policy.WithoutCaches(e)
	subs, scopes, models := vocab(r, p, g)
	allowed := 0
	for i := range n {
		sub := subs[r.IntN(len(subs))]
		scope := scopes[r.IntN(len(scopes))]
		if scope == policy.Self && r.IntN(2) == 0 {
			scope = sub
		}
		var tokenRole string
		var roles map[string]string
		if r.IntN(3) == 0 {
			tokenRole = subs[r.IntN(len(subs))]
			roles = map[string]string{scope: tokenRole}
		} else if r.IntN(4) == 0 {
			roles = map[string]string{"other-scope": subs[r.IntN(len(subs))]}
		}
		mdl := models[r.IntN(len(models))]
		act := allActs[r.IntN(len(allActs))]
		want, rule, err := ref.EnforceEx(sub, tokenRole, scope, mdl, act)
		if err != nil {
			t.Fatal(err)
		}
		if want {
			allowed++
		}
		req := fmt.Sprintf("#%d sub=%s token-role=%q scope=%s model=%s act=%s", i, sub, tokenRole, scope, mdl, act)
		// cached decision, then the decision cache, then (for a sample, as
		// it builds a Casbin enforcer each time) neither cache
		for j, e := range []*policy.Enforcer{e, e, cold} {
			if j == 2 && i%8 != 0 {
				break
			}
			got, err := e.Allow(sub, roles, scope, mdl, act)
			if err != nil {
				t.Fatalf("%s: Allow: %v", req, err)
			}
			if got != want {
				t.Fatalf("%s: Allow (%d) = %t, full Casbin %t", req, j, got, want)
			}
		}
		got, lines, err := e.Explain(sub, roles, scope, mdl, act)
		if err != nil {
			t.Fatalf("%s: Explain: %v", req, err)
		}
		if got != want {
			t.Fatalf("%s: Explain = %t, full Casbin %t", req, got, want)
		}
		var gotRule string
		if len(lines) > 0 {
			gotRule = strings.Join(strings.Split(lines[0].Text, ",")[1:], ",")
		}
		if norm(gotRule) != strings.Join(rule, ",") {
			t.Fatalf("%s: Explain's deciding line %v, full Casbin's rule %q", req, lines, rule)
		}
	}
	t.Logf("%s: %d requests, %d allowed", name, n, allowed)
	if allowed == 0 || allowed == n {
		t.Errorf("%s: %d of %d requests allowed; the requests do not exercise the policy", name, allowed, n)
	}
}

// norm removes the blanks around the fields of a policy line.
func norm(text string) string {
	fields := strings.Split(text, ",")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return strings.Join(fields, ",")
}

// Allow, which hands Casbin only the rules that can concern the subject and
// its token role, decides exactly as Casbin does over the whole policy, and
// Explain reports the same deciding rule.
func TestIndexedSameAsFullCasbin(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	pols := map[string][]byte{
		"random.csv":  randomPolicy(rand.New(rand.NewPCG(1, 2))),
		"default.csv": policies.DefaultPolicy(),
		"team.csv":    []byte(teamPolicy),
	}
	for _, de := range entries {
		if strings.HasSuffix(de.Name(), ".csv") {
			b, err := os.ReadFile(filepath.Join(examplesDir, de.Name()))
			if err != nil {
				t.Fatal(err)
			}
			pols[de.Name()] = b
		}
	}
	if len(pols) < 7 {
		t.Fatalf("found %d policies, want the examples too", len(pols))
	}
	for name, pol := range pols {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkSameAsFullCasbin(t, pol, name, 4000)
		})
	}
}

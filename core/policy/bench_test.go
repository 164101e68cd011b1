package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/policy"
)

// bigPolicy generates a 10,001-line policy: the $self line, 2,000 g lines
// (users u0…u1999, each with one of 20 roles in one of 400 team scopes) and
// 8,000 p lines (each role allowed or denied on models and actions across
// the team scopes, plus org-* patterns).
func bigPolicy() []byte {
	var b strings.Builder
	b.WriteString("p, *, $self, *, *, allow\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "g, u%d, role%d, team-%d\n", i, i%20, i%400)
	}
	acts := []string{"create", "update", "delete", "pull", "*"}
	for i := range 8000 {
		switch {
		case i%40 == 39:
			fmt.Fprintf(&b, "p, role%d, org-%d*, Model%d, %s, deny\n", i%20, i%50, i%30, acts[i%5])
		case i%10 == 9:
			fmt.Fprintf(&b, "p, role%d, org-%d*, *, %s, allow\n", i%20, i%50, acts[i%5])
		default:
			fmt.Fprintf(&b, "p, role%d, team-%d, Model%d, %s, allow\n", i%20, i%400, i%30, acts[i%5])
		}
	}
	return []byte(b.String())
}

// typicalRequests are the requests of a sync server: a subject pushing and
// pulling in its own scope and in the team scopes its roles reach.
func typicalRequests() [][4]string {
	var reqs [][4]string
	for i := range 64 {
		u := fmt.Sprintf("u%d", i*31%2000)
		team := fmt.Sprintf("team-%d", i*31%2000%400)
		model := fmt.Sprintf("Model%d", i%30)
		reqs = append(reqs,
			[4]string{u, u, model, "create"},
			[4]string{u, team, model, "update"},
			[4]string{u, team, model, "pull"},
			[4]string{u, "org-7", model, "delete"},
		)
	}
	return reqs
}

// BenchmarkAllow10k measures a decision with the 10,001-line policy:
// cold (every request decided by Casbin, over the rules for its subject),
// warm (from the cache) and first (no cache at all: Casbin's enforcer for
// the subject is built for every request, as for a subject's first one).
func BenchmarkAllow10k(b *testing.B) {
	warm, err := policy.New(bigPolicy(), "big.csv")
	if err != nil {
		b.Fatal(err)
	}
	reqs := typicalRequests()
	for name, e := range map[string]*policy.Enforcer{
		"cache=cold": policy.WithoutCache(warm), "cache=warm": warm, "cache=none": policy.WithoutCaches(warm),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := reqs[i%len(reqs)]
				if _, err := e.Allow(r[0], nil, r[1], r[2], r[3]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("cache=warm/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				r := reqs[i%len(reqs)]
				if _, err := warm.Allow(r[0], nil, r[1], r[2], r[3]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
}

// BenchmarkExplain10k measures Explain, which never uses the cache, on the
// 10,000-line policy.
func BenchmarkExplain10k(b *testing.B) {
	e, err := policy.New(bigPolicy(), "big.csv")
	if err != nil {
		b.Fatal(err)
	}
	reqs := typicalRequests()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		if _, _, err := e.Explain(r[0], nil, r[1], r[2], r[3]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

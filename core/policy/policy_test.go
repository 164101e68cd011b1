package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/policy"
	"github.com/syncplane/syncplane/policies"
)

var allActs = []string{policy.ActCreate, policy.ActUpdate, policy.ActDelete, policy.ActPull}

type request struct {
	sub, scope, model, act string
}

func (r request) String() string {
	return fmt.Sprintf("sub=%s/scope=%s/model=%s/act=%s", r.sub, r.scope, r.model, r.act)
}

func checkAll(t *testing.T, e *policy.Enforcer, want map[request]bool) {
	t.Helper()
	for req, allow := range want {
		t.Run(req.String(), func(t *testing.T) {
			t.Parallel()
			got, err := e.Allow(req.sub, nil, req.scope, req.model, req.act)
			if err != nil {
				t.Fatalf("Allow: %v", err)
			}
			if got != allow {
				t.Errorf("Allow = %t, want %t", got, allow)
			}
		})
	}
}

func TestDefaultPolicyMatrix(t *testing.T) {
	t.Parallel()
	e := policy.Default()
	want := map[request]bool{}
	for _, act := range allActs {
		for _, model := range []string{"User", "Todo", "Board"} {
			want[request{"u1", "u1", model, act}] = true
			want[request{"u2", "u2", model, act}] = true
			want[request{"u1", "u2", model, act}] = false
			want[request{"u2", "u1", model, act}] = false
			want[request{"", "u1", model, act}] = false
			want[request{"", "", model, act}] = false
			want[request{"u1", "", model, act}] = false
			want[request{"u1", "*", model, act}] = false
			want[request{"u1", "u1x", model, act}] = false
			want[request{"u1", "$self", model, act}] = false
		}
		want[request{"u1", "u1", "", act}] = false
	}
	checkAll(t, e, want)
}

func TestEmbeddedDefaultParses(t *testing.T) {
	t.Parallel()
	if _, err := policy.New(policies.DefaultPolicy(), "default.csv"); err != nil {
		t.Fatalf("embedded default policy: %v", err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Default panicked: %v", r)
		}
	}()
	_ = policy.Default()
}

func TestAllowUnknownAction(t *testing.T) {
	t.Parallel()
	e := policy.Default()
	for _, act := range []string{"", "*", "read", "Create"} {
		t.Run("act="+act, func(t *testing.T) {
			t.Parallel()
			ok, err := e.Allow("u1", nil, "u1", "Todo", act)
			if err == nil || ok {
				t.Fatalf("Allow(act=%q) = %t, %v; want false and an error", act, ok, err)
			}
		})
	}
}

const teamPolicy = `
# everyone owns their own scope
p, *, $self, *, *, allow

# roles per scope
p, role:editor, team-*, *, *, allow
p, role:viewer, team-*, *, pull, allow
g, alice, role:editor, team-42
g, bob, role:viewer, team-42
g, carol, role:editor, team-7

# organisation scopes: admins everything, but nobody deletes audit logs
p, admin, org-*, *, *, allow
p, *, org-*, AuditLog, delete, deny

# a banned user may not even touch their own scope
p, mallory, *, *, *, deny
`

func TestCustomPolicy(t *testing.T) {
	t.Parallel()
	e, err := policy.New([]byte(teamPolicy), "team.csv")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := map[request]bool{
		// roles per scope
		{"alice", "team-42", "Board", "create"}: true,
		{"alice", "team-42", "Board", "delete"}: true,
		{"alice", "team-7", "Board", "pull"}:    false, // editor only in team-42
		{"bob", "team-42", "Board", "pull"}:     true,
		{"bob", "team-42", "Board", "update"}:   false, // viewer
		{"carol", "team-7", "Board", "update"}:  true,
		{"carol", "team-42", "Board", "pull"}:   false,
		{"dave", "team-42", "Board", "pull"}:    false, // no role
		// a role name is not a scope grant by itself
		{"alice", "role:editor", "Board", "pull"}: false,
		// $self still holds
		{"alice", "alice", "Todo", "create"}: true,
		{"alice", "bob", "Todo", "pull"}:     false,
		// org-* wildcard
		{"admin", "org-1", "Invoice", "update"}: true,
		{"admin", "org-99", "Invoice", "pull"}:  true,
		{"admin", "team-42", "Invoice", "pull"}: false,
		{"admin", "orgx", "Invoice", "pull"}:    false,
		{"alice", "org-1", "Invoice", "pull"}:   false,
		// deny beats allow
		{"admin", "org-1", "AuditLog", "delete"}: false,
		{"admin", "org-1", "AuditLog", "pull"}:   true,
		{"mallory", "mallory", "Todo", "pull"}:   false,
		{"mallory", "team-42", "Todo", "pull"}:   false,
	}
	checkAll(t, e, want)
}

func TestDenyBeatsAllow(t *testing.T) {
	t.Parallel()
	for name, pol := range map[string]string{
		"deny-last":  "p, u1, $self, *, *, allow\np, u1, u1, Todo, delete, deny\n",
		"deny-first": "p, u1, u1, Todo, delete, deny\np, u1, $self, *, *, allow\n",
		"wildcards":  "p, *, *, *, *, allow\np, *, *, *, delete, deny\n",
	} {
		t.Run("order="+name, func(t *testing.T) {
			t.Parallel()
			e, err := policy.New([]byte(pol), name+".csv")
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if ok, _ := e.Allow("u1", nil, "u1", "Todo", "delete"); ok {
				t.Errorf("delete allowed despite deny line")
			}
			if ok, _ := e.Allow("u1", nil, "u1", "Todo", "update"); !ok {
				t.Errorf("update denied, want allowed")
			}
		})
	}
}

func TestNewRefusesMalformed(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		policy string
		want   []string // substrings of the error, in order
		lines  []int
	}{
		"empty":         {"", []string{"bad.csv: policy has no p lines"}, []int{0}},
		"only-comments": {"# nothing\n\n   \n# here\n", []string{"bad.csv: policy has no p lines"}, []int{0}},
		"only-g":        {"g, alice, editor, team-1\n", []string{"no p lines"}, []int{0}},
		"few-fields":    {"# c\np, u1, u1, *, *\n", []string{"bad.csv:2: p line needs 5 fields"}, []int{2}},
		"many-fields":   {"p, u1, u1, *, *, allow, extra\n", []string{"bad.csv:1: p line needs 5 fields"}, []int{1}},
		"bad-effect":    {"p, *, $self, *, *, permit\n", []string{`bad.csv:1: unknown effect "permit"`}, []int{1}},
		"bad-act":       {"p, *, $self, *, *, allow\n\np, *, $self, *, read, allow\n", []string{`bad.csv:3: unknown action "read"`}, []int{3}},
		"act-pattern":   {"p, *, $self, *, c*, allow\n", []string{`unknown action "c*"`}, []int{1}},
		"empty-field":   {"p, *, , *, *, allow\n", []string{"bad.csv:1: field 3 is empty"}, []int{1}},
		"unknown-type":  {"p, *, $self, *, *, allow\nq, a, b\n", []string{`bad.csv:2: unknown line type "q"`}, []int{2}},
		"g-fields":      {"p, *, $self, *, *, allow\ng, alice, editor\n", []string{"bad.csv:2: g line needs 3 fields"}, []int{2}},
		"g-user-star":   {"p, *, $self, *, *, allow\ng, *, editor, team-1\n", []string{"bad.csv:2: g line: user and role are literal names"}, []int{2}},
		"g-role-star":   {"p, *, $self, *, *, allow\ng, alice, edit*, team-1\n", []string{"bad.csv:2: g line: user and role are literal names"}, []int{2}},
		"g-self":        {"p, *, $self, *, *, allow\ng, alice, editor, $self\n", []string{"bad.csv:2: g line: $self is only valid in the scope field of a p line"}, []int{2}},
		"g-self-user":   {"p, *, $self, *, *, allow\ng, $self, editor, team-1\n", []string{"bad.csv:2: g line: $self"}, []int{2}},
		"g-mid-star":    {"p, *, $self, *, *, allow\ng, alice, editor, org-*-eu\n", []string{`bad.csv:2: pattern "org-*-eu": * may only end a pattern`}, []int{2}},
		"p-mid-star":    {"p, *, org-*-eu, *, *, allow\n", []string{`bad.csv:1: pattern "org-*-eu"`}, []int{1}},
		"p-model-star":  {"p, *, $self, *Log, *, allow\n", []string{`bad.csv:1: pattern "*Log"`}, []int{1}},
		"p-sub-pattern": {"p, user-*, $self, *, *, allow\n", []string{`bad.csv:1: subject "user-*"`}, []int{1}},
		"self-sub":      {"p, $self, $self, *, *, allow\n", []string{"bad.csv:1: $self is only valid in the scope field"}, []int{1}},
		"quoted":        {"p, \"u1\", $self, *, *, allow\n", []string{"bad.csv:1: field 2"}, []int{1}},
		"several": {
			"p, *, $self, *, *, allow\np, a\np, *, $self, *, *, maybe\n",
			[]string{"bad.csv:2: p line needs 5 fields", `bad.csv:3: unknown effect "maybe"`},
			[]int{2, 3},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			e, err := policy.New([]byte(tc.policy), "bad.csv")
			if err == nil {
				t.Fatalf("New succeeded (%v), want error", e)
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q does not contain %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
			var lines []int
			collectLines(err, &lines)
			if fmt.Sprint(lines) != fmt.Sprint(tc.lines) {
				t.Errorf("LineError lines = %v, want %v", lines, tc.lines)
			}
		})
	}
}

func collectLines(err error, lines *[]int) {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			collectLines(e, lines)
		}
		return
	}
	var le *policy.LineError
	if errors.As(err, &le) {
		*lines = append(*lines, le.Line)
	}
}

func TestNewAcceptsDuplicatesAndFormatting(t *testing.T) {
	t.Parallel()
	pol := "\r\n  # indented comment\r\np,*,$self,*,*,allow\r\n p , * , $self , * , * , allow \n\tg, a, r, s\ng, a, r, s\n"
	e, err := policy.New([]byte(pol), "fmt.csv")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if ok, err := e.Allow("u1", nil, "u1", "Todo", "pull"); err != nil || !ok {
		t.Fatalf("Allow = %t, %v; want true", ok, err)
	}
}

func TestAllowConcurrent(t *testing.T) {
	t.Parallel()
	e, err := policy.New([]byte(teamPolicy), "team.csv")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				sub := fmt.Sprintf("u%d", (g+i)%5)
				scope := fmt.Sprintf("u%d", i%5)
				act := allActs[i%len(allActs)]
				got, err := e.Allow(sub, nil, scope, "Todo", act)
				if err != nil {
					errs <- err
					return
				}
				if want := sub == scope; got != want {
					errs <- fmt.Errorf("Allow(%s, %s, Todo, %s) = %t, want %t", sub, scope, act, got, want)
					return
				}
				if ok, _ := e.Allow("alice", nil, "team-42", "Board", act); !ok {
					errs <- fmt.Errorf("alice denied in team-42")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkAllow measures a decision with the default policy, from many
// goroutines at once.
func BenchmarkAllow(b *testing.B) {
	warm := policy.Default()
	for name, e := range map[string]*policy.Enforcer{"cache=cold": policy.WithoutCache(warm), "cache=warm": warm} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					scope := "u1"
					if i%2 == 1 {
						scope = "u2"
					}
					if _, err := e.Allow("u1", nil, scope, "Todo", policy.ActCreate); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

func TestExplainLines(t *testing.T) {
	t.Parallel()
	const pol = "# line 1: a comment\r\n" + // 1
		"\n" + // 2
		"p, *, $self, *, *, allow\r\n" + // 3
		"  p, editor, team-*, *, pull, allow  \n" + // 4
		"p, *, $self, *, *, allow\n" + // 5: repeats line 3
		"g, ann, editor, team-1\n" + // 6
		"g, ann, editor, team-*\n" + // 7
		"g, ann, viewer, team-1\n" + // 8
		"# deny wins\n" + // 9
		"p, editor, team-9, *, pull, deny\n" + // 10
		"p, *, *, Log, *, deny\n" // 11
	e, err := policy.New([]byte(pol), "ex.csv")
	if err != nil {
		t.Fatal(err)
	}
	line := func(n int, text string) policy.Line { return policy.Line{File: "ex.csv", Line: n, Text: text} }
	tests := []struct {
		sub, scope, model, act string
		roles                  map[string]string
		allow                  bool
		lines                  []policy.Line
	}{
		{"ann", "ann", "Todo", "update", nil, true, []policy.Line{line(3, "p, *, $self, *, *, allow")}},
		// both g lines that give ann the role in team-1, in file order
		{"ann", "team-1", "Todo", "pull", nil, true, []policy.Line{
			line(4, "p, editor, team-*, *, pull, allow"), line(6, "g, ann, editor, team-1"), line(7, "g, ann, editor, team-*"),
		}},
		{"ann", "team-2", "Todo", "pull", nil, true, []policy.Line{line(4, "p, editor, team-*, *, pull, allow"), line(7, "g, ann, editor, team-*")}},
		{"ann", "team-2", "Todo", "update", nil, false, nil},
		{"ann", "team-9", "Todo", "pull", nil, false, []policy.Line{line(10, "p, editor, team-9, *, pull, deny"), line(7, "g, ann, editor, team-*")}},
		{"bo", "team-9", "Todo", "pull", map[string]string{"team-9": "editor"}, false, []policy.Line{line(10, "p, editor, team-9, *, pull, deny")}},
		{"bo", "team-3", "Todo", "pull", map[string]string{"team-9": "editor"}, false, nil},
		{"bo", "bo", "Log", "delete", nil, false, []policy.Line{line(11, "p, *, *, Log, *, deny")}},
		{"bo", "bo", "Log", "pull", nil, false, []policy.Line{line(11, "p, *, *, Log, *, deny")}},
		{"", "bo", "Log", "pull", nil, false, nil},
		{"bo", "", "Log", "pull", nil, false, nil},
		{"bo", "bo", "", "pull", nil, false, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("sub=%s/scope=%s/model=%s/act=%s/roles=%v", tc.sub, tc.scope, tc.model, tc.act, tc.roles), func(t *testing.T) {
			t.Parallel()
			allow, lines, err := e.Explain(tc.sub, tc.roles, tc.scope, tc.model, tc.act)
			if err != nil {
				t.Fatal(err)
			}
			if allow != tc.allow {
				t.Errorf("allow = %t, want %t", allow, tc.allow)
			}
			if diff := cmp.Diff(tc.lines, lines); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if ok, _ := e.Allow(tc.sub, tc.roles, tc.scope, tc.model, tc.act); ok != allow {
				t.Errorf("Allow = %t, Explain = %t", ok, allow)
			}
		})
	}
	if _, _, err := e.Explain("ann", nil, "ann", "Todo", "read"); err == nil {
		t.Error("Explain(act=read) succeeded, want an error")
	}
	if got := line(4, "p, x").String(); got != "ex.csv:4: p, x" {
		t.Errorf("Line.String = %q", got)
	}
}

// g lines may give a role in every scope a pattern matches, next to g lines
// with literal scopes, whichever comes first in the file.
func TestGroupScopePatterns(t *testing.T) {
	t.Parallel()
	const rules = "p, admin, org-*, *, *, allow\np, admin, hq, *, pull, allow\np, lead, org-1, *, pull, allow\n"
	for name, g := range map[string]string{
		"pattern-first": "g, dana, admin, org-*\ng, erin, admin, org-1\ng, dana, lead, org-*\ng, root, admin, *\n",
		"literal-first": "g, erin, admin, org-1\ng, root, admin, *\ng, dana, lead, org-*\ng, dana, admin, org-*\n",
	} {
		t.Run("order="+name, func(t *testing.T) {
			t.Parallel()
			e, err := policy.New([]byte(rules+g), name+".csv")
			if err != nil {
				t.Fatal(err)
			}
			want := map[request]bool{
				{"dana", "org-1", "Board", "delete"}: true, // a scope some literal g line names
				{"dana", "org-2", "Board", "delete"}: true, // a scope no g line names
				{"dana", "org-", "Board", "pull"}:    true,
				{"dana", "orgx", "Board", "pull"}:    false,
				{"dana", "hq", "Board", "pull"}:      false, // admin only in org-*
				{"erin", "org-1", "Board", "delete"}: true,
				{"erin", "org-2", "Board", "pull"}:   false,
				{"root", "hq", "Board", "pull"}:      true, // admin in every scope
				{"root", "hq", "Board", "create"}:    false,
				{"root", "org-5", "Board", "create"}: true,
				{"dana", "org-1", "Todo", "pull"}:    true, // lead in org-1 through the pattern
				{"zed", "org-1", "Board", "pull"}:    false,
			}
			checkAll(t, e, want)
		})
	}
}

// Allow, Explain and Scopes run in parallel on one Enforcer (go test -race),
// with and without the decision cache, and agree with the decisions made
// one at a time.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(examplesDir, "org.csv"))
	if err != nil {
		t.Fatal(err)
	}
	type req struct {
		sub   string
		roles map[string]string
		scope string
		model string
		act   string
	}
	var reqs []req
	for _, sub := range []string{"dana", "erin", "frank"} {
		for _, scope := range []string{"org-1", "org-7", "org-new", "public-x", "frank", "team-1"} {
			for _, model := range []string{"Invoice", "AuditEntry"} {
				for _, act := range allActs {
					reqs = append(reqs, req{sub, nil, scope, model, act}, req{sub, map[string]string{scope: "admin"}, scope, model, act})
				}
			}
		}
	}
	ref, err := policy.New(b, "org.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]bool, len(reqs))
	for i, r := range reqs {
		if want[i], err = ref.Allow(r.sub, r.roles, r.scope, r.model, r.act); err != nil {
			t.Fatal(err)
		}
	}
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%t", cached), func(t *testing.T) {
			t.Parallel()
			e, err := policy.New(b, "org.csv")
			if err != nil {
				t.Fatal(err)
			}
			if !cached {
				e = policy.WithoutCache(e)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 3*16)
			for g := range 16 {
				wg.Go(func() {
					for i := range 3 * len(reqs) {
						k := (g*7 + i) % len(reqs)
						r := reqs[k]
						var got bool
						var err error
						switch (g + i) % 3 {
						case 0:
							got, err = e.Allow(r.sub, r.roles, r.scope, r.model, r.act)
						case 1:
							got, _, err = e.Explain(r.sub, r.roles, r.scope, r.model, r.act)
						default:
							got = want[k]
							if scopes, _ := e.Scopes(r.sub); !slices.Contains(scopes, r.sub) {
								err = fmt.Errorf("Scopes(%s) = %v lacks the personal scope", r.sub, scopes)
							}
						}
						if err == nil && got != want[k] {
							err = fmt.Errorf("%+v: got %t, want %t", r, got, want[k])
						}
						if err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

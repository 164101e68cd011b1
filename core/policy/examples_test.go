package policy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/policy"
	"github.com/syncplane/syncplane/policies"
)

// examplesDir holds the example policies of package policies.
var examplesDir = filepath.Join("..", "..", "policies", "examples")

func loadExample(t testing.TB, name string) *policy.Enforcer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(b, name)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return e
}

// lineOf returns the example's line whose text is text, failing the test
// when there is not exactly one.
func lineOf(t testing.TB, name, text string) policy.Line {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var found []policy.Line
	for i, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == text {
			found = append(found, policy.Line{File: name, Line: i + 1, Text: text})
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d lines read %q, want 1", name, len(found), text)
	}
	return found[0]
}

// grant is one row of a policy matrix: for a subject with the token roles
// roles, the actions it may take on model in scope (space separated; every
// other action is denied).
type grant struct {
	sub   string
	roles map[string]string
	scope string
	model string
	allow string
}

const all = "create update delete pull"

// checkMatrix asks Allow and Explain every action of every row and checks
// that Explain agrees with Allow and names a line for every allow.
func checkMatrix(t *testing.T, e *policy.Enforcer, rows []grant) {
	t.Helper()
	for _, row := range rows {
		allowed := strings.Fields(row.allow)
		for _, act := range allActs {
			want := slices.Contains(allowed, act)
			name := fmt.Sprintf("sub=%s/roles=%v/scope=%s/model=%s/act=%s", row.sub, row.roles, row.scope, row.model, act)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				got, err := e.Allow(row.sub, row.roles, row.scope, row.model, act)
				if err != nil {
					t.Fatalf("Allow: %v", err)
				}
				if got != want {
					t.Errorf("Allow = %t, want %t", got, want)
				}
				explained, lines, err := e.Explain(row.sub, row.roles, row.scope, row.model, act)
				if err != nil {
					t.Fatalf("Explain: %v", err)
				}
				if explained != got {
					t.Errorf("Explain = %t, Allow = %t", explained, got)
				}
				if got && len(lines) == 0 {
					t.Errorf("Explain names no line for an allow")
				}
			})
		}
	}
}

func TestExamplePersonal(t *testing.T) {
	t.Parallel()
	e := loadExample(t, "personal.csv")
	checkMatrix(t, e, []grant{
		{"alice", nil, "alice", "Board", all},
		{"alice", nil, "alice", "User", all},
		{"alice", nil, "bob", "Board", ""},
		{"bob", nil, "bob", "Todo", all},
		{"bob", nil, "alice", "Todo", ""},
		{"alice", nil, "alicex", "Todo", ""},
		{"alice", nil, "*", "Todo", ""},
		{"alice", nil, "$self", "Todo", ""},
		// the personal policy has no role lines: a token role grants nothing
		{"alice", map[string]string{"bob": "owner"}, "bob", "Board", ""},
	})
}

// The example personal.csv is the default policy.
func TestExamplePersonalIsDefault(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(examplesDir, "personal.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rules := func(b []byte) []string {
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out
	}
	if diff := cmp.Diff(rules(policies.DefaultPolicy()), rules(b)); diff != "" {
		t.Errorf("personal.csv rules differ from default.csv (-default +personal):\n%s", diff)
	}
}

func TestExampleTeams(t *testing.T) {
	t.Parallel()
	e := loadExample(t, "teams.csv")
	checkMatrix(t, e, []grant{
		// editor: pulls everything, writes boards and todos, deletes nothing
		{"alice", nil, "team-42", "Board", "create update pull"},
		{"alice", nil, "team-42", "Todo", "create update pull"},
		{"alice", nil, "team-42", "Team", "pull"},
		{"alice", nil, "team-42", "User", "pull"},
		// roles hold only in their scope
		{"alice", nil, "team-7", "Board", ""},
		{"alice", nil, "team-4", "Board", ""},
		{"alice", nil, "team-420", "Board", ""},
		// personal scope
		{"alice", nil, "alice", "Board", all},
		{"alice", nil, "bob", "Board", ""},
		// viewer: pull only
		{"bob", nil, "team-42", "Board", "pull"},
		{"bob", nil, "team-42", "Todo", "pull"},
		{"bob", nil, "team-42", "Team", "pull"},
		{"bob", nil, "team-7", "Todo", ""},
		// owner: everything, deletes included
		{"carol", nil, "team-42", "Board", all},
		{"carol", nil, "team-42", "Todo", all},
		{"carol", nil, "team-42", "Team", all},
		{"carol", nil, "team-7", "Board", ""},
		// no role
		{"dave", nil, "team-42", "Board", ""},
		{"dave", nil, "dave", "Board", all},
		// a role name is not a scope
		{"alice", nil, "editor", "Board", ""},
		// token roles grant in their scope only
		{"dave", map[string]string{"team-7": "editor"}, "team-7", "Board", "create update pull"},
		{"dave", map[string]string{"team-7": "editor"}, "team-7", "Team", "pull"},
		{"dave", map[string]string{"team-7": "editor"}, "team-42", "Board", ""},
		{"dave", map[string]string{"team-7": "owner"}, "team-7", "Board", all},
		// a token role adds to the roles of the policy file
		{"bob", map[string]string{"team-42": "owner"}, "team-42", "Board", all},
		{"alice", map[string]string{"team-42": "viewer"}, "team-42", "Board", "create update pull"},
		{"alice", map[string]string{"team-7": "viewer"}, "team-42", "Todo", "create update pull"},
		{"alice", map[string]string{"team-7": "viewer"}, "team-7", "Todo", "pull"},
		// a token role only applies where the file gives the role rights
		{"dave", map[string]string{"org-1": "owner"}, "org-1", "Board", ""},
		{"dave", map[string]string{"team-7": "admin"}, "team-7", "Board", ""},
		{"dave", map[string]string{"team-7": ""}, "team-7", "Board", ""},
	})
}

func TestExampleOrg(t *testing.T) {
	t.Parallel()
	e := loadExample(t, "org.csv")
	checkMatrix(t, e, []grant{
		// dana is admin in every org-* scope (g pattern), everything but
		// deleting audit entries
		{"dana", nil, "org-1", "Invoice", all},
		{"dana", nil, "org-7", "Invoice", all},
		{"dana", nil, "org-acme", "Invoice", all},
		{"dana", nil, "org-1", "AuditEntry", "create update pull"},
		{"dana", nil, "orgx", "Invoice", ""},
		{"dana", nil, "team-1", "Invoice", ""},
		// erin is admin in org-7 only (literal g scope)
		{"erin", nil, "org-7", "Invoice", all},
		{"erin", nil, "org-7", "AuditEntry", "create update pull"},
		{"erin", nil, "org-8", "Invoice", ""},
		{"erin", nil, "org-70", "Invoice", ""},
		// everyone pulls public-* scopes, nobody writes there
		{"frank", nil, "public-docs", "Page", "pull"},
		{"dana", nil, "public-docs", "Page", "pull"},
		{"frank", nil, "public-docs", "AuditEntry", "pull"},
		{"frank", nil, "org-7", "Invoice", ""},
		{"frank", nil, "publicx", "Page", ""},
		// the deny line wins over $self too
		{"frank", nil, "frank", "Invoice", all},
		{"frank", nil, "frank", "AuditEntry", "create update pull"},
		// token roles: in their scope only, never over a deny line
		{"frank", map[string]string{"org-3": "admin"}, "org-3", "Invoice", all},
		{"frank", map[string]string{"org-3": "admin"}, "org-3", "AuditEntry", "create update pull"},
		{"frank", map[string]string{"org-3": "admin"}, "org-4", "Invoice", ""},
		{"frank", map[string]string{"team-3": "admin"}, "team-3", "Invoice", ""},
		{"dana", map[string]string{"org-1": "viewer"}, "org-1", "Invoice", all},
	})
}

func TestExampleTokenRoles(t *testing.T) {
	t.Parallel()
	e := loadExample(t, "token-roles.csv")
	editor42 := map[string]string{"team-42": "editor"}
	checkMatrix(t, e, []grant{
		{"alice", editor42, "team-42", "Board", "create update pull"},
		{"alice", editor42, "team-42", "Todo", "create update pull"},
		{"alice", editor42, "team-42", "Team", "pull"},
		// the token's role in team-42 grants nothing in team-7
		{"alice", editor42, "team-7", "Board", ""},
		{"alice", editor42, "alice", "Board", all},
		// without the claim, nothing
		{"alice", nil, "team-42", "Board", ""},
		{"alice", map[string]string{}, "team-42", "Board", ""},
		{"bob", map[string]string{"team-42": "viewer"}, "team-42", "Board", "pull"},
		{"bob", map[string]string{"team-42": "viewer"}, "team-42", "Todo", "pull"},
		{"carol", map[string]string{"team-42": "owner"}, "team-42", "Board", all},
		{"carol", map[string]string{"team-42": "owner"}, "team-42", "Team", all},
		{"carol", map[string]string{"team-42": "owner", "team-7": "viewer"}, "team-7", "Todo", "pull"},
		{"carol", map[string]string{"team-42": "owner", "team-7": "viewer"}, "team-42", "Todo", all},
		// roles the file does not know grant nothing
		{"dave", map[string]string{"team-42": "admin"}, "team-42", "Board", ""},
		{"dave", map[string]string{"team-42": ""}, "team-42", "Board", ""},
	})
}

// A token role never overrides a deny line, whichever order the lines come in.
func TestTokenRoleNeverOverridesDeny(t *testing.T) {
	t.Parallel()
	for name, pol := range map[string]string{
		"deny-last":  "p, owner, *, *, *, allow\np, *, *, AuditEntry, delete, deny\n",
		"deny-first": "p, *, *, AuditEntry, delete, deny\np, owner, *, *, *, allow\n",
		"deny-role":  "p, owner, *, *, *, allow\np, owner, *, AuditEntry, delete, deny\n",
	} {
		t.Run("order="+name, func(t *testing.T) {
			t.Parallel()
			e, err := policy.New([]byte(pol), name+".csv")
			if err != nil {
				t.Fatal(err)
			}
			checkMatrix(t, e, []grant{
				{"u1", map[string]string{"s": "owner"}, "s", "AuditEntry", "create update pull"},
				{"u1", map[string]string{"s": "owner"}, "s", "Board", all},
			})
		})
	}
}

func TestExampleScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file               string
		sub                string
		scopes, patterns   []string
		allowed, forbidden []string // scopes that Allow(pull of some model) grants / refuses
	}{
		{file: "personal.csv", sub: "alice", scopes: []string{"alice"}},
		{file: "personal.csv", sub: ""},
		// role lines (editor on team-*) add nothing: alice's roles reach
		// only the scopes of her g lines
		{file: "teams.csv", sub: "alice", scopes: []string{"alice", "team-42"}},
		{file: "teams.csv", sub: "bob", scopes: []string{"bob", "team-42"}},
		{file: "teams.csv", sub: "dave", scopes: []string{"dave"}},
		{file: "org.csv", sub: "dana", scopes: []string{"dana"}, patterns: []string{"org-*", "public-*"}},
		{file: "org.csv", sub: "erin", scopes: []string{"erin", "org-7"}, patterns: []string{"public-*"}},
		// the deny line's * scope is no candidate
		{file: "org.csv", sub: "frank", scopes: []string{"frank"}, patterns: []string{"public-*"}},
		// the token's roles are the caller's to add
		{file: "token-roles.csv", sub: "alice", scopes: []string{"alice"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("file=%s/sub=%s", tc.file, tc.sub), func(t *testing.T) {
			t.Parallel()
			e := loadExample(t, tc.file)
			scopes, patterns := e.Scopes(tc.sub)
			if diff := cmp.Diff(tc.scopes, scopes); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.patterns, patterns); diff != "" {
				t.Errorf("patterns (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	t.Parallel()
	const pol = `p, *, $self, *, *, allow
p, zed, shared-1, *, pull, allow
p, zed, shared-1, *, create, allow
p, zed, secret-*, *, pull, deny
p, *, *, Secret, delete, deny
p, zed, $self, Note, update, allow
p, editor, board-*, *, *, allow
p, editor, board-9, *, *, allow
g, zed, editor, board-1
g, zed, viewer, board-1
g, zed, admin, org-*
g, ann, editor, board-2
g, zed, editor, board-0
`
	e, err := policy.New([]byte(pol), "scopes.csv")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		scopes, patterns []string
	}{
		"zed": {[]string{"board-0", "board-1", "shared-1", "zed"}, []string{"org-*"}},
		"ann": {[]string{"ann", "board-2"}, nil},
		"bo":  {[]string{"bo"}, nil},
		// a subject whose id is a role name gets the lines of that role
		"editor": {[]string{"board-9", "editor"}, []string{"board-*"}},
	}
	for sub, tc := range tests {
		t.Run("sub="+sub, func(t *testing.T) {
			t.Parallel()
			scopes, patterns := e.Scopes(sub)
			if diff := cmp.Diff(tc.scopes, scopes); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.patterns, patterns); diff != "" {
				t.Errorf("patterns (-want +got):\n%s", diff)
			}
		})
	}
}

// Every scope where Allow grants a pull is among the candidates Scopes
// returns (literally or through a pattern), for every example policy.
func TestScopesCoverAllow(t *testing.T) {
	t.Parallel()
	subs := []string{"alice", "bob", "carol", "dana", "erin", "frank", "editor", "owner", "admin", "svc:auth"}
	scopeKeys := []string{"alice", "bob", "frank", "team-42", "team-7", "org-1", "org-7", "org-acme", "public-docs", "orgx", "x"}
	models := []string{"Board", "Todo", "Team", "Invoice", "AuditEntry"}
	for _, file := range []string{"personal.csv", "teams.csv", "org.csv", "token-roles.csv", "service.csv"} {
		t.Run("file="+file, func(t *testing.T) {
			t.Parallel()
			e := loadExample(t, file)
			for _, sub := range subs {
				scopes, patterns := e.Scopes(sub)
				for _, scope := range scopeKeys {
					for _, model := range models {
						ok, err := e.Allow(sub, nil, scope, model, policy.ActPull)
						if err != nil {
							t.Fatal(err)
						}
						covered := slices.Contains(scopes, scope) || slices.ContainsFunc(patterns, func(p string) bool {
							return strings.HasPrefix(scope, strings.TrimSuffix(p, "*"))
						})
						if ok && !covered {
							t.Errorf("%s may pull %s in %s, but Scopes = %v, %v", sub, model, scope, scopes, patterns)
						}
					}
				}
			}
		})
	}
}

func TestExampleExplain(t *testing.T) {
	t.Parallel()
	type tc struct {
		file              string
		sub               string
		roles             map[string]string
		scope, model, act string
		allow             bool
		lines             []string // texts of the deciding lines, in order
	}
	tests := []tc{
		{"teams.csv", "alice", nil, "team-42", "Board", "create", true, []string{"p, editor, team-*, Board, create, allow", "g, alice, editor, team-42"}},
		{"teams.csv", "alice", nil, "team-42", "Board", "delete", false, nil},
		{"teams.csv", "alice", nil, "team-7", "Board", "pull", false, nil},
		{"teams.csv", "bob", nil, "team-42", "Todo", "pull", true, []string{"p, viewer, team-*, *, pull, allow", "g, bob, viewer, team-42"}},
		{"teams.csv", "carol", nil, "team-42", "Board", "delete", true, []string{"p, owner, team-*, *, *, allow", "g, carol, owner, team-42"}},
		// the first allow line in the file that matches
		{"teams.csv", "carol", nil, "team-42", "Board", "pull", true, []string{"p, owner, team-*, *, pull, allow", "g, carol, owner, team-42"}},
		{"teams.csv", "alice", nil, "alice", "Todo", "delete", true, []string{"p, *, $self, *, *, allow"}},
		// a token role decides without a g line
		{"teams.csv", "dave", map[string]string{"team-7": "editor"}, "team-7", "Board", "update", true, []string{"p, editor, team-*, Board, update, allow"}},
		{"org.csv", "dana", nil, "org-1", "AuditEntry", "delete", false, []string{"p, *, *, AuditEntry, delete, deny"}},
		{"org.csv", "frank", nil, "frank", "AuditEntry", "delete", false, []string{"p, *, *, AuditEntry, delete, deny"}},
		{"org.csv", "frank", map[string]string{"org-3": "admin"}, "org-3", "AuditEntry", "delete", false, []string{"p, *, *, AuditEntry, delete, deny"}},
		{"org.csv", "dana", nil, "org-1", "Invoice", "update", true, []string{"p, admin, org-*, *, *, allow", "g, dana, admin, org-*"}},
		{"org.csv", "erin", nil, "org-7", "Invoice", "update", true, []string{"p, admin, org-*, *, *, allow", "g, erin, admin, org-7"}},
		{"org.csv", "erin", nil, "org-8", "Invoice", "update", false, nil},
		{"org.csv", "frank", nil, "public-1", "Page", "pull", true, []string{"p, *, public-*, *, pull, allow"}},
		{"org.csv", "frank", nil, "public-1", "Page", "update", false, nil},
		{"token-roles.csv", "alice", map[string]string{"team-42": "editor"}, "team-42", "Todo", "create", true, []string{"p, editor, *, Todo, create, allow"}},
		{"token-roles.csv", "alice", map[string]string{"team-42": "editor"}, "team-7", "Todo", "create", false, nil},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("file=%s/sub=%s/roles=%v/scope=%s/model=%s/act=%s", tc.file, tc.sub, tc.roles, tc.scope, tc.model, tc.act)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := loadExample(t, tc.file)
			allow, lines, err := e.Explain(tc.sub, tc.roles, tc.scope, tc.model, tc.act)
			if err != nil {
				t.Fatal(err)
			}
			if allow != tc.allow {
				t.Errorf("allow = %t, want %t", allow, tc.allow)
			}
			var want []policy.Line
			for _, text := range tc.lines {
				want = append(want, lineOf(t, tc.file, text))
			}
			if diff := cmp.Diff(want, lines); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

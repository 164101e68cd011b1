package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writePolicyTenant writes a tenant folder under root: a manifest with id and,
// when policyPath is set, the policy file at that path (relative to the
// folder) holding policyText. The schema is the demo tenant's, in one file.
func writePolicyTenant(t *testing.T, root, folder, id, policyPath, policyText string) string {
	t.Helper()
	dir := filepath.Join(root, folder)
	schema, err := os.ReadFile(filepath.Join("..", "..", "core", "tenant", "testdata", "kanban.prisma"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := "id: " + id + "\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: ACME_SECRET\n  rolesClaim: roles\n"
	if policyPath != "" {
		manifest += "policy: " + policyPath + "\n"
	}
	files := map[string]string{"tenant.yaml": manifest, "schema.prisma": string(schema)}
	if policyPath != "" && policyText != "" {
		files[policyPath] = policyText
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func examplePolicy(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "policies", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	good := t.TempDir()
	writePolicyTenant(t, good, "acme", "acme", "policy.csv", examplePolicy(t, "teams.csv"))
	writePolicyTenant(t, good, "beta", "beta", "", "")
	writePolicyTenant(t, good, "gamma", "gamma", "policies/org.csv", examplePolicy(t, "org.csv"))
	wantOK := "ok acme " + filepath.Join(good, "acme", "policy.csv") + "\n" +
		"ok beta policies/default.csv\n" +
		"ok gamma " + filepath.Join(good, "gamma", "policies", "org.csv") + "\n"

	t.Run("case=default", func(t *testing.T) {
		t.Parallel()
		out, stderr, err := runCmd(t, env{}, "policy", "check")
		if err != nil {
			t.Fatalf("error = %v; stderr:\n%s", err, stderr)
		}
		if out != "ok (built-in) policies/default.csv\n" {
			t.Errorf("stdout = %q", out)
		}
	})
	t.Run("case=tenants", func(t *testing.T) {
		t.Parallel()
		out, stderr, err := runCmd(t, env{}, "policy", "check", "--tenants", good)
		if err != nil {
			t.Fatalf("error = %v; stderr:\n%s", err, stderr)
		}
		if diff := cmp.Diff(wantOK, out); diff != "" {
			t.Errorf("stdout (-want +got):\n%s", diff)
		}
		if stderr != "" {
			t.Errorf("stderr = %q", stderr)
		}
	})
	t.Run("case=env", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCmd(t, env{"SYNCPLANE_TENANTS_DIR": good}, "policy", "check")
		if err != nil || out != wantOK {
			t.Errorf("error = %v, stdout = %q", err, out)
		}
	})

	bad := t.TempDir()
	writePolicyTenant(t, bad, "acme", "acme", "policy.csv", examplePolicy(t, "teams.csv"))
	badPolicy := writePolicyTenant(t, bad, "broken", "broken", "policy.csv", "# two bad lines\np, *, $self, *, *, allow\np, *, $self, *, read, allow\ng, *, admin, org-*\n")
	empty := writePolicyTenant(t, bad, "empty", "empty", "policy.csv", "# nothing but comments\n\n")
	missing := writePolicyTenant(t, bad, "missing", "missing", "nowhere.csv", "")
	writePolicyTenant(t, bad, "outside", "outside", "../acme/policy.csv", "")
	writePolicyTenant(t, bad, "zeta", "zeta", "", "")
	if err := os.MkdirAll(filepath.Join(bad, "manifest"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "manifest", "tenant.yaml"), []byte("id: Bad Id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("case=errors", func(t *testing.T) {
		t.Parallel()
		out, stderr, err := runCmd(t, env{}, "policy", "check", "--tenants", bad)
		if err == nil || err.Error() != "policy check: 5 of 7 tenants refused" {
			t.Fatalf("error = %v", err)
		}
		wantOut := "ok acme " + filepath.Join(bad, "acme", "policy.csv") + "\nok zeta policies/default.csv\n"
		if diff := cmp.Diff(wantOut, out); diff != "" {
			t.Errorf("stdout (-want +got):\n%s", diff)
		}
		p := filepath.Join(badPolicy, "policy.csv")
		for _, want := range []string{
			p + `:3: unknown action "read"`,
			p + ":4: g line: user and role are literal names",
			filepath.Join(empty, "policy.csv") + ": policy has no p lines",
			filepath.Join(missing, "tenant.yaml") + ": policy nowhere.csv:",
			filepath.Join(bad, "outside", "tenant.yaml") + ": policy ../acme/policy.csv:",
			filepath.Join(bad, "manifest", "tenant.yaml") + ":1:",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("case=no-tenants", func(t *testing.T) {
		t.Parallel()
		_, _, err := runCmd(t, env{}, "policy", "check", "--tenants", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "no tenant folders") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("case=missing-dir", func(t *testing.T) {
		t.Parallel()
		_, _, err := runCmd(t, env{}, "policy", "check", "--tenants", filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("error = %v", err)
		}
	})
}

func TestPolicyExplain(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	acme := writePolicyTenant(t, root, "acme", "acme", "policy.csv", examplePolicy(t, "org.csv"))
	writePolicyTenant(t, root, "teams", "teams", "policies/teams.csv", examplePolicy(t, "teams.csv"))
	writePolicyTenant(t, root, "plain", "plain", "", "")
	writePolicyTenant(t, root, "broken", "broken", "policy.csv", "p, *, *\n")
	orgFile := filepath.Join(acme, "policy.csv")
	teamsFile := filepath.Join(root, "teams", "policies", "teams.csv")
	// lineOf finds the "file:line: text" of a line of an example.
	lineOf := func(file, example, text string) string {
		t.Helper()
		for i, l := range strings.Split(example, "\n") {
			if l == text {
				return file + ":" + strconv.Itoa(i+1) + ": " + text
			}
		}
		t.Fatalf("no line %q", text)
		return ""
	}
	org, teams := examplePolicy(t, "org.csv"), examplePolicy(t, "teams.csv")
	tests := map[string]struct {
		args []string
		want []string
	}{
		"deny-wins": {
			[]string{"--tenant", "acme", "--sub", "dana", "--scope", "org-1", "--model", "AuditEntry", "--act", "delete"},
			[]string{"deny", lineOf(orgFile, org, "p, *, *, AuditEntry, delete, deny")},
		},
		"allow-by-pattern-role": {
			[]string{"--tenant", "acme", "--sub", "dana", "--scope", "org-1", "--model", "Invoice", "--act", "update"},
			[]string{"allow", lineOf(orgFile, org, "p, admin, org-*, *, *, allow"), lineOf(orgFile, org, "g, dana, admin, org-*")},
		},
		"default-deny": {
			[]string{"--tenant", "acme", "--sub", "frank", "--scope", "org-1", "--model", "Invoice", "--act", "pull"},
			[]string{"deny", "no line matched: denied by default"},
		},
		"token-role": {
			[]string{"--tenant", "teams", "--sub", "dave", "--scope", "team-7", "--model", "Board", "--act", "create", "--role", "editor"},
			[]string{"allow", lineOf(teamsFile, teams, "p, editor, team-*, Board, create, allow")},
		},
		"token-role-other-scope": {
			[]string{"--tenant", "teams", "--sub", "alice", "--scope", "team-7", "--model", "Board", "--act", "create"},
			[]string{"deny", "no line matched: denied by default"},
		},
		"default-policy": {
			[]string{"--tenant", "plain", "--sub", "u1", "--scope", "u1", "--model", "Todo", "--act", "delete"},
			[]string{"allow", "policies/default.csv:2: p, *, $self, *, *, allow"},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := runCmd(t, env{}, append([]string{"policy", "explain", "--tenants", root}, tc.args...)...)
			if err != nil {
				t.Fatalf("error = %v; stderr:\n%s", err, stderr)
			}
			if diff := cmp.Diff(strings.Join(tc.want, "\n")+"\n", out); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("case=demo", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCmd(t, env{}, "policy", "explain", "--tenant", "demo", "--sub", "u1", "--scope", "u2", "--model", "Todo", "--act", "pull")
		if err != nil || out != "deny\nno line matched: denied by default\n" {
			t.Errorf("error = %v, stdout = %q", err, out)
		}
	})

	errs := map[string]struct {
		env  env
		args []string
		want string
	}{
		"no-tenant-flag":  {env{}, []string{"--sub", "u1", "--scope", "u1", "--model", "Todo", "--act", "pull"}, "--tenant is required"},
		"no-act":          {env{}, []string{"--tenant", "demo", "--sub", "u1", "--scope", "u1", "--model", "Todo"}, "--act is required"},
		"bad-act":         {env{}, []string{"--tenant", "demo", "--sub", "u1", "--scope", "u1", "--model", "Todo", "--act", "read"}, `unknown action "read"`},
		"demo-only":       {env{}, []string{"--tenant", "acme", "--sub", "u1", "--scope", "u1", "--model", "Todo", "--act", "pull"}, `the only tenant is "demo"`},
		"unknown-tenant":  {env{"SYNCPLANE_TENANTS_DIR": root}, []string{"--tenant", "nope", "--sub", "u1", "--scope", "u1", "--model", "Todo", "--act", "pull"}, `no tenant "nope" under ` + root},
		"broken-policy":   {env{"SYNCPLANE_TENANTS_DIR": root}, []string{"--tenant", "broken", "--sub", "u1", "--scope", "u1", "--model", "Todo", "--act", "pull"}, "policy.csv:1: p line needs 5 fields"},
		"extra-arguments": {env{}, []string{"--tenant", "demo", "extra"}, "unexpected arguments"},
		"undefined-flag":  {env{}, []string{"--tenant", "demo", "--subject", "u1"}, "policy explain: unknown flag: --subject"},
		"missing-tenants": {env{}, []string{"--tenants", filepath.Join(root, "nope"), "--tenant", "acme", "--sub", "u1", "--scope", "u1", "--model", "Todo", "--act", "pull"}, "no such file"},
		"no-flags":        {env{}, nil, "--tenant is required"},
	}
	for name, tc := range errs {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			out, _, err := runCmd(t, tc.env, append([]string{"policy", "explain"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("stdout = %q", out)
			}
		})
	}
}

func TestPolicyUsage(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"none":    {[]string{"policy"}, "policy: no command"},
		"unknown": {[]string{"policy", "lint"}, `policy: unknown command "lint"`},
		"args":    {[]string{"policy", "check", "extra"}, "policy check: unexpected arguments"},
	} {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := runCmd(t, env{}, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
			if name != "args" && !(strings.Contains(stderr, "syncplane policy [command]") && strings.Contains(stderr, "explain")) {
				t.Errorf("stderr lacks the usage:\n%s", stderr)
			}
			if out != "" {
				t.Errorf("stdout = %q", out)
			}
		})
	}
}

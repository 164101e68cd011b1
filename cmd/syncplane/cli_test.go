package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/testkit"
)

// helpFlag matches a long flag in help output.
var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)

// TestHelp runs --help, -h and -help on the root and on every command:
// each succeeds, prints its usage to stdout and lists exactly the command's
// own flags (they used to share one flag set: serve listed --sub and --ttl).
func TestHelp(t *testing.T) {
	t.Parallel()
	c := &cli{ctx: t.Context(), getenv: env{}.get, stdout: io.Discard, stderr: io.Discard}
	var cmds []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmds = append(cmds, cmd)
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(c.rootCmd())
	if len(cmds) < 15 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for _, cmd := range cmds {
		path := strings.Fields(cmd.CommandPath())[1:]
		var want []string
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) { want = append(want, f.Name) })
		want = append(want, "help")
		slices.Sort(want)
		for _, h := range []string{"--help", "-h", "-help"} {
			t.Run("cmd="+strings.Join(append(path, h), "_"), func(t *testing.T) {
				t.Parallel()
				out, stderr, err := runCmd(t, env{}, append(slices.Clone(path), h)...)
				if err != nil || stderr != "" {
					t.Fatalf("err %v, stderr %q", err, stderr)
				}
				if !strings.Contains(out, "Usage:\n  "+cmd.CommandPath()) {
					t.Errorf("no usage of %s:\n%s", cmd.CommandPath(), out)
				}
				var got []string
				for _, m := range helpFlag.FindAllStringSubmatch(out, -1) {
					got = append(got, m[1])
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("flags %v, want %v:\n%s", got, want, out)
				}
			})
		}
	}
	t.Run("serve", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCmd(t, env{}, "serve", "--help")
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{`--sub\b`, `--ttl\b`, `--tenant\b`, `--claim\b`} {
			if regexp.MustCompile(bad).MatchString(out) {
				t.Errorf("serve --help mentions %s:\n%s", bad, out)
			}
		}
		for _, good := range []string{"--addr", "--tenants", "--config", "--max-conns", "--public-metrics"} {
			if !strings.Contains(out, good) {
				t.Errorf("serve --help lacks %s", good)
			}
		}
	})
	t.Run("help-command", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCmd(t, env{}, "help", "token")
		if err != nil || !strings.Contains(out, "--sub") {
			t.Errorf("err %v:\n%s", err, out)
		}
	})
}

// TestSingleDashFlags: the single-dash long flags the standard flag
// package accepted keep working.
func TestSingleDashFlags(t *testing.T) {
	t.Parallel()
	out, _, err := runCmd(t, env{}, "token", "-tenant", "demo", "-sub=u1", "-data", t.TempDir(), "-ttl", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Errorf("not a token: %q", out)
	}
	// A value that looks like a single-dash flag is left alone.
	if got := singleDashLongFlags((&cli{getenv: env{}.get}).rootCmd(), []string{"serve", "-addr", ":1", "--read-timeout", "-1s", "--", "-tenant"}); !slices.Equal(got,
		[]string{"serve", "--addr", ":1", "--read-timeout", "-1s", "--", "-tenant"}) {
		t.Errorf("rewritten to %q", got)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, _, err := runCmd(t, env{}, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"syncplane ", "revision ", "go        go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run("shell="+shell, func(t *testing.T) {
			t.Parallel()
			out, _, err := runCmd(t, env{}, "completion", shell)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) < 1000 || !strings.Contains(out, "syncplane") {
				t.Fatalf("not a completion script:\n%s", out)
			}
			if shell != "bash" {
				return
			}
			bash, err := exec.LookPath("bash")
			if err != nil {
				t.Skip("no bash to parse the script")
			}
			file := filepath.Join(t.TempDir(), "syncplane.bash")
			if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(bash, "-n", file).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v\n%s", err, b)
			}
		})
	}
}

// TestTenantInit scaffolds tenants from the demo's schema folder and
// prisma-idb's example (whose generator excludes models), checks and lists
// them, loads them with migrate and signs a token with the new key.
func TestTenantInit(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "tenants")
	kanban, pidb := filepath.Join(root, "kanban"), filepath.Join(root, "pidb")
	out, _, err := runCmd(t, env{}, "tenant", "init", "--from", testkit.KanbanDir(t), kanban)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "created tenant kanban in "+kanban) {
		t.Errorf("stdout %q", out)
	}
	if _, _, err := runCmd(t, env{}, "tenant", "init", "--from", filepath.Join("..", "..", "core", "schema", "testdata", "pidb-kanban"), pidb); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tenant.yaml", "policy.csv", "prisma/schema.prisma", "prisma/models/kanban.prisma"} {
		if _, err := os.Stat(filepath.Join(kanban, p)); err != nil {
			t.Error(err)
		}
	}
	fi, err := os.Stat(filepath.Join(kanban, "hs256.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() < 65 {
		t.Errorf("key file mode %v, %d bytes", fi.Mode(), fi.Size())
	}
	manifest, err := os.ReadFile(filepath.Join(pidb, "tenant.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id: pidb\n", "schema: prisma\n", "hs256SecretFile: hs256.key\n", "policy: policy.csv\n",
		"The root model (User) and the excluded models (Session, Account, Verification)"} {
		if !strings.Contains(string(manifest), want) {
			t.Errorf("manifest lacks %q:\n%s", want, manifest)
		}
	}

	for _, dir := range []string{kanban, pidb} {
		out, stderr, err := runCmd(t, env{}, "tenant", "check", dir)
		if err != nil || stderr != "" || out != "ok "+filepath.Base(dir)+" "+dir+"\n" {
			t.Errorf("check %s: err %v, stdout %q, stderr %q", dir, err, out, stderr)
		}
	}
	out, _, err = runCmd(t, env{}, "tenant", "list", "--tenants", root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^kanban +ok +` + regexp.QuoteMeta(kanban) + `$`, `(?m)^pidb +ok +` + regexp.QuoteMeta(pidb) + `$`,
		regexp.QuoteMeta("2 tenant folders under " + root + ": 2 ok, 0 refused")} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("list lacks %s:\n%s", want, out)
		}
	}
	// The two tenants have keys of their own: the server loads both.
	out, stderr, err := runCmd(t, env{}, "migrate", "--tenants", root, "--data", t.TempDir())
	if err != nil || !strings.Contains(out, "migrated tenants: [kanban pidb]") {
		t.Fatalf("migrate: %v\n%s\n%s", err, out, stderr)
	}
	out, _, err = runCmd(t, env{}, "token", "--tenants", root, "--tenant", "kanban", "--sub", "u1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(kanban, "hs256.key"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{HS256Secret: []byte(strings.TrimSpace(string(key)))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(strings.TrimSpace(out)); err != nil {
		t.Errorf("the token does not verify with the new key: %v", err)
	}

	t.Run("refuses", func(t *testing.T) {
		t.Parallel()
		noGen := filepath.Join("..", "..", "core", "tenant", "testdata", "kanban.prisma")
		for name, tc := range map[string]struct {
			args []string
			want string
		}{
			"existing":     {[]string{"--from", testkit.KanbanDir(t), kanban}, "already exists; tenant init never overwrites a folder"},
			"bad-name":     {[]string{"--from", testkit.KanbanDir(t), filepath.Join(t.TempDir(), "Acme")}, `the folder name "Acme" is not a tenant id`},
			"no-from":      {[]string{filepath.Join(t.TempDir(), "x")}, `required flag(s) "from" not set`},
			"no-root":      {[]string{"--from", noGen, filepath.Join(t.TempDir(), "x")}, "give --root-model"},
			"contradicts":  {[]string{"--from", testkit.KanbanDir(t), "--root-model", "Board", filepath.Join(t.TempDir(), "x")}, `--root-model Board contradicts rootModel "User"`},
			"bad-schema":   {[]string{"--from", filepath.Join(t.TempDir(), "none"), filepath.Join(t.TempDir(), "x")}, "no such file or directory"},
			"two-folders":  {[]string{"--from", noGen, "a", "b"}, "want exactly one tenant folder DIR"},
			"bad-id":       {[]string{"--from", noGen, "--id", "A_B", filepath.Join(t.TempDir(), "x")}, `--id "A_B" is not a tenant id`},
			"unknown-flag": {[]string{"--frm", noGen, filepath.Join(t.TempDir(), "x")}, "tenant init: unknown flag: --frm"},
		} {
			_, _, err := runCmd(t, env{}, append([]string{"tenant", "init"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want %q", name, err, tc.want)
			}
		}
		// A schema without a generator block, with --root-model: the
		// manifest states it.
		dir := filepath.Join(t.TempDir(), "plain")
		if _, _, err := runCmd(t, env{}, "tenant", "init", "--from", noGen, "--root-model", "User", dir); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "tenant.yaml"))
		if err != nil || !strings.Contains(string(b), "\nrootModel: User\n") {
			t.Errorf("manifest (%v):\n%s", err, b)
		}
		if _, _, err := runCmd(t, env{}, "tenant", "check", dir); err != nil {
			t.Error(err)
		}
	})
}

// TestTenantCheckBroken: every problem of a folder is printed with its
// file and line, and the exit status is 1.
func TestTenantCheckBroken(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "broken")
	write(t, filepath.Join(dir, "tenant.yaml"), "id: broken\nschema: s.prisma\nrootModel: User\nauth:\n  hs256SecretFile: missing.key\npolicy: policy.csv\n")
	write(t, filepath.Join(dir, "s.prisma"), "model User {\n  id String @id\n  n  Strin\n}\n")
	write(t, filepath.Join(dir, "policy.csv"), "p, *, $self, *, *, allowx\n")
	out, stderr, err := runCmd(t, env{}, "tenant", "check", dir)
	if err == nil || err.Error() != "tenant check: "+dir+": 3 problems" {
		t.Errorf("error %v", err)
	}
	if out != "" {
		t.Errorf("stdout %q", out)
	}
	for _, want := range []string{
		filepath.Join(dir, "s.prisma") + ":3:",
		filepath.Join(dir, "tenant.yaml") + ":5:3: auth: open missing.key",
		filepath.Join(dir, "policy.csv") + ":1: ",
	} {
		if !strings.Contains(stderr, "\n"+want) && !strings.HasPrefix(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// A manifest that does not parse: its line, and list shows the id it claims.
	bad := filepath.Join(root, "badyaml")
	write(t, filepath.Join(bad, "tenant.yaml"), "id: badyaml\nschema: s.prisma\nfoo: 1\n")
	_, stderr, err = runCmd(t, env{}, "tenant", "check", bad)
	if err == nil || !strings.Contains(stderr, filepath.Join(bad, "tenant.yaml")+":3:") {
		t.Errorf("error %v, stderr:\n%s", err, stderr)
	}
	out, _, err = runCmd(t, env{}, "tenant", "list", "--tenants", root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^badyaml +refused +` + regexp.QuoteMeta(bad) + `$`, `(?m)^broken +refused +` + regexp.QuoteMeta(dir) + `$`,
		regexp.QuoteMeta("policy.csv:1: "), regexp.QuoteMeta("2 tenant folders under " + root + ": 0 ok, 2 refused")} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("list lacks %s:\n%s", want, out)
		}
	}
	if _, _, err := runCmd(t, env{}, "tenant", "check"); err == nil {
		t.Error("check without DIR succeeded")
	}
	if _, _, err := runCmd(t, env{}, "tenant", "list", "--tenants", filepath.Join(root, "none")); err == nil {
		t.Error("list of a missing directory succeeded")
	}
	out, _, err = runCmd(t, env{}, "tenant", "list")
	if err != nil || !regexp.MustCompile(`(?m)^demo +ok +\(built-in`).MatchString(out) {
		t.Errorf("list without a tenants directory: %v\n%s", err, out)
	}
}

func write(t *testing.T, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

package tenant_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

const secret = "test-secret-0123456789abcdef0123456789" // ≥ 32 bytes

// otherSecret is the secret of a second tenant beside one with secret.
const otherSecret = "other-secret-0123456789abcdef012345678"

// kanban is the demo schema in one file: User ← Board ← Todo.
var kanban = func() string {
	b, err := os.ReadFile("testdata/kanban.prisma")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// writeFiles writes files (name → content) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// manifest is a tenant.yaml for id with the kanban schema and an HS256
// secret file, followed by extra lines.
func manifest(id, extra string) string {
	return fmt.Sprintf("id: %s\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretFile: secret\n%s", id, extra)
}

// goodTenant is the files of a working tenant folder.
func goodTenant(id string) map[string]string {
	return map[string]string{tenant.ManifestFile: manifest(id, ""), "schema.prisma": kanban, "secret": secret + "\n"}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var evSeq atomic.Int64

func event(model, op string, payload map[string]any) push.Event {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return push.Event{ID: fmt.Sprintf("evt-%d", evSeq.Add(1)), EntityType: model, Operation: op, Payload: b}
}

const ts = "2026-11-25T10:00:00.000Z"

func user(id string, extra map[string]any) map[string]any {
	u := map[string]any{"id": id, "name": "User " + id, "email": id + "@example.com", "emailVerified": false,
		"image": nil, "createdAt": ts, "updatedAt": ts, "isAnonymous": nil}
	for k, v := range extra {
		u[k] = v
	}
	return u
}

func board(id, userID string) map[string]any {
	return map[string]any{"id": id, "name": "Board " + id, "createdAt": ts, "userId": userID}
}

// mustPush pushes events as subject and fails unless every one applied.
func mustPush(t testing.TB, tn *tenant.Tenant, subject string, events ...push.Event) {
	t.Helper()
	res, err := tn.Push.Push(context.Background(), subject, nil, events)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	for _, r := range res {
		if r.Error != nil || r.AppliedChangelogID == nil {
			t.Fatalf("push: event %s not applied: %+v", r.ID, r.Error)
		}
	}
}

// pulled returns the models of what subject pulls from the start.
func pulled(t testing.TB, tn *tenant.Tenant, subject string) []string {
	t.Helper()
	resp, err := tn.Pull.Pull(context.Background(), subject, nil, pull.Request{})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	var models []string
	for _, l := range resp.LogsWithRecords {
		models = append(models, l.Model)
	}
	return models
}

func ed25519PEM(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		root := t.TempDir()
		folder := func(name string, files map[string]string) { writeFiles(t, filepath.Join(root, name), files) }

		folder("acme", goodTenant("acme"))
		folder("beta", map[string]string{
			tenant.ManifestFile: "id: beta\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: BETA_SECRET\npolicy: policy.csv\n",
			"schema.prisma":     kanban,
			"policy.csv":        "# users act in their own scope\np, *, $self, *, *, allow\n",
		})
		folder("gamma", map[string]string{
			tenant.ManifestFile: "id: gamma\nschema: schema.prisma\nrootModel: User\nauth:\n  publicKeyFile: key.pem\n",
			"schema.prisma":     kanban,
			"key.pem":           ed25519PEM(t),
		})
		folder("bad-manifest", map[string]string{tenant.ManifestFile: manifest("bad-manifest", "owner: bob\n"), "schema.prisma": kanban, "secret": secret})
		folder("bad-schema", map[string]string{
			tenant.ManifestFile: manifest("bad-schema", ""),
			"schema.prisma":     "model User {\n  id String @id\n  name String @@\n}\n",
			"secret":            secret,
		})
		folder("orphan", map[string]string{
			tenant.ManifestFile: manifest("orphan", ""),
			"schema.prisma":     kanban + "\nmodel Orphan {\n  id String @id\n}\n",
			"secret":            secret,
		})
		folder("no-env", map[string]string{
			tenant.ManifestFile: "id: no-env\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: NO_ENV_SECRET\n",
			"schema.prisma":     kanban,
		})
		folder("bad-policy", map[string]string{
			tenant.ManifestFile: manifest("bad-policy", "policy: policy.csv\n"),
			"schema.prisma":     kanban,
			"secret":            secret,
			"policy.csv":        "p, *, $self, *, *, allow\np, alice, bob\n",
		})
		folder("dup-1", goodTenant("dup"))
		folder("dup-2", goodTenant("dup"))
		folder("not-a-tenant", map[string]string{"README.md": "no manifest here"})
		writeFiles(t, root, map[string]string{"stray.yaml": "id: stray\n"})

		getenv := func(k string) string {
			if k == "BETA_SECRET" {
				return otherSecret // not acme's: tenants sharing a key need audiences
			}
			return ""
		}
		st := db.Open(t)
		reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: quietLog(), Getenv: getenv})

		if diff := cmp.Diff([]string{"acme", "beta", "gamma"}, reg.IDs()); diff != "" {
			t.Errorf("loaded tenants (-want +got):\n%s", diff)
		}
		orphanLine := strings.Count(kanban, "\n") + 2
		// One error per bad folder, in folder order, each naming its file
		// (and, for schema and manifest problems, line and column).
		want := []string{
			`^bad-manifest/tenant.yaml:6:1: field owner not found in type tenant.Manifest$`,
			`^bad-policy/policy.csv:2: .+`,
			`^bad-schema/schema.prisma:3:\d+: .+`,
			`^tenant id "dup" is claimed by several folders: dup-1, dup-2$`,
			`^no-env/tenant.yaml: auth: environment variable NO_ENV_SECRET is not set$`,
			fmt.Sprintf(`^orphan/schema.prisma:%d:7: model Orphan cannot reach root model User$`, orphanLine),
		}
		var got []string
		for _, err := range errs {
			got = append(got, strings.ReplaceAll(err.Error(), root+string(filepath.Separator), ""))
		}
		if len(got) != len(want) {
			t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		}
		for i := range want {
			if !regexp.MustCompile(want[i]).MatchString(got[i]) {
				t.Errorf("error %d = %q, want match for %s", i, got[i], want[i])
			}
		}

		// The good tenants serve.
		mustPush(t, reg.Get("acme"), "u1", event("User", "create", user("u1", nil)))
		mustPush(t, reg.Get("beta"), "u1", event("User", "create", user("u1", nil)), event("Board", "create", board("b1", "u1")))
		if diff := cmp.Diff([]string{"User", "Board"}, pulled(t, reg.Get("beta"), "u1")); diff != "" {
			t.Errorf("beta pull (-want +got):\n%s", diff)
		}
		// Tenants are isolated: acme's u1 has no board.
		if diff := cmp.Diff([]string{"User"}, pulled(t, reg.Get("acme"), "u1")); diff != "" {
			t.Errorf("acme pull (-want +got):\n%s", diff)
		}
		tok, err := auth.SignHS256([]byte(secret), auth.SignClaims{Subject: "u1", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Get("acme").Verifier.Verify(tok); err != nil {
			t.Errorf("acme verifier refuses a token signed with its secret file: %v", err)
		}
		if reg.Get("gamma").Limiter != nil {
			t.Error("gamma has a rate limiter without requestsPerSecond")
		}
	})
}

// A folder claiming the id of another is refused together with it, even
// when it is broken in some other way: which folder serves an id must not
// depend on which of them happens to load.
func TestLoadDirDuplicateWithBrokenFolder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "a"), goodTenant("dup"))
	writeFiles(t, filepath.Join(root, "b"), map[string]string{
		tenant.ManifestFile: "id: dup\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: UNSET\n",
		"schema.prisma":     kanban,
	})
	writeFiles(t, filepath.Join(root, "c"), goodTenant("other"))
	st := storetest.DB{Name: "sqlite"}.Open(t)
	reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: quietLog(), Getenv: func(string) string { return "" }})
	if diff := cmp.Diff([]string{"other"}, reg.IDs()); diff != "" {
		t.Errorf("loaded tenants (-want +got):\n%s", diff)
	}
	want := fmt.Sprintf("tenant id %q is claimed by several folders: %s, %s", "dup", filepath.Join(root, "a"), filepath.Join(root, "b"))
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("errors = %v, want [%s]", errs, want)
	}
}

func TestLoadDirMissing(t *testing.T) {
	t.Parallel()
	st := storetest.DB{Name: "sqlite"}.Open(t)
	reg, errs := tenant.LoadDir(context.Background(), filepath.Join(t.TempDir(), "nope"), tenant.Options{Store: st, Log: quietLog()})
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "tenants directory: ") {
		t.Errorf("errors = %v, want one about the tenants directory", errs)
	}
	if len(reg.IDs()) != 0 {
		t.Errorf("tenants = %v", reg.IDs())
	}
}

// Errors of Load that are not covered by LoadDir's folders.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		files map[string]string
		want  string // the error, with the folder written as DIR
	}{
		"no-manifest": {
			files: map[string]string{"schema.prisma": kanban},
			want:  "DIR/tenant.yaml: open tenant.yaml: no such file or directory",
		},
		"no-schema-file": {
			files: map[string]string{tenant.ManifestFile: manifest("x", ""), "secret": secret},
			want:  "DIR/tenant.yaml: schema: stat schema.prisma: no such file or directory",
		},
		"empty-schema-folder": {
			files: map[string]string{tenant.ManifestFile: strings.Replace(manifest("x", ""), "schema.prisma", "models", 1), "secret": secret, "models/README.md": "none"},
			want:  "DIR/tenant.yaml: schema: no .prisma files in DIR/models",
		},
		"unknown-root": {
			files: map[string]string{tenant.ManifestFile: strings.Replace(manifest("x", ""), "User", "Account", 1), "secret": secret, "schema.prisma": kanban},
			want:  `schema: root model "Account" does not exist`,
		},
		"unknown-excluded": {
			files: map[string]string{tenant.ManifestFile: manifest("x", "exclude: [Session]\n"), "secret": secret, "schema.prisma": kanban},
			want:  `schema: excluded model "Session" does not exist`,
		},
		"root-from-token-not-fields": {
			files: map[string]string{tenant.ManifestFile: manifest("x", "rootFromToken:\n  id: sub\n  email: email\n  name: name\n  nickname: nick\n  boards: b\n"), "secret": secret, "schema.prisma": kanban},
			want: `DIR/tenant.yaml:11:3: rootFromToken: "boards" is not a scalar field of root model User (DIR/schema.prisma:USER)` + "\n" +
				`DIR/tenant.yaml:10:3: rootFromToken: "nickname" is not a scalar field of root model User (DIR/schema.prisma:USER)`,
		},
		"root-from-token-no-primary-key": {
			files: map[string]string{tenant.ManifestFile: manifest("x", "rootFromToken:\n  email: email\n  name: name\n"), "secret": secret, "schema.prisma": kanban},
			want:  `DIR/tenant.yaml:7:3: rootFromToken must map the primary key "id" of root model User (DIR/schema.prisma:ID) to a claim, usually id: sub`,
		},
		"root-from-token-required-unmapped": {
			files: map[string]string{tenant.ManifestFile: manifest("x", "rootFromToken: {id: sub}\n"), "secret": secret, "schema.prisma": kanban},
			want: `DIR/tenant.yaml:6:16: rootFromToken: required field "name" of root model User (DIR/schema.prisma:NAME) has no @default; map it to a claim` + "\n" +
				`DIR/tenant.yaml:6:16: rootFromToken: required field "email" of root model User (DIR/schema.prisma:EMAIL) has no @default; map it to a claim`,
		},
		"no-secret-file": {
			files: map[string]string{tenant.ManifestFile: manifest("x", ""), "schema.prisma": kanban},
			want:  "DIR/tenant.yaml: auth: open secret: no such file or directory",
		},
		"short-secret": {
			files: map[string]string{tenant.ManifestFile: manifest("x", ""), "schema.prisma": kanban, "secret": "short\n"},
			want:  "DIR/tenant.yaml: auth: HS256 secret is 5 bytes, need at least 32",
		},
		"no-policy-file": {
			files: map[string]string{tenant.ManifestFile: manifest("x", "policy: policy.csv\n"), "schema.prisma": kanban, "secret": secret},
			want:  "DIR/tenant.yaml: policy policy.csv: open policy.csv: no such file or directory",
		},
	}
	st := storetest.DB{Name: "sqlite"}.Open(t)
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			tn, err := tenant.Load(context.Background(), dir, tenant.Options{Store: st, Log: quietLog()})
			if err == nil {
				t.Fatalf("Load succeeded with tenant %s", tn.Manifest.ID)
			}
			want := strings.NewReplacer("USER", kanbanPos("model User"), "ID", kanbanPos("  id "), "NAME", kanbanPos("  name "), "EMAIL", kanbanPos("  email ")).Replace(tc.want)
			if got := strings.ReplaceAll(err.Error(), dir, "DIR"); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// kanbanPos is the line:column of the name declared by the first line of
// the kanban schema that starts with prefix (a model after "model ", a
// field after its indentation).
func kanbanPos(prefix string) string {
	for i, line := range strings.Split(kanban, "\n") {
		if strings.HasPrefix(line, prefix) {
			col := len(line) - len(strings.TrimLeft(line, " ")) + 1
			if strings.HasPrefix(prefix, "model ") {
				col = len("model ") + 1
			}
			return fmt.Sprintf("%d:%d", i+1, col)
		}
	}
	panic("kanban schema has no line starting with " + prefix)
}

// rootFromToken and allowedOrigins reach the loaded tenant as written.
func TestLoadRootFromToken(t *testing.T) {
	t.Parallel()
	st := storetest.DB{Name: "sqlite"}.Open(t)
	dir := t.TempDir()
	files := goodTenant("rft")
	files[tenant.ManifestFile] = manifest("rft", "rootFromToken: {id: sub, email: email, name: name, image: picture}\nallowedOrigins: [\"http://localhost:5173\"]\n")
	writeFiles(t, dir, files)
	tn, err := tenant.Load(context.Background(), dir, tenant.Options{Store: st, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"id": "sub", "email": "email", "name": "name", "image": "picture"}, tn.Manifest.RootFromToken); diff != "" {
		t.Errorf("RootFromToken (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"http://localhost:5173"}, tn.Manifest.AllowedOrigins); diff != "" {
		t.Errorf("AllowedOrigins (-want +got):\n%s", diff)
	}
}

// Paths in the manifest are relative to it and may be written as "./x"
// or, for a schema folder, "models/".
func TestLoadPathForms(t *testing.T) {
	t.Parallel()
	st := storetest.DB{Name: "sqlite"}.Open(t)
	for _, form := range []string{"models", "models/", "./models", "./models/"} {
		t.Run("schema="+form, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				tenant.ManifestFile:    "id: paths\nschema: " + form + "\nrootModel: User\nauth:\n  hs256SecretFile: ./secret\npolicy: ./policy.csv\n",
				"models/kanban.prisma": kanban,
				"secret":               secret,
				"policy.csv":           "p, *, $self, *, *, allow\n",
			})
			if _, err := tenant.Load(context.Background(), dir, tenant.Options{Store: st, Log: quietLog()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A schema split over several files of a folder: relations cross files,
// and files that are not .prisma are ignored.
func TestLoadMultiFileSchema(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			tenant.ManifestFile: "id: multi\nschema: models/\nrootModel: User\nauth:\n  hs256SecretFile: secret\n",
			"secret":            secret,
			"models/user.prisma": `datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}

model User {
  id     String  @id
  name   String
  boards Board[]
}
`,
			"models/board.prisma": `model Board {
  id     String @id
  title  String
  user   User   @relation(fields: [userId], references: [id], onDelete: Cascade)
  userId String
}
`,
			"models/notes.md": "not a schema",
		})
		tn, err := tenant.Load(context.Background(), dir, tenant.Options{Store: db.Open(t), Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		if !tn.Own.IsSynced("Board") {
			t.Error("Board is not synced")
		}
		if p := tn.Schema.Model("Board").Pos.File; p != filepath.Join(dir, "models", "board.prisma") {
			t.Errorf("Board is declared in %s", p)
		}
		mustPush(t, tn, "u1",
			event("User", "create", map[string]any{"id": "u1", "name": "Ada"}),
			event("Board", "create", map[string]any{"id": "b1", "title": "Plans", "userId": "u1"}))
		if diff := cmp.Diff([]string{"User", "Board"}, pulled(t, tn, "u1")); diff != "" {
			t.Errorf("pull (-want +got):\n%s", diff)
		}

		// An error in the second file names that file.
		writeFiles(t, dir, map[string]string{"models/board.prisma": "model Board {\n  id String @id\n  user Usr @relation(fields: [userId], references: [id])\n  userId String\n}\n"})
		_, err = tenant.Load(context.Background(), dir, tenant.Options{Store: db.Open(t), Log: quietLog()})
		if err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "models", "board.prisma")+":3:") {
			t.Errorf("error = %v, want one at models/board.prisma:3", err)
		}
	})
}

func TestDemo(t *testing.T) {
	t.Parallel()
	m := tenant.DemoManifest()
	if m.ID != "demo" || m.Schema != "prisma" || m.RootModel != "" || m.Auth.HS256SecretEnv != "DEMO_JWT_SECRET" || m.Limits.PullPageMax != 500 ||
		m.RootFromToken["id"] != "sub" || len(m.AllowedOrigins) != 1 || m.AllowedOrigins[0] != "*" {
		t.Errorf("DemoManifest = %+v", m)
	}
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		key, err := tenant.DemoKey(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		// The demo's environment variable is ignored: the key given wins.
		getenv := func(string) string { return "" }
		tn, err := tenant.LoadDemo(context.Background(), key, tenant.Options{Store: db.Open(t), Log: quietLog(), Getenv: getenv})
		if err != nil {
			t.Fatal(err)
		}
		if tn.Manifest.ID != "demo" || !tn.Own.IsSynced("Todo") {
			t.Errorf("demo tenant %+v", tn.Manifest)
		}
		// The prisma-idb app's layout: the root model comes from the
		// generator block, Board and Todo from models/kanban.prisma, and
		// the client's Changelog is not synced.
		fs, err := tn.Folder.Schema()
		if err != nil {
			t.Fatal(err)
		}
		if fs.RootModel != "User" || tn.Own.Root.Name != "User" || len(fs.Exclude) != 0 {
			t.Errorf("root %q, exclude %q", fs.RootModel, fs.Exclude)
		}
		if diff := cmp.Diff([]string{"User", "Board", "Todo"}, modelNames(tn.Own.Synced())); diff != "" {
			t.Errorf("synced (-want +got):\n%s", diff)
		}
		if p := tn.Schema.Model("Todo").Pos.File; p != filepath.Join("(built-in demo)", "prisma", "models", "kanban.prisma") {
			t.Errorf("Todo is declared in %s", p)
		}
		tok, err := auth.SignHS256(key, auth.SignClaims{Subject: "u1", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := tn.Verifier.Verify(tok); err != nil || c.Subject != "u1" {
			t.Errorf("Verify = %+v, %v", c, err)
		}
		mustPush(t, tn, "u1", event("User", "create", user("u1", nil)), event("Board", "create", board("b1", "u1")))
		if diff := cmp.Diff([]string{"User", "Board"}, pulled(t, tn, "u1")); diff != "" {
			t.Errorf("pull (-want +got):\n%s", diff)
		}
	})
}

// The demo folder copied into a tenants directory is a working tenant
// that takes its secret from $DEMO_JWT_SECRET, as its manifest says.
func TestDemoFolderAsTenant(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{tenant.ManifestFile, "prisma/schema.prisma", "prisma/models/kanban.prisma"} {
		b, err := os.ReadFile(filepath.Join("demo", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	writeFiles(t, filepath.Join(root, "demo"), files)
	getenv := func(k string) string {
		if k == "DEMO_JWT_SECRET" {
			return secret
		}
		return ""
	}
	reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: storetest.DB{Name: "sqlite"}.Open(t), Log: quietLog(), Getenv: getenv})
	if len(errs) > 0 || reg.Get("demo") == nil {
		t.Fatalf("errors %v, tenants %v", errs, reg.IDs())
	}
}

// Options.Log is optional.
func TestLoadWithoutLogger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, goodTenant("nolog"))
	tn, err := tenant.Load(context.Background(), dir, tenant.Options{Store: storetest.DB{Name: "sqlite"}.Open(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustPush(t, tn, "u1", event("User", "create", user("u1", nil)))
}

func TestDemoKey(t *testing.T) {
	t.Parallel()
	t.Run("case=generated", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "nested", "data") // created on first use
		key, err := tenant.DemoKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).Match(key) {
			t.Errorf("key %q is not 64 hex digits", key)
		}
		info, err := os.Stat(filepath.Join(dir, "demo.key"))
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("demo.key mode %v, want 0600", mode)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "demo.key"))
		if string(b) != string(key)+"\n" {
			t.Errorf("file holds %q, key %q", b, key)
		}
		again, err := tenant.DemoKey(dir)
		if err != nil || string(again) != string(key) {
			t.Errorf("second call = %q, %v; want %q", again, err, key)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("data dir holds %d entries, want only demo.key", len(entries))
		}
	})
	t.Run("case=existing", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		want := strings.Repeat("k", 40)
		writeFiles(t, dir, map[string]string{"demo.key": "  " + want + "\r\n"})
		key, err := tenant.DemoKey(dir)
		if err != nil || string(key) != want {
			t.Errorf("DemoKey = %q, %v; want %q", key, err, want)
		}
	})
	t.Run("case=too-short", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"demo.key": "short\n"})
		_, err := tenant.DemoKey(dir)
		want := filepath.Join(dir, "demo.key") + ": key is shorter than 32 bytes; delete the file to generate a new one"
		if err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
	})
	// Several goroutines (or processes: serve and token) asking at once for
	// a key that does not exist yet all get the same, complete key.
	t.Run("case=concurrent", func(t *testing.T) {
		t.Parallel()
		for range 100 {
			dir := t.TempDir()
			const n = 8
			keys := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					k, err := tenant.DemoKey(dir)
					keys[i], errs[i] = string(k), err
				})
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("goroutine %d: %v", i, errs[i])
				}
				if keys[i] != keys[0] || len(keys[i]) != 64 {
					t.Fatalf("goroutines got different keys: %q", keys)
				}
			}
			b, err := os.ReadFile(filepath.Join(dir, "demo.key"))
			if err != nil || strings.TrimSpace(string(b)) != keys[0] {
				t.Fatalf("demo.key holds %q (%v), the goroutines got %q", b, err, keys[0])
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Fatalf("data dir holds %d entries, want only demo.key", len(entries))
			}
		}
	})
}

// Folder.SigningSecret is the key `syncplane token` signs with.
func TestFolderSigningSecret(t *testing.T) {
	t.Parallel()
	head := "id: acme\nschema: schema.prisma\nrootModel: User\nauth:\n  issuer: https://acme.example\n  audience: syncplane\n"
	tests := map[string]struct {
		files   map[string]string
		env     map[string]string
		wantKey string
		wantErr string // with the folder written as DIR
	}{
		"env": {
			files:   map[string]string{tenant.ManifestFile: head + "  hs256SecretEnv: ACME_SECRET\n"},
			env:     map[string]string{"ACME_SECRET": secret},
			wantKey: secret,
		},
		"env-unset": {
			files:   map[string]string{tenant.ManifestFile: head + "  hs256SecretEnv: ACME_SECRET\n"},
			wantErr: "DIR/tenant.yaml: auth: environment variable ACME_SECRET is not set",
		},
		"file": {
			files:   map[string]string{tenant.ManifestFile: head + "  hs256SecretFile: secret\n", "secret": secret + "\r\n"},
			wantKey: secret,
		},
		"file-missing": {
			files:   map[string]string{tenant.ManifestFile: head + "  hs256SecretFile: secret\n"},
			wantErr: "DIR/tenant.yaml: auth: open secret: no such file or directory",
		},
		"public-key": {
			files:   map[string]string{tenant.ManifestFile: head + "  publicKeyFile: key.pem\n"},
			wantErr: "DIR/tenant.yaml: tenant acme verifies tokens with a public key; syncplane cannot sign them",
		},
		"jwks": {
			files:   map[string]string{tenant.ManifestFile: head + "  jwksFile: jwks.json\n"},
			wantErr: "DIR/tenant.yaml: tenant acme verifies tokens with a public key; syncplane cannot sign them",
		},
		// Like the server, syncplane token reads no key outside the folder.
		"file-outside": {
			files:   map[string]string{tenant.ManifestFile: head + "  hs256SecretFile: ../secret\n"},
			wantErr: "DIR/tenant.yaml: auth: readfile ../secret: invalid argument",
		},
		"bad-manifest": {
			files:   map[string]string{tenant.ManifestFile: head},
			wantErr: "DIR/tenant.yaml:5:3: auth needs exactly one of hs256SecretEnv, hs256SecretFile, publicKeyFile, jwksFile",
		},
		"no-manifest": {
			files:   map[string]string{},
			wantErr: "DIR/tenant.yaml: open tenant.yaml: no such file or directory",
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			var key []byte
			f, err := tenant.OpenFolder(dir, func(k string) string { return tc.env[k] })
			if err == nil {
				key, err = f.SigningSecret()
			}
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("SigningSecret = %q, want error %s", key, tc.wantErr)
				}
				if got := strings.ReplaceAll(err.Error(), dir, "DIR"); got != tc.wantErr {
					t.Errorf("error:\n got %s\nwant %s", got, tc.wantErr)
				}
				// A manifest that parses gives a Folder, so that `syncplane
				// token` can say why that tenant cannot sign.
				if parsed := !strings.Contains(name, "manifest"); parsed != (f != nil) {
					t.Errorf("folder with the error = %+v", f)
				}
				if key != nil {
					t.Errorf("key %q with the error", key)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(key) != tc.wantKey {
				t.Errorf("key = %q, want %q", key, tc.wantKey)
			}
			if m := f.Manifest; m.ID != "acme" || m.Auth.Issuer != "https://acme.example" || m.Auth.Audience != "syncplane" {
				t.Errorf("manifest = %+v", m)
			}
		})
	}
}

// Loading a tenant again after its schema changed migrates its storage when
// the change is additive and refuses it, leaving the storage and the running
// tenant as they were, when it is destructive.
func TestSchemaReload(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		st := db.Open(t)
		dir := t.TempDir()
		writeFiles(t, dir, goodTenant("acme"))
		opt := tenant.Options{Store: st, Log: quietLog()}
		v1, err := tenant.Load(ctx, dir, opt)
		if err != nil {
			t.Fatal(err)
		}
		mustPush(t, v1, "u1", event("User", "create", user("u1", nil)), event("Board", "create", board("b1", "u1")))

		// Additive: an optional field and a new model owned by User.
		additive := strings.Replace(kanban, "  boards        Board[]\n", "  boards        Board[]\n  nickname      String?\n  tags          Tag[]\n", 1) + `
model Tag {
  id     String @id
  label  String
  user   User   @relation(fields: [userId], references: [id], onDelete: Cascade)
  userId String
}
`
		if !strings.Contains(additive, "nickname") {
			t.Fatal("the kanban schema changed; update this test")
		}
		writeFiles(t, dir, map[string]string{"schema.prisma": additive})
		v2, err := tenant.Load(ctx, dir, opt)
		if err != nil {
			t.Fatalf("additive change refused: %v", err)
		}
		mustPush(t, v2, "u1",
			event("User", "update", user("u1", map[string]any{"nickname": "ada"})),
			event("Tag", "create", map[string]any{"id": "t1", "label": "urgent", "userId": "u1"}))
		recs, err := v2.Store.Load(ctx, "User", []string{"id"}, [][]any{{"u1"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0]["nickname"] != "ada" || recs[0]["name"] != "User u1" {
			t.Errorf("u1 after the update = %v", recs)
		}
		tags, err := v2.Store.Load(ctx, "Tag", []string{"id"}, [][]any{{"t1"}})
		if err != nil || len(tags) != 1 || tags[0]["label"] != "urgent" {
			t.Errorf("tag t1 = %v, %v", tags, err)
		}
		// Records written before the change read back with the new field null.
		boards, err := v2.Store.Load(ctx, "Board", []string{"id"}, [][]any{{"b1"}})
		if err != nil || len(boards) != 1 {
			t.Errorf("board b1 = %v, %v", boards, err)
		}

		// Destructive: the image field is dropped.
		destructive := strings.Replace(additive, "  image         String?\n", "", 1)
		if destructive == additive {
			t.Fatal("the kanban schema changed; update this test")
		}
		writeFiles(t, dir, map[string]string{"schema.prisma": destructive})
		if v3, err := tenant.Load(ctx, dir, opt); err == nil {
			t.Fatalf("destructive change applied (tenant %s)", v3.Manifest.ID)
		} else if !strings.Contains(err.Error(), "destructive") || !strings.Contains(err.Error(), `"image"`) {
			t.Errorf("error %q does not say the change is destructive and name the field", err)
		}
		// The running version still works, image and all.
		mustPush(t, v2, "u1", event("User", "update", user("u1", map[string]any{"nickname": "ada", "image": "https://example.com/ada.png"})))
		recs, err = v2.Store.Load(ctx, "User", []string{"id"}, [][]any{{"u1"}})
		if err != nil || len(recs) != 1 || recs[0]["image"] != "https://example.com/ada.png" {
			t.Errorf("u1 after the refused change = %v, %v", recs, err)
		}
		// The changelog (compacted: a record's latest entry) across the
		// schema change: board b1's create, tag t1's create, then u1's last
		// update (its create and first update are gone).
		if diff := cmp.Diff([]string{"Board", "Tag", "User"}, pulled(t, v2, "u1")); diff != "" {
			t.Errorf("pull (-want +got):\n%s", diff)
		}
		// And the files put back as they were load again.
		writeFiles(t, dir, map[string]string{"schema.prisma": additive})
		if _, err := tenant.Load(ctx, dir, opt); err != nil {
			t.Errorf("reload of the applied schema: %v", err)
		}
	})
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	reg := tenant.NewRegistry()
	mk := func(id string) *tenant.Tenant { return &tenant.Tenant{Manifest: &tenant.Manifest{ID: id}} }
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			id := fmt.Sprintf("t%02d", i)
			reg.Put(mk(id))
			_ = reg.Get(id)
			_ = reg.IDs()
			if i%2 == 1 {
				reg.Remove(id)
			}
		})
	}
	wg.Wait()
	want := []string{"t00", "t02", "t04", "t06", "t08", "t10", "t12", "t14", "t16", "t18"}
	if diff := cmp.Diff(want, reg.IDs()); diff != "" {
		t.Errorf("IDs (-want +got):\n%s", diff)
	}
	replacement := mk("t00")
	reg.Put(replacement)
	if reg.Get("t00") != replacement {
		t.Error("Put did not replace")
	}
	if reg.Get("t01") != nil {
		t.Error("removed tenant still there")
	}
}

func modelNames(ms []*schema.Model) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

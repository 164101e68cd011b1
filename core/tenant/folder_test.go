package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// readPIDBKanban reads a file of the schema package's copy of prisma-idb's
// kanban example (apps/pidb-kanban-example/prisma, unchanged).
func readPIDBKanban(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "schema", "testdata", "pidb-kanban", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A prisma-idb app's prisma folder, taken as it is: prisma/schema.prisma
// with the generator blocks (rootModel, exclude), better-auth's models
// (Session and Account related to the root, Verification alone), the
// Changelog model and ChangeOperation enum, and prisma/models/todo.prisma
// with Board and Todo. The manifest states neither rootModel nor exclude.
func TestLoadPrismaIDBKanbanExample(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			tenant.ManifestFile:         "id: pidb-kanban\nschema: prisma\nauth:\n  hs256SecretFile: secret\nrootFromToken: {id: sub, name: name, email: email}\n",
			"secret":                    secret,
			"prisma/schema.prisma":      readPIDBKanban(t, "schema.prisma"),
			"prisma/models/todo.prisma": readPIDBKanban(t, "models/todo.prisma"),
		})
		tn, err := tenant.Load(context.Background(), dir, tenant.Options{Store: db.Open(t), Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		fs, err := tn.Folder.Schema()
		if err != nil {
			t.Fatal(err)
		}
		if fs.RootModel != "User" || tn.Own.Root.Name != "User" {
			t.Errorf("root model %q", fs.RootModel)
		}
		if diff := cmp.Diff([]string{"Session", "Account", "Verification"}, fs.Exclude); diff != "" {
			t.Errorf("exclude (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"User", "Board", "Todo"}, modelNames(tn.Own.Synced())); diff != "" {
			t.Errorf("synced (-want +got):\n%s", diff)
		}
		// Excluded and bookkeeping models have no table.
		for _, m := range []string{"Session", "Account", "Verification", "Changelog"} {
			if _, err := tn.Store.Find(context.Background(), m, nil, nil, 1); err == nil {
				t.Errorf("%s has a table", m)
			}
		}
		// User's table is "user" (@@map): the kanban data round-trips.
		mustPush(t, tn, "u1", event("User", "create", user("u1", nil)), event("Board", "create", board("b1", "u1")),
			event("Todo", "create", map[string]any{"id": "t1", "title": "Ship", "description": nil, "isCompleted": false, "createdAt": ts, "boardId": "b1"}))
		if diff := cmp.Diff([]string{"User", "Board", "Todo"}, pulled(t, tn, "u1")); diff != "" {
			t.Errorf("pull (-want +got):\n%s", diff)
		}
	})
}

// The root model and the exclude list come from the manifest, the
// generator block, or both when they agree.
func TestFolderSchemaResolution(t *testing.T) {
	t.Parallel()
	const models = `
model User {
  id       String    @id
  sessions Session[]
  notes    Note[]
}

model Session {
  id     String @id
  user   User   @relation(fields: [userId], references: [id], onDelete: Cascade)
  userId String
}

model Note {
  id     String @id
  user   User   @relation(fields: [userId], references: [id], onDelete: Cascade)
  userId String
}

model Changelog {
  id            String          @id @default(uuid(7))
  model         String
  keyPath       Json
  operation     ChangeOperation
  scopeKey      String
  outboxEventId String          @unique

  @@index([model, id])
}

enum ChangeOperation {
  create
  update
  delete
}
`
	// The generator block's lines: rootModel on 5 (column 16), exclude
	// or include on 6 (column 16).
	gen := func(lines ...string) string {
		return "generator client {\n  provider = \"prisma-client\"\n  output   = \"../generated/prisma\"\n}\ngenerator idb {\n" +
			strings.Join(lines, "\n") + "\n  provider   = \"idb-client-generator\"\n  outboxSync = true\n}\n"
	}
	const (
		genRoot    = `  rootModel  = "User"`
		genExclude = `  exclude    = ["Session"]`
	)
	tests := map[string]struct {
		manifest string // lines after "schema: prisma" (line 3 on)
		gen      string // the first lines of the idb generator block; "none": no such block
		root     string
		exclude  []string
		synced   []string
		err      string // with the folder written as DIR
	}{
		"generator-only": {
			gen: genRoot + "\n" + genExclude, root: "User", exclude: []string{"Session"}, synced: []string{"User", "Note"},
		},
		"generator-include": {
			gen: genRoot + "\n" + `  include    = ["User", "No*"]`, root: "User", exclude: []string{"Session"}, synced: []string{"User", "Note"},
		},
		"manifest-only": {
			manifest: "rootModel: User\nexclude: [Session]\n", gen: "none", root: "User", exclude: []string{"Session"}, synced: []string{"User", "Note"},
		},
		"manifest-agrees": {
			manifest: "rootModel: User\nexclude: [Session]\n", gen: genRoot + "\n" + genExclude, root: "User", exclude: []string{"Session"}, synced: []string{"User", "Note"},
		},
		"manifest-root-generator-exclude": {
			manifest: "rootModel: User\n", gen: genExclude, root: "User", exclude: []string{"Session"}, synced: []string{"User", "Note"},
		},
		// The manifest may keep more models from being synced than the
		// client leaves out.
		"manifest-exclude-superset": {
			manifest: "exclude: [Session, Note]\n", gen: genRoot + "\n" + genExclude, root: "User", exclude: []string{"Session", "Note"}, synced: []string{"User"},
		},
		"manifest-exclude-lists-changelog": {
			manifest: "exclude: [Changelog, Session]\n", gen: genRoot + "\n" + genExclude, root: "User", exclude: []string{"Changelog", "Session"}, synced: []string{"User", "Note"},
		},
		"root-contradiction": {
			manifest: "rootModel: Note\n", gen: genRoot + "\n" + genExclude,
			err: `DIR/tenant.yaml:3:12: rootModel "Note" contradicts rootModel "User" of the schema's generator idb (DIR/prisma/schema.prisma:6:16); state it in one place, or the same in both`,
		},
		"exclude-omits": {
			manifest: "exclude: []\n", gen: genRoot + "\n" + genExclude,
			err: `DIR/tenant.yaml:3:10: exclude leaves out Session, which the schema's generator idb excludes (DIR/prisma/schema.prisma:7:16): the app's client has no such model to sync; add it to the manifest's exclude, or drop the manifest's exclude to use the generator's`,
		},
		"exclude-omits-include": {
			manifest: "exclude: [Note]\n", gen: genRoot + "\n" + `  include    = ["User", "Note"]`,
			err: `DIR/tenant.yaml:3:10: exclude leaves out Session, which the schema's generator idb excludes (DIR/prisma/schema.prisma:7:16): the app's client has no such model to sync; add it to the manifest's exclude, or drop the manifest's exclude to use the generator's`,
		},
		"no-root-anywhere": {
			gen: genExclude,
			err: `DIR/tenant.yaml:1:1: no root model: state rootModel in the manifest or in the schema's generator idb (DIR/prisma/schema.prisma:5:11)`,
		},
		"no-root-no-generator": {
			gen: "none",
			err: `DIR/tenant.yaml:1:1: no root model: state rootModel in the manifest, or in the schema's prisma-idb generator block (provider = "idb-client-generator"), which the schema does not have`,
		},
		// Without the generator's exclude, Session is synced: it reaches
		// the root, so that is no error.
		"no-generator-no-exclude": {
			manifest: "rootModel: User\n", gen: "none", root: "User", synced: []string{"User", "Session", "Note"},
		},
		"rootFromToken-checked-against-generator-root": {
			manifest: "rootFromToken: {}\n", gen: genRoot,
			err: `DIR/tenant.yaml:3:16: rootFromToken must map the primary key "id" of root model User (DIR/prisma/models/models.prisma:3:3) to a claim, usually id: sub`,
		},
	}
	st := storetest.DB{Name: "sqlite"}.Open(t)
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			schemaSrc := "datasource db {\n  provider = \"postgresql\"\n}\n"
			if tc.gen != "none" {
				schemaSrc = gen(tc.gen) + schemaSrc
			}
			writeFiles(t, dir, map[string]string{
				tenant.ManifestFile:           fmt.Sprintf("id: %.40s\nschema: prisma\n%sauth:\n  hs256SecretFile: secret\n", strings.ToLower(name), tc.manifest),
				"secret":                      secret,
				"prisma/schema.prisma":        schemaSrc,
				"prisma/models/models.prisma": models,
			})
			f, err := tenant.OpenFolder(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			fs, err := f.Schema()
			if tc.err != "" {
				if got := errText(err, dir); got != tc.err {
					t.Errorf("error:\n got %s\nwant %s", got, tc.err)
				}
				if _, lerr := tenant.Load(context.Background(), dir, tenant.Options{Store: st, Log: quietLog()}); errText(lerr, dir) != tc.err {
					t.Errorf("Load error:\n got %s\nwant %s", errText(lerr, dir), tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fs.RootModel != tc.root {
				t.Errorf("root %q, want %q", fs.RootModel, tc.root)
			}
			if diff := cmp.Diff(tc.exclude, fs.Exclude); diff != "" {
				t.Errorf("exclude (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.synced, modelNames(fs.Own.Synced())); diff != "" {
				t.Errorf("synced (-want +got):\n%s", diff)
			}
			if again, _ := f.Schema(); again != fs {
				t.Error("Schema read the folder twice")
			}
			tn, err := tenant.Load(context.Background(), dir, tenant.Options{Store: st, Log: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.synced, modelNames(tn.Own.Synced())); diff != "" {
				t.Errorf("loaded tenant's synced models (-want +got):\n%s", diff)
			}
		})
	}
}

func errText(err error, dir string) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), dir, "DIR")
}

// Each command reads only what it needs of a folder: a broken schema
// does not keep the policy, the key or the validator configuration from
// being read.
func TestFolderParts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		tenant.ManifestFile: "id: parts\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: PARTS_SECRET\npolicy: policy.csv\n" +
			"validator:\n  command: bin/validator\n  sha256: " + strings.Repeat("ab", 32) + "\n  timeout: 3s\n  memoryMB: 64\n",
		"schema.prisma": "model User {\n  id String @id\n  oops\n}\n",
		"policy.csv":    "p, *, $self, *, *, allow\n",
	})
	f, err := tenant.OpenFolder(dir, func(k string) string {
		if k == "PARTS_SECRET" {
			return secret
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Schema(); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "schema.prisma")+":3:") {
		t.Errorf("Schema error = %v, want one at schema.prisma:3", err)
	}
	if _, err := f.Policy(); err != nil || f.PolicyFile() != filepath.Join(dir, "policy.csv") {
		t.Errorf("Policy: %v, file %q", err, f.PolicyFile())
	}
	if key, err := f.SigningSecret(); err != nil || string(key) != secret {
		t.Errorf("SigningSecret = %q, %v", key, err)
	}
	if _, err := f.Verifier(); err != nil {
		t.Errorf("Verifier: %v", err)
	}
	cfg, err := f.ValidatorConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tenant != "parts" || cfg.Command != filepath.Join(dir, "bin", "validator") || cfg.Timeout.String() != "3s" || cfg.MemoryBytes != 64<<20 {
		t.Errorf("ValidatorConfig = %+v", cfg)
	}

	// Without a validator section, ValidatorConfig says so.
	writeFiles(t, dir, map[string]string{tenant.ManifestFile: "id: parts\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: PARTS_SECRET\n"})
	f, err = tenant.OpenFolder(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ValidatorConfig(); !errors.Is(err, tenant.ErrNoValidator) {
		t.Errorf("ValidatorConfig without a validator: %v", err)
	}
	if f.PolicyFile() != "" {
		t.Errorf("PolicyFile without a policy = %q", f.PolicyFile())
	}
}

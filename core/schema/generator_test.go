package schema

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The kanban example of prisma-idb (apps/pidb-kanban-example/prisma, both
// files copied unchanged from prisma-idb/idb-client-generator at
// a480fc34): schema.prisma with the generator blocks, better-auth's
// models, the Changelog model and ChangeOperation enum; models/todo.prisma
// with Board and Todo.
func TestLoadPrismaIDBKanbanExample(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, "testdata/pidb-kanban")
	file := filepath.Join("testdata", "pidb-kanban", "schema.prisma")
	want := &IDBGenerator{
		Name: "prismaIDBrowser", Pos: Pos{file, 6, 11},
		RootModel: "User", RootModelPos: Pos{file, 11, 16},
		Exclude: []string{"Session", "Verification", "Account"}, ExcludePos: Pos{file, 10, 16},
	}
	if diff := cmp.Diff(want, s.IDB); diff != "" {
		t.Errorf("IDB (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Board", "Todo", "User", "Session", "Account", "Verification", "Changelog"}, modelNames(s.Models)); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
	if got := s.Model("Board").Pos.File; got != filepath.Join("testdata", "pidb-kanban", "models", "todo.prisma") {
		t.Errorf("Board is declared in %s", got)
	}
	if got := s.Model("User").Table; got != "user" {
		t.Errorf("User's table = %q, want user (@@map)", got)
	}
	excluded := s.IDB.Excluded(s)
	if diff := cmp.Diff([]string{"Session", "Account", "Verification"}, excluded); diff != "" {
		t.Errorf("Excluded (-want +got):\n%s", diff)
	}
	// The generator's own settings build the DAG: the auth models (two of
	// them related to the root) and the Changelog are not synced, and
	// nothing complains that they cannot reach the root.
	o, err := BuildOwnership(s, s.IDB.RootModel, excluded)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"User", "Board", "Todo"}, modelNames(o.Synced())); diff != "" {
		t.Errorf("synced (-want +got):\n%s", diff)
	}
	for _, m := range []string{"Session", "Account", "Verification", "Changelog"} {
		if o.IsSynced(m) {
			t.Errorf("%s is synced", m)
		}
	}
	if s.Enum(ChangeOperationEnum) == nil || !IsBookkeeping("Changelog") || !IsBookkeeping("ChangeOperation") || IsBookkeeping("Board") {
		t.Errorf("bookkeeping names are not recognized")
	}
}

func TestIDBGenerator(t *testing.T) {
	t.Parallel()
	const models = `
model User {
  id String @id
}
model Session {
  id     String @id
  user   User   @relation(fields: [userId], references: [id])
  userId String
}
model AuditLog {
  id String @id
}
model AuditTrail {
  id String @id
}
`
	tests := map[string]struct {
		gen      string
		root     string
		excluded []string
	}{
		"no-generator":          {gen: `generator client { provider = "prisma-client" output = "x" }`},
		"other-provider":        {gen: `generator x { provider = "my-idb-client-generator" rootModel = "User" }`},
		"plain":                 {gen: `generator p { provider = "idb-client-generator" rootModel = "User" }`, root: "User"},
		"path-provider":         {gen: `generator p { provider = "../node_modules/.bin/idb-client-generator" rootModel = "User" }`, root: "User"},
		"package-provider":      {gen: `generator p { provider = "@prisma-idb/idb-client-generator" exclude = ["Session"] }`, excluded: []string{"Session"}},
		"command-provider":      {gen: `generator p { provider = "npx idb-client-generator" rootModel = "User" }`, root: "User"},
		"exclude-comma-string":  {gen: `generator p { provider = "idb-client-generator" exclude = "Session, AuditLog" }`, excluded: []string{"Session", "AuditLog"}},
		"exclude-glob":          {gen: `generator p { provider = "idb-client-generator" exclude = ["Audit*", "Nope"] }`, excluded: []string{"AuditLog", "AuditTrail"}},
		"exclude-changelog":     {gen: `generator p { provider = "idb-client-generator" exclude = ["Changelog"] }`},
		"include":               {gen: `generator p { provider = "idb-client-generator" include = ["User", "Session"] }`, excluded: []string{"AuditLog", "AuditTrail"}},
		"include-star":          {gen: `generator p { provider = "idb-client-generator" include = ["*"] exclude = ["AuditLog"] }`, excluded: []string{"AuditLog"}},
		"outbox-and-other-keys": {gen: `generator p { provider = "idb-client-generator" output = "./prisma-idb" outboxSync = true rootModel = "User" }`, root: "User"},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tc.gen+"\n"+models+"model Changelog {\n  id String @id\n}\n")
			var root string
			if s.IDB != nil {
				root = s.IDB.RootModel
			}
			if root != tc.root {
				t.Errorf("rootModel %q, want %q", root, tc.root)
			}
			if diff := cmp.Diff(tc.excluded, s.IDB.Excluded(s)); diff != "" {
				t.Errorf("excluded (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIDBGeneratorErrors(t *testing.T) {
	t.Parallel()
	const models = "model User {\n  id String @id\n}\nmodel Changelog {\n  id String @id\n}\n"
	tests := map[string]struct {
		gen  string
		want []string
	}{
		"unknown-root": {
			gen:  `generator p { provider = "idb-client-generator" rootModel = "Usr" }`,
			want: []string{`schema.prisma:1:61: generator p: rootModel "Usr" is not a model of the schema`},
		},
		"excluded-root": {
			gen:  `generator p { provider = "idb-client-generator" rootModel = "User" exclude = ["U*"] }`,
			want: []string{`schema.prisma:1:61: generator p: rootModel "User" is excluded from the client`},
		},
		"changelog-root": {
			gen:  `generator p { provider = "idb-client-generator" rootModel = "Changelog" }`,
			want: []string{`schema.prisma:1:61: generator p: rootModel "Changelog" is excluded from the client`},
		},
		"root-not-a-string": {
			gen:  `generator p { provider = "idb-client-generator" rootModel = User }`,
			want: []string{`schema.prisma:1:61: generator p: rootModel must be a model name in quotes`},
		},
		"exclude-not-strings": {
			gen:  `generator p { provider = "idb-client-generator" exclude = [Session] }`,
			want: []string{`schema.prisma:1:59: generator p: exclude must be a list of model names in quotes, e.g. ["Session", "Account"]`},
		},
		"include-and-exclude": {
			gen:  `generator p { provider = "idb-client-generator" include = ["User"] exclude = ["Changelog"] }`,
			want: []string{`schema.prisma:1:59: generator p: include and exclude are mutually exclusive; state one of them`},
		},
		"two-blocks": {
			gen:  "generator a { provider = \"idb-client-generator\" }\ngenerator b { provider = \"idb-client-generator\" }",
			want: []string{`schema.prisma:2:11: generator b: a second idb-client-generator block (the first is generator a at schema.prisma:1:11)`},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(File{Name: "schema.prisma", Src: []byte(tc.gen + "\n" + models)})
			if diff := cmp.Diff(tc.want, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// The Changelog model is never synced, whatever the exclude list says,
// and never the root.
func TestOwnershipBookkeeping(t *testing.T) {
	t.Parallel()
	s := mustParse(t, `
model User {
  id String @id
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
`)
	o, err := BuildOwnership(s, "User", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"User"}, modelNames(o.Synced())); diff != "" {
		t.Errorf("synced (-want +got):\n%s", diff)
	}
	if _, err := BuildOwnership(s, "User", []string{"Changelog"}); err != nil {
		t.Errorf("excluding the Changelog explicitly: %v", err)
	}
	_, err = BuildOwnership(s, "Changelog", nil)
	if got, want := errString(err), `schema.prisma:5:7: root model "Changelog" is the client's changelog (prisma-idb's bookkeeping), which is never synced`; got != want {
		t.Errorf("root Changelog: %s, want %s", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

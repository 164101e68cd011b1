package schema

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pathStrings renders paths as "Model.field>Model.field".
func pathStrings(o *Ownership, model string) []string {
	var out []string
	for _, p := range o.Paths(model) {
		hops := []string{}
		for _, rel := range p {
			hops = append(hops, rel.Name+"->"+rel.Target)
		}
		out = append(out, strings.Join(hops, ","))
	}
	return out
}

func modelNames(ms []*Model) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestOwnershipKanban(t *testing.T) {
	t.Parallel()
	o, err := BuildOwnership(mustLoad(t, "testdata/kanban.prisma"), "User", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"synced": modelNames(o.Synced()),
		"User":   pathStrings(o, "User"),
		"Board":  pathStrings(o, "Board"),
		"Todo":   pathStrings(o, "Todo"),
		"scope":  o.ScopeField().Name,
	}
	want := map[string]any{
		"synced": []string{"User", "Board", "Todo"},
		"User":   []string{""},
		"Board":  []string{"user->User"},
		"Todo":   []string{"board->Board,user->User"},
		"scope":  "id",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ownership (-want +got):\n%s", diff)
	}
	if o.Root.Name != "User" || !o.IsSynced("Todo") || o.IsSynced("Nope") || o.Paths("Nope") != nil {
		t.Errorf("Root/IsSynced/Paths of unknown model are wrong")
	}
}

// Comments are declared before their parents on purpose: Synced must still
// list parents first.
const multiPathSrc = `
model Comment {
  id        Int      @id
  task      Task     @relation(fields: [taskId], references: [id])
  taskId    Int
  project   Project? @relation(fields: [projectId], references: [id])
  projectId Int?
  author    Account  @relation(fields: [authorId], references: [id])
  authorId  Int
}
model Task {
  id        Int     @id
  project   Project @relation(fields: [projectId], references: [id])
  projectId Int
  org       Org     @relation(fields: [orgId], references: [id])
  orgId     BigInt
}
model Project {
  id    Int    @id
  org   Org    @relation(fields: [orgId], references: [id])
  orgId BigInt
}
model Org {
  id BigInt @id
}
model Account {
  id    Int    @id
  email String @unique
}
`

func TestOwnershipMultiPath(t *testing.T) {
	t.Parallel()
	o, err := BuildOwnership(mustParse(t, multiPathSrc), "Org", []string{"Account"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"synced":  modelNames(o.Synced()),
		"Comment": pathStrings(o, "Comment"),
		"Task":    pathStrings(o, "Task"),
		"Account": o.IsSynced("Account"),
	}
	want := map[string]any{
		"synced": []string{"Org", "Project", "Task", "Comment"},
		// Shortest first; equal lengths in source order of the fields.
		"Comment": []string{
			"task->Task,org->Org",
			"project->Project,org->Org",
			"task->Task,project->Project,org->Org",
		},
		"Task":    []string{"org->Org", "project->Project,org->Org"},
		"Account": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ownership (-want +got):\n%s", diff)
	}
}

func TestOwnershipErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		src     string
		root    string
		exclude []string
		want    string
	}{
		"case=unknown_root": {
			src: multiPathSrc, root: "Nope", exclude: []string{"Account"},
			want: `schema: root model "Nope" does not exist`,
		},
		"case=excluded_root": {
			src: multiPathSrc, root: "Org", exclude: []string{"Org"},
			want: `schema: root model "Org" is excluded`,
		},
		"case=unknown_excluded": {
			src: multiPathSrc, root: "Org", exclude: []string{"Ghost"},
			want: `schema: excluded model "Ghost" does not exist`,
		},
		"case=composite_root_key": {
			src:  "model Org {\n  a Int\n  b Int\n  @@id([a, b])\n}\n",
			root: "Org",
			want: `schema.prisma:1:7: root model "Org" must have a single-field primary key`,
		},
		"case=bad_root_key_type": {
			src:  "model Org {\n  id DateTime @id\n}\n",
			root: "Org",
			want: `schema.prisma:2:3: root model "Org": primary key "id" must be of type String, Int or BigInt, not DateTime`,
		},
		"case=unreachable": {
			src: multiPathSrc, root: "Org",
			want: `schema.prisma:26:7: model Account cannot reach root model Org`,
		},
		"case=cycle": {
			src: "model U {\n  id String @id\n}\n" +
				"model A {\n  id String @id\n  b B @relation(fields: [bId], references: [id])\n  bId String\n  u U @relation(fields: [uId], references: [id])\n  uId String\n}\n" +
				"model B {\n  id String @id\n  a A? @relation(fields: [aId], references: [id])\n  aId String?\n}\n",
			root: "U",
			want: "schema.prisma:4:7: ownership cycle: A -> B -> A",
		},
		"case=cycle_through_root": {
			src: "model U {\n  id String @id\n  a A? @relation(fields: [aId], references: [id])\n  aId String?\n}\n" +
				"model A {\n  id String @id\n  u U @relation(fields: [uId], references: [id])\n  uId String\n}\n",
			root: "U",
			want: "schema.prisma:1:7: ownership cycle: U -> A -> U",
		},
		"case=self_relation": {
			src: "model U {\n  id String @id\n}\n" +
				"model Comment {\n  id String @id\n  u U @relation(fields: [uId], references: [id])\n  uId String\n  parent Comment? @relation(\"thread\", fields: [parentId], references: [id])\n  parentId String?\n  replies Comment[] @relation(\"thread\")\n}\n",
			root: "U",
			want: "schema.prisma:4:7: ownership cycle: Comment -> Comment",
		},
		"case=several": {
			src: "model U {\n  id String @id\n}\n" +
				"model Lone {\n  id String @id\n}\n" +
				"model Self {\n  id String @id\n  s Self? @relation(fields: [sId], references: [id])\n  sId String?\n}\n",
			root: "U",
			want: "schema.prisma:4:7: model Lone cannot reach root model U\n" +
				"schema.prisma:7:7: ownership cycle: Self -> Self\n" +
				"schema.prisma:7:7: model Self cannot reach root model U",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o, err := BuildOwnership(mustParse(t, tt.src), tt.root, tt.exclude)
			if err == nil {
				t.Fatalf("BuildOwnership succeeded with %v, want error", modelNames(o.Synced()))
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestOwnershipExcludedTarget(t *testing.T) {
	t.Parallel()
	// A relation from a synced model to an excluded one is not an ownership
	// edge, and an excluded model may point at synced ones.
	src := "model U {\n  id Int @id\n}\n" +
		"model Plan {\n  id Int @id\n  u U? @relation(fields: [uId], references: [id])\n  uId Int?\n}\n" +
		"model Doc {\n  id Int @id\n  plan Plan @relation(fields: [planId], references: [id])\n  planId Int\n  u U @relation(fields: [uId], references: [id])\n  uId Int\n}\n"
	o, err := BuildOwnership(mustParse(t, src), "U", []string{"Plan"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"u->U"}, pathStrings(o, "Doc")); diff != "" {
		t.Errorf("Doc paths (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"U", "Doc"}, modelNames(o.Synced())); diff != "" {
		t.Errorf("Synced (-want +got):\n%s", diff)
	}
}

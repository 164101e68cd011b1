package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/store"
)

// parseSchema parses src and builds its ownership DAG for root.
func parseSchema(t testing.TB, src, root string, exclude ...string) (*schema.Schema, *schema.Ownership) {
	t.Helper()
	s, err := schema.Parse(schema.File{Name: "schema.prisma", Src: []byte(src)})
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	own, err := schema.BuildOwnership(s, root, exclude)
	if err != nil {
		t.Fatalf("ownership: %v", err)
	}
	return s, own
}

func layoutOf(t testing.TB, src, root string, exclude ...string) store.Layout {
	t.Helper()
	l, err := store.LayoutOf(parseSchema(t, src, root, exclude...))
	if err != nil {
		t.Fatalf("LayoutOf: %v", err)
	}
	return l
}

const layoutSchema = `
enum Role {
  OWNER
  MEMBER
}

model Org {
  id        String   @id
  name      String   @unique
  createdAt DateTime @default(now())
  members   Member[]
  items     Item[]
  @@map("orgs")
}

model User {
  id      String   @id
  members Member[]
}

model Member {
  orgId  String @map("org_id")
  userId String
  role   Role   @default(MEMBER)
  org    Org    @relation(fields: [orgId], references: [id])
  user   User   @relation(fields: [userId], references: [id])
  items  Item[]
  @@id([orgId, userId])
}

model Item {
  id          String    @id
  orgId       String
  org         Org       @relation(fields: [orgId], references: [id], onDelete: Cascade)
  ownerOrgId  String?
  ownerUserId String?
  owner       Member?   @relation(fields: [ownerOrgId, ownerUserId], references: [orgId, userId])
  sku         String
  s           String    @default("it's")
  i           Int       @default(42)
  f           Float     @default(1.5)
  b           Boolean   @default(true)
  d           DateTime
  j           Json
  by          Bytes
  bi          BigInt
  dec         Decimal
  e           Role?
  tags        String[]
  nums        Int[]
  n           Int?      @map("maybe_n")
  updatedAt   DateTime  @updatedAt
  @@unique([orgId, sku])
}
`

func TestLayoutOf(t *testing.T) {
	t.Parallel()
	got := layoutOf(t, layoutSchema, "Org", "User")
	now := json.RawMessage(`"now()"`)
	want := store.Layout{Tables: []store.Table{
		{
			Name: "orgs", Model: "Org",
			Columns: []store.Column{
				{Name: "id", Field: "id", Type: "String"},
				{Name: "name", Field: "name", Type: "String"},
				{Name: "createdAt", Field: "createdAt", Type: "DateTime", Default: now},
			},
			PrimaryKey: []string{"id"},
			Uniques:    [][]string{{"name"}},
		},
		{
			Name: "Member", Model: "Member",
			Columns: []store.Column{
				{Name: "org_id", Field: "orgId", Type: "String"},
				{Name: "userId", Field: "userId", Type: "String"},
				{Name: "role", Field: "role", Type: "enum:Role", Default: json.RawMessage(`"MEMBER"`)},
			},
			PrimaryKey: []string{"org_id", "userId"},
			// The relation to the excluded User is a plain column: no foreign key.
			ForeignKeys: []store.ForeignKey{
				{Columns: []string{"org_id"}, RefTable: "orgs", RefColumns: []string{"id"}, OnDelete: "RESTRICT"},
			},
		},
		{
			Name: "Item", Model: "Item",
			Columns: []store.Column{
				{Name: "id", Field: "id", Type: "String"},
				{Name: "orgId", Field: "orgId", Type: "String"},
				{Name: "ownerOrgId", Field: "ownerOrgId", Type: "String", Nullable: true},
				{Name: "ownerUserId", Field: "ownerUserId", Type: "String", Nullable: true},
				{Name: "sku", Field: "sku", Type: "String"},
				{Name: "s", Field: "s", Type: "String", Default: json.RawMessage(`"it's"`)},
				{Name: "i", Field: "i", Type: "Int", Default: json.RawMessage(`42`)},
				{Name: "f", Field: "f", Type: "Float", Default: json.RawMessage(`1.5`)},
				{Name: "b", Field: "b", Type: "Boolean", Default: json.RawMessage(`true`)},
				{Name: "d", Field: "d", Type: "DateTime"},
				{Name: "j", Field: "j", Type: "Json"},
				{Name: "by", Field: "by", Type: "Bytes"},
				{Name: "bi", Field: "bi", Type: "BigInt"},
				{Name: "dec", Field: "dec", Type: "Decimal"},
				{Name: "e", Field: "e", Type: "enum:Role", Nullable: true},
				{Name: "tags", Field: "tags", Type: "String", List: true},
				{Name: "nums", Field: "nums", Type: "Int", List: true},
				{Name: "maybe_n", Field: "n", Type: "Int", Nullable: true},
				{Name: "updatedAt", Field: "updatedAt", Type: "DateTime", Default: now},
			},
			PrimaryKey: []string{"id"},
			Uniques:    [][]string{{"orgId", "sku"}},
			ForeignKeys: []store.ForeignKey{
				{Columns: []string{"orgId"}, RefTable: "orgs", RefColumns: []string{"id"}, OnDelete: "CASCADE"},
				{Columns: []string{"ownerOrgId", "ownerUserId"}, RefTable: "Member", RefColumns: []string{"org_id", "userId"}, OnDelete: "SET NULL"},
			},
		},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LayoutOf mismatch (-want +got):\n%s", diff)
	}
	if again := layoutOf(t, layoutSchema, "Org", "User"); again.Hash() != got.Hash() {
		t.Errorf("Hash is not stable: %s != %s", again.Hash(), got.Hash())
	}
	if other := layoutOf(t, strings.Replace(layoutSchema, "String[]", "Int[]", 1), "Org", "User"); other.Hash() == got.Hash() {
		t.Errorf("Hash does not change with the layout")
	}
}

func TestLayoutOfOnDelete(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		optional bool
		onDelete string
		want     string
	}{
		"default-required": {want: "RESTRICT"},
		"default-optional": {optional: true, want: "SET NULL"},
		"Cascade":          {onDelete: "Cascade", want: "CASCADE"},
		"Restrict":         {optional: true, onDelete: "Restrict", want: "RESTRICT"},
		"NoAction":         {onDelete: "NoAction", want: "NO ACTION"},
		"SetNull":          {optional: true, onDelete: "SetNull", want: "SET NULL"},
		"SetDefault":       {onDelete: "SetDefault", want: "SET DEFAULT"},
	}
	for name, tc := range tests {
		t.Run("onDelete="+name, func(t *testing.T) {
			t.Parallel()
			q, action := "", ""
			if tc.optional {
				q = "?"
			}
			if tc.onDelete != "" {
				action = ", onDelete: " + tc.onDelete
			}
			src := fmt.Sprintf(`
model Org {
  id   String @id
  kids Kid[]
}
model Kid {
  id    String  @id
  orgId String%s
  org   Org%s   @relation(fields: [orgId], references: [id]%s)
}`, q, q, action)
			l := layoutOf(t, src, "Org")
			if got := l.Tables[1].ForeignKeys[0].OnDelete; got != tc.want {
				t.Errorf("OnDelete = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLayoutOfReservedTable(t *testing.T) {
	t.Parallel()
	for _, table := range []string{"_changelog", "_scope_heads", "_meta", "_Meta"} {
		t.Run("table="+table, func(t *testing.T) {
			t.Parallel()
			src := `
model Org {
  id   String @id
  logs Log[]
}
model Log {
  id    String @id
  orgId String
  org   Org    @relation(fields: [orgId], references: [id])
  @@map("` + table + `")
}`
			_, err := store.LayoutOf(parseSchema(t, src, "Org"))
			want := fmt.Sprintf(`model Log maps to table %q, which syncplane reserves`, table)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "schema.prisma:") {
				t.Fatalf("LayoutOf error = %v, want one at a position saying %q", err, want)
			}
		})
	}
}

// diffBase is the applied layout the Diff cases change.
const diffBase = `
enum Role {
  A
  B
}
model Org {
  id    String @id
  items Item[]
}
model Item {
  id    String  @id
  orgId String
  org   Org     @relation(fields: [orgId], references: [id], onDelete: Cascade)
  title String
  note  String?
  code  String  @unique
}
`

// edit applies replacements to diffBase, failing when one does not apply.
func edit(t testing.TB, pairs ...string) string {
	t.Helper()
	src := diffBase
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(src, pairs[i]) {
			t.Fatalf("edit: %q not in base schema", pairs[i])
		}
		src = strings.Replace(src, pairs[i], pairs[i+1], 1)
	}
	return src
}

// describe summarizes a change for comparison.
func describe(c store.Change) string {
	switch c.Kind {
	case "table":
		return "table " + c.Table.Name
	case "column":
		s := fmt.Sprintf("column %s.%s %s", c.Table.Name, c.Column.Name, c.Column.Type)
		if c.Column.Nullable {
			s += "?"
		}
		if c.Column.Default != nil {
			s += " default " + string(c.Column.Default)
		}
		if c.FK != nil {
			s += fmt.Sprintf(" -> %s(%s) %s", c.FK.RefTable, strings.Join(c.FK.RefColumns, ","), c.FK.OnDelete)
		}
		return s
	case "unique", "dropunique":
		return fmt.Sprintf("%s %s(%s)", c.Kind, c.Table.Name, strings.Join(c.Unique, ","))
	}
	return "unknown kind " + c.Kind
}

func TestDiffAdditive(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		src  func(t testing.TB) string
		want []string
	}{
		"no-change": {
			src: func(t testing.TB) string { return diffBase },
		},
		"new-table": {
			src: func(t testing.TB) string {
				return edit(t, "  items Item[]\n", "  items Item[]\n  tags Tag[]\n") + `
model Tag {
  id    String @id
  orgId String
  org   Org    @relation(fields: [orgId], references: [id])
}`
			},
			want: []string{"table Tag"},
		},
		"new-optional-column": {
			src:  func(t testing.TB) string { return edit(t, "  code ", "  extra Int?\n  code ") },
			want: []string{"column Item.extra Int?"},
		},
		"new-required-column-literal-default": {
			src: func(t testing.TB) string {
				return edit(t, "  code ", "  count Int @default(3)\n  role Role @default(B)\n  code ")
			},
			want: []string{`column Item.count Int default 3`, `column Item.role enum:Role default "B"`},
		},
		"new-required-column-now": {
			src: func(t testing.TB) string {
				return edit(t, "  code ", "  at DateTime @default(now())\n  touched DateTime @updatedAt\n  code ")
			},
			want: []string{`column Item.at DateTime default "now()"`, `column Item.touched DateTime default "now()"`},
		},
		"new-optional-relation-column": {
			src: func(t testing.TB) string {
				return edit(t, "  items Item[]\n", "  items Item[]\n  mains Item[] @relation(\"main\")\n",
					"  code ", "  mainId String?\n  main Org? @relation(\"main\", fields: [mainId], references: [id])\n  code ",
					"  org   Org     @relation(", "  org   Org     @relation(\"org\", ",
					"  items Item[]\n", "  items Item[] @relation(\"org\")\n")
			},
			want: []string{"column Item.mainId String? -> Org(id) SET NULL"},
		},
		"new-unique": {
			src: func(t testing.TB) string {
				return edit(t, "  code  String  @unique\n", "  code  String  @unique\n  @@unique([orgId, title])\n")
			},
			want: []string{"unique Item(orgId,title)"},
		},
		"dropped-unique": {
			src:  func(t testing.TB) string { return edit(t, "  code  String  @unique\n", "  code  String\n") },
			want: []string{"dropunique Item(code)"},
		},
	}
	old := layoutOf(t, diffBase, "Org")
	for name, tc := range tests {
		t.Run("change="+name, func(t *testing.T) {
			t.Parallel()
			changes, err := store.Diff(old, layoutOf(t, tc.src(t), "Org"))
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			var got []string
			for _, c := range changes {
				got = append(got, describe(c))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffFromEmpty(t *testing.T) {
	t.Parallel()
	changes, err := store.Diff(store.Layout{}, layoutOf(t, diffBase, "Org"))
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, describe(c))
	}
	if diff := cmp.Diff([]string{"table Org", "table Item"}, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func TestDiffDestructive(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		src  func(t testing.TB) string
		want []string
	}{
		"dropped-table": {
			src: func(t testing.TB) string {
				return "model Org {\n  id String @id\n}\n"
			},
			want: []string{`table "Item" (model Item) would be dropped`},
		},
		"dropped-column": {
			src:  func(t testing.TB) string { return edit(t, "  note  String?\n", "") },
			want: []string{`column "Item"."note" would be dropped`},
		},
		"type-change": {
			src:  func(t testing.TB) string { return edit(t, "  title String\n", "  title Int\n") },
			want: []string{`column "Item"."title" changes type from String to Int`},
		},
		"type-change-to-list": {
			src:  func(t testing.TB) string { return edit(t, "  title String\n", "  title String[]\n") },
			want: []string{`column "Item"."title" changes type from String to String[]`},
		},
		"type-change-to-enum": {
			src:  func(t testing.TB) string { return edit(t, "  title String\n", "  title Role\n") },
			want: []string{`column "Item"."title" changes type from String to enum:Role`},
		},
		"optional-to-required": {
			src:  func(t testing.TB) string { return edit(t, "  note  String?\n", "  note  String @default(\"\")\n") },
			want: []string{`column "Item"."note" changes from optional to required`},
		},
		"required-column-without-default": {
			src: func(t testing.TB) string { return edit(t, "  code ", "  count Int\n  code ") },
			want: []string{
				`column "Item"."count" is added as required without a @default, so existing rows would have no value`,
			},
		},
		"primary-key-change": {
			src: func(t testing.TB) string {
				return edit(t, "  id    String  @id\n", "  id    String\n", "  code  String  @unique\n", "  code  String  @unique\n  @@id([id, orgId])\n")
			},
			want: []string{`table "Item": primary key changes from (id) to (id, orgId)`},
		},
		"relation-onDelete-change": {
			src:  func(t testing.TB) string { return edit(t, "onDelete: Cascade", "onDelete: Restrict") },
			want: []string{`table "Item": the relation over orgId changes or is removed`},
		},
		"relation-removed": {
			src: func(t testing.TB) string {
				return edit(t, "  items Item[]\n", "", "  org   Org     @relation(fields: [orgId], references: [id], onDelete: Cascade)\n", "",
					"  note  String?\n", "  note  String?\n  ownerId String?\n  owner Org? @relation(fields: [ownerId], references: [id])\n",
					"model Org {\n", "model Org {\n  owned Item[]\n")
			},
			want: []string{`table "Item": the relation over orgId changes or is removed`},
		},
		"relation-added-over-existing-column": {
			src: func(t testing.TB) string {
				return edit(t, "  items Item[]\n", "  items Item[] @relation(\"org\")\n  noted Item[] @relation(\"note\")\n",
					"  org   Org     @relation(", "  org   Org     @relation(\"org\", ",
					"  note  String?\n", "  note  String?\n  noteOrg Org? @relation(\"note\", fields: [note], references: [id])\n")
			},
			want: []string{`table "Item": a relation is added over existing column(s) note`},
		},
		"several": {
			src: func(t testing.TB) string {
				return edit(t, "  note  String?\n", "", "  title String\n", "  title Int\n")
			},
			want: []string{
				`column "Item"."title" changes type from String to Int`,
				`column "Item"."note" would be dropped`,
			},
		},
	}
	old := layoutOf(t, diffBase, "Org")
	for name, tc := range tests {
		t.Run("change="+name, func(t *testing.T) {
			t.Parallel()
			changes, err := store.Diff(old, layoutOf(t, tc.src(t), "Org"))
			var de *store.DestructiveError
			if !errors.As(err, &de) {
				t.Fatalf("Diff = %v, %v; want a *DestructiveError", changes, err)
			}
			if changes != nil {
				t.Errorf("Diff returned changes with its error: %v", changes)
			}
			if diff := cmp.Diff(tc.want, de.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			wantMsg := "destructive schema change refused (migrate the data by hand, then reload): " + strings.Join(tc.want, "; ")
			if err.Error() != wantMsg {
				t.Errorf("Error() = %q\nwant      %q", err.Error(), wantMsg)
			}
		})
	}
}

package schema

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustLoad(t testing.TB, path string) *Schema {
	t.Helper()
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t testing.TB, src string) *Schema {
	t.Helper()
	s, err := Parse(File{Name: "schema.prisma", Src: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// errorStrings flattens an error from Parse into "file:line:col: msg" lines.
func errorStrings(t *testing.T, err error) []string {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not an ErrorList", err, err)
	}
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.Error()
	}
	return out
}

func TestParseKanban(t *testing.T) {
	t.Parallel()
	s := mustLoad(t, "testdata/kanban.prisma")
	pos := func(line, col int) Pos { return Pos{File: "testdata/kanban.prisma", Line: line, Column: col} }
	field := func(name, typ string, line int, mods ...func(*Field)) *Field {
		f := &Field{Name: name, Column: name, Type: typ, Pos: pos(line, 3)}
		for _, m := range mods {
			m(f)
		}
		return f
	}
	optional := func(f *Field) { f.Optional = true }
	def := func(d *Default) func(*Field) { return func(f *Field) { f.Default = d } }
	want := &Schema{Models: []*Model{
		{
			Name: "User", Table: "User", PrimaryKey: []string{"id"}, Uniques: [][]string{{"email"}}, Pos: pos(3, 7),
			Fields: []*Field{
				field("id", String, 4),
				field("name", String, 5),
				field("email", String, 6),
				field("emailVerified", Boolean, 7, def(&Default{Kind: DefaultValue, Value: false})),
				field("image", String, 8, optional),
				field("createdAt", DateTime, 9, def(&Default{Kind: DefaultNow})),
				field("updatedAt", DateTime, 10, func(f *Field) { f.UpdatedAt = true }),
				field("isAnonymous", Boolean, 11, optional),
			},
		},
		{
			Name: "Board", Table: "Board", PrimaryKey: []string{"id"}, Pos: pos(14, 7),
			Fields: []*Field{
				field("id", String, 15, def(&Default{Kind: DefaultUUID})),
				field("name", String, 16),
				field("createdAt", DateTime, 17, def(&Default{Kind: DefaultNow})),
				field("userId", String, 20),
			},
			Relations: []*Relation{{Name: "user", Target: "User", Fields: []string{"userId"}, References: []string{"id"}, OnDelete: "Cascade", Pos: pos(19, 3)}},
		},
		{
			Name: "Todo", Table: "Todo", PrimaryKey: []string{"id"}, Pos: pos(22, 7),
			Fields: []*Field{
				field("id", String, 23, def(&Default{Kind: DefaultUUID})),
				field("title", String, 24),
				field("description", String, 25, optional),
				field("isCompleted", Boolean, 26, def(&Default{Kind: DefaultValue, Value: false})),
				field("createdAt", DateTime, 27, def(&Default{Kind: DefaultNow})),
				field("boardId", String, 29),
			},
			Relations: []*Relation{{Name: "board", Target: "Board", Fields: []string{"boardId"}, References: []string{"id"}, OnDelete: "Cascade", Pos: pos(28, 3)}},
		},
	}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Load(kanban) mismatch (-want +got):\n%s", diff)
	}
}

const featuresSrc = `
// A schema using most of the supported subset.
datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}
generator client {
  provider        = "prisma-client-js"
  previewFeatures = ["views", "multiSchema"]
}

/// Roles of a member.
enum Role {
  OWNER
  MEMBER @map("member")
  @@map("roles")
}

/* composite types and views are accepted and ignored */
type Address {
  street String
}
view Stats {
  id    Int @unique
  count Int
}

model Org {
  id      Int      @id @default(autoincrement())
  slug    String   @db.VarChar(64)
  region  String
  members Member[]
  @@unique([slug, region], name: "slug_region")
  @@map("orgs")
}

model Member {
  orgId     Int
  userId    String   @map("user_id")
  role      Role     @default(MEMBER)
  tags      String[] @default([])
  scores    Int[]    @default([1, 2, 3])
  weight    Float    @default(-1.5)
  balance   Decimal  @default("10.25")
  big       BigInt   @default(9007199254740993)
  meta      Json     @default("{\"a\": [1, 2]}")
  blob      Bytes?   @default("AAE=")
  since     DateTime @default("2026-01-02T03:04:05.678+01:00")
  token     String   @default(dbgenerated("gen_random_uuid()")) @unique
  org       Org      @relation("membership", fields: [orgId], references: [id], onDelete: Cascade, onUpdate: NoAction)
  orgBySlug Org?     @relation(name: "bySlug", fields: [slug, region], references: [region, slug], onDelete: SetNull)
  slug      String?
  region    String?
  @@id([orgId, userId])
  @@index([userId(sort: Desc)], type: Hash)
}
`

func TestParseFeatures(t *testing.T) {
	t.Parallel()
	s := mustParse(t, featuresSrc)
	if diff := cmp.Diff([]*Enum{{Name: "Role", Values: []string{"OWNER", "MEMBER"}, Pos: Pos{"schema.prisma", 13, 6}}}, s.Enums); diff != "" {
		t.Errorf("enums (-want +got):\n%s", diff)
	}
	if got := len(s.Models); got != 2 {
		t.Fatalf("got %d models, want 2 (type and view ignored)", got)
	}
	org, member := s.Model("Org"), s.Model("Member")
	if diff := cmp.Diff([]any{"orgs", []string{"id"}, [][]string{{"slug", "region"}}},
		[]any{org.Table, org.PrimaryKey, org.Uniques}); diff != "" {
		t.Errorf("Org (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{[]string{"orgId", "userId"}, [][]string{{"token"}}, "user_id"},
		[]any{member.PrimaryKey, member.Uniques, member.Field("userId").Column}); diff != "" {
		t.Errorf("Member (-want +got):\n%s", diff)
	}
	defaults := map[string]*Default{}
	for _, f := range member.Fields {
		defaults[f.Name] = f.Default
	}
	wantDefaults := map[string]*Default{
		"orgId": nil, "userId": nil, "slug": nil, "region": nil,
		"role":    {Kind: DefaultValue, Value: "MEMBER"},
		"tags":    {Kind: DefaultValue, Value: []any{}},
		"scores":  {Kind: DefaultValue, Value: []any{int64(1), int64(2), int64(3)}},
		"weight":  {Kind: DefaultValue, Value: -1.5},
		"balance": {Kind: DefaultValue, Value: "10.25"},
		"big":     {Kind: DefaultValue, Value: int64(9007199254740993)},
		"meta":    {Kind: DefaultValue, Value: json.RawMessage(`{"a":[1,2]}`)},
		"blob":    {Kind: DefaultValue, Value: []byte{0, 1}},
		"since":   {Kind: DefaultValue, Value: time.Date(2026, 1, 2, 2, 4, 5, 678e6, time.UTC)},
		"token":   {Kind: DefaultOther},
	}
	if diff := cmp.Diff(wantDefaults, defaults); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	wantRel := []*Relation{
		{Name: "org", RelationName: "membership", Target: "Org", Fields: []string{"orgId"}, References: []string{"id"}, OnDelete: "Cascade", Pos: Pos{"schema.prisma", 50, 3}},
		{Name: "orgBySlug", RelationName: "bySlug", Target: "Org", Fields: []string{"slug", "region"}, References: []string{"region", "slug"}, Optional: true, OnDelete: "SetNull", Pos: Pos{"schema.prisma", 51, 3}},
	}
	if diff := cmp.Diff(wantRel, member.Relations); diff != "" {
		t.Errorf("relations (-want +got):\n%s", diff)
	}
}

func TestParseMultiFile(t *testing.T) {
	t.Parallel()
	// Passed out of order: files are processed in name order.
	s, err := Parse(
		File{Name: "b_board.prisma", Src: []byte("model Board {\n  id String @id\n  owner User @relation(fields: [ownerId], references: [id])\n  ownerId String\n  status Status\n}\n")},
		File{Name: "a_user.prisma", Src: []byte("model User {\n  id String @id\n  boards Board[]\n}\nenum Status { OPEN CLOSED }\n")},
	)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range s.Models {
		names = append(names, m.Pos.String()+" "+m.Name)
	}
	if diff := cmp.Diff([]string{"a_user.prisma:1:7 User", "b_board.prisma:1:7 Board"}, names); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
	if got := s.Model("Board").Field("status").Enum; got != s.Enum("Status") {
		t.Errorf("Board.status enum = %v, want Status", got)
	}
	if got := s.Model("Board").Relations[0].Target; got != "User" {
		t.Errorf("Board relation target = %q, want User", got)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const target = "model T {\n  id String @id\n  name String\n  a Int\n  b Int\n  @@unique([a, b])\n}\n"
	tests := map[string]struct {
		files []File
		want  []string
	}{
		"case=syntax": {
			files: []File{{"s.prisma", []byte("model User {")}},
			want:  []string{`s.prisma:1:13: unexpected token "<EOF>" (expected "}")`},
		},
		"case=lexer": {
			files: []File{{"s.prisma", []byte("model User {\n  id String @id #\n}")}},
			want:  []string{`s.prisma:2:17: lexer: invalid input text "#\n}"`},
		},
		"case=syntax_in_two_files": {
			files: []File{{"b.prisma", []byte("model B {\n  id String @id @default(\n}")}, {"a.prisma", []byte("enum {}")}},
			want: []string{
				`a.prisma:1:6: unexpected token "{"`,
				`b.prisma:2:25: unexpected token "(" (expected "}")`,
			},
		},
		"case=duplicates": {
			files: []File{
				{"a.prisma", []byte("model User {\n  id String @id\n  id Int\n}\nenum Role { A B A }\n")},
				{"b.prisma", []byte("model User {\n  id String @id\n}\nmodel Role {\n  id String @id\n}\n")},
			},
			want: []string{
				`a.prisma:3:3: duplicate field "id" in model "User" (first declared at a.prisma:2:3)`,
				`a.prisma:5:17: duplicate value "A" in enum "Role"`,
				`b.prisma:1:7: duplicate model "User" (already declared as model at a.prisma:1:7)`,
				`b.prisma:4:7: duplicate model "Role" (already declared as enum at a.prisma:5:6)`,
			},
		},
		"case=types": {
			files: []File{{"s.prisma", []byte("type Addr {\n  street String\n}\nmodel A {\n  id String @id\n  x Foo\n  y Unsupported(\"point\")?\n  z Addr\n  n Nope?\n}\n")}},
			want: []string{
				`s.prisma:6:5: field "x": unknown type "Foo"`,
				`s.prisma:7:5: field "y": type Unsupported is not supported`,
				`s.prisma:8:5: field "z": type "Addr" is a type, which is not supported`,
				`s.prisma:9:5: field "n": unknown type "Nope"`,
			},
		},
		"case=keys": {
			files: []File{{"s.prisma", []byte("model A {\n  x String\n}\nmodel B {\n  x String\n  y String?\n  @@id([x, y])\n  @@unique([x, z])\n}\nmodel C {\n  id String @id\n  id2 String @id\n}\n")}},
			want: []string{
				`s.prisma:1:7: model "A" has no @id or @@id`,
				`s.prisma:7:5: primary key field "y" of model "B" must be required and not a list`,
				`s.prisma:8:16: @@unique: unknown field "z" in model "B"`,
				`s.prisma:12:15: model "C" has more than one @id`,
			},
		},
		"case=relations": {
			files: []File{{"s.prisma", []byte(target + "model R {\n" +
				"  id String @id\n" +
				"  t1 T @relation(fields: [tId, nope], references: [id])\n" +
				"  t2 T @relation(fields: [tId], references: [id, name])\n" +
				"  t3 T @relation(fields: [tId], references: [name])\n" +
				"  t4 T @relation(fields: [t1], references: [id])\n" +
				"  t5 T @relation(fields: [tId], references: [missing])\n" +
				"  t6 T @relation(fields: [n], references: [id])\n" +
				"  t7 T @relation(fields: [tId])\n" +
				"  t8 T @relation(fields: [n, m], references: [b, a], onDelete: Explode)\n" +
				"  t9 Ghost @relation(fields: [tId], references: [id])\n" +
				"  tId String\n  n Int\n  m Int\n}\n")}},
			want: []string{
				`s.prisma:10:32: field "t1": @relation fields: unknown field "nope" in model "R"`,
				`s.prisma:11:9: field "t2": @relation has 1 fields but 2 references`,
				`s.prisma:12:45: field "t3": @relation references must be the primary key or a unique field set of model "T"`,
				`s.prisma:13:27: field "t4": @relation fields: "t1" is not a scalar field`,
				`s.prisma:14:46: field "t5": @relation references: unknown field "missing" in model "T"`,
				`s.prisma:15:27: field "t6": @relation field "n" has type Int but references T.id of type String`,
				`s.prisma:16:9: field "t7": @relation needs both fields and references`,
				`s.prisma:17:64: field "t8": invalid onDelete action`,
				`s.prisma:18:6: field "t9": unknown type "Ghost"`,
			},
		},
		"case=defaults": {
			files: []File{{"s.prisma", []byte("enum Role { A B }\nmodel A {\n" +
				"  id String @id @default(autoincrement())\n" +
				"  s String @default(1)\n" +
				"  i Int @default(\"x\")\n" +
				"  f Int @default(1.5)\n" +
				"  b Boolean @default(yes)\n" +
				"  r Role @default(C)\n" +
				"  d DateTime @default(\"yesterday\")\n" +
				"  j Json @default(\"{\")\n" +
				"  l Int[] @default([1, \"2\"])\n" +
				"  u DateTime @updatedAt @default(now())\n" +
				"  x String @updatedAt\n" +
				"  e DateTime @default(0)\n" +
				"}\n")}},
			want: []string{
				`s.prisma:3:26: field "id": @default(autoincrement()) is not valid for type String`,
				`s.prisma:4:21: field "s": invalid @default for type String: must be a string`,
				`s.prisma:5:18: field "i": invalid @default for type Int: must be an integer`,
				`s.prisma:6:18: field "f": invalid @default for type Int: must be an integer`,
				`s.prisma:7:22: field "b": invalid @default for type Boolean: unexpected yes`,
				`s.prisma:8:19: field "r": @default value "C" is not a value of enum "Role"`,
				`s.prisma:9:23: field "d": invalid @default for type DateTime: must be an ISO-8601 date-time string`,
				`s.prisma:10:19: field "j": invalid @default for type Json: string is not valid JSON`,
				`s.prisma:11:20: field "l": invalid @default for type Int[]: element 1 must be an integer`,
				`s.prisma:13:13: field "x": @updatedAt is only valid on DateTime fields`,
				`s.prisma:14:23: field "e": invalid @default for type DateTime: must be an ISO-8601 date-time string`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(tt.files...)
			if err == nil {
				t.Fatalf("Parse succeeded with %d models, want errors", len(s.Models))
			}
			if diff := cmp.Diff(tt.want, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("user.prisma", "model User {\n  id String @id\n}\n")
	write("board.prisma", "model Board {\n  id String @id\n  user User @relation(fields: [userId], references: [id])\n  userId String\n}\n")
	write("notes.txt", "not a schema")
	write("sub/deeper/todo.prisma", "model Todo {\n  id String @id\n  board Board @relation(fields: [boardId], references: [id])\n  boardId String\n}\n")
	write("sub/deeper/notes.md", "not a schema")
	write(".hidden/broken.prisma", "garbage") // an editor's or VCS's folder: skipped
	write("sub/.swap.prisma", "garbage")
	write("bad/bad.prisma", "garbage")

	// A folder is read recursively, files in path order; positions keep
	// naming every file, subfolders included.
	t.Run("path=dir", func(t *testing.T) {
		_, err := Load(dir)
		want := []string{filepath.Join(dir, "bad", "bad.prisma") + `:1:1: unexpected token "garbage"`}
		if diff := cmp.Diff(want, errorStrings(t, err)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
		if err := os.RemoveAll(filepath.Join(dir, "bad")); err != nil {
			t.Fatal(err)
		}
		s := mustLoad(t, dir)
		if diff := cmp.Diff([]string{"Board", "Todo", "User"}, modelNames(s.Models)); diff != "" {
			t.Errorf("models (-want +got):\n%s", diff)
		}
		for i, want := range []string{"board.prisma", filepath.Join("sub", "deeper", "todo.prisma"), "user.prisma"} {
			if got, want := s.Models[i].Pos.File, filepath.Join(dir, want); got != want {
				t.Errorf("%s: Pos.File = %q, want %q", s.Models[i].Name, got, want)
			}
		}
		write("sub/deeper/todo.prisma", "model Todo {\n  id String @id\n  board Board @relation(fields: [boardId], references: [id])\n  boardId Int\n}\n")
		_, err = Load(dir)
		want = []string{filepath.Join(dir, "sub", "deeper", "todo.prisma") + `:3:34: field "board": @relation field "boardId" has type Int but references Board.id of type String`}
		if diff := cmp.Diff(want, errorStrings(t, err)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
	t.Run("path=file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "board.prisma"))
		want := []string{filepath.Join(dir, "board.prisma") + `:3:8: field "user": unknown type "User"`}
		if diff := cmp.Diff(want, errorStrings(t, err)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
	t.Run("path=no_prisma_files", func(t *testing.T) {
		_, err := Load(t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "no .prisma files") {
			t.Errorf("Load(empty dir) = %v, want a no .prisma files error", err)
		}
	})
	t.Run("path=missing", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "nope.prisma")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load(missing) = %v, want os.ErrNotExist", err)
		}
	})
}

package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/syncdata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is one store on a fresh database of one kind.
type env struct {
	db  storetest.DB
	url string // PostgreSQL: the database's URL
	dir string // SQLite: the data directory
	st  *store.Store
}

// forEachDB runs fn in parallel subtests db=sqlite and db=postgres (when
// configured), each with a store on a fresh database.
func forEachDB(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := &env{db: db, url: db.URL(t), dir: t.TempDir()}
		e.st = db.OpenAt(t, e.url, e.dir)
		fn(t, e)
	})
}

// reopen opens another store on the same database, like a second server.
func (e *env) reopen(t *testing.T) *store.Store { return e.db.OpenAt(t, e.url, e.dir) }

func openTenant(t *testing.T, st *store.Store, id, src, root string, exclude ...string) *store.Tenant {
	t.Helper()
	s, own := parseSchema(t, src, root, exclude...)
	tn, err := st.Tenant(t.Context(), id, s, own)
	if err != nil {
		t.Fatalf("Tenant(%s): %v", id, err)
	}
	return tn
}

// inTx runs fn in a transaction and commits it, or rolls back and returns
// fn's error.
func inTx(t *testing.T, tn *store.Tenant, fn func(x *store.Tx) error) error {
	t.Helper()
	x, err := tn.Begin(t.Context())
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if err := fn(x); err != nil {
		if rerr := x.Rollback(); rerr != nil {
			t.Errorf("Rollback: %v", rerr)
		}
		return err
	}
	return x.Commit()
}

// upsert writes records of model in their own transaction.
func upsert(t *testing.T, tn *store.Tenant, model string, recs ...schema.Record) {
	t.Helper()
	if err := inTx(t, tn, func(x *store.Tx) error { return x.Upsert(t.Context(), model, recs) }); err != nil {
		t.Fatalf("Upsert %s: %v", model, err)
	}
}

// load returns the records of model whose field equals one of values,
// sorted by their "id" (or by their printed form).
func load(t *testing.T, tn *store.Tenant, model, field string, values ...any) []schema.Record {
	t.Helper()
	keys := make([][]any, len(values))
	for i, v := range values {
		keys[i] = []any{v}
	}
	recs, err := tn.Load(t.Context(), model, []string{field}, keys)
	if err != nil {
		t.Fatalf("Load %s: %v", model, err)
	}
	slices.SortFunc(recs, func(a, b schema.Record) int { return strings.Compare(fmt.Sprint(a["id"], a), fmt.Sprint(b["id"], b)) })
	return recs
}

// jsonEqual compares Json values by meaning: PostgreSQL's jsonb keeps
// neither key order nor whitespace.
var jsonEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(x, y)
})

const kanban = `
enum Role {
  OWNER
  MEMBER
}

model Workspace {
  id      String   @id
  name    String
  slug    String   @unique
  members Member[]
  boards  Board[]
  values  Value[]
}

model User {
  id      String   @id
  members Member[]
}

model Member {
  workspaceId String
  userId      String
  role        Role      @default(MEMBER)
  workspace   Workspace @relation(fields: [workspaceId], references: [id], onDelete: Cascade)
  user        User      @relation(fields: [userId], references: [id])
  cards       Card[]
  @@id([workspaceId, userId])
}

model Board {
  id          String    @id
  workspaceId String    @map("workspace_id")
  title       String
  position    Int
  workspace   Workspace @relation(fields: [workspaceId], references: [id], onDelete: Cascade)
  cards       Card[]
  pins        Pin[]
  @@unique([workspaceId, position])
  @@map("boards")
}

model Card {
  id         String    @id
  boardId    String
  title      String
  assigneeWs String?
  assigneeId String?
  board      Board     @relation(fields: [boardId], references: [id], onDelete: Cascade)
  assignee   Member?   @relation(fields: [assigneeWs, assigneeId], references: [workspaceId, userId])
  comments   Comment[]
}

model Comment {
  id       String  @id
  cardId   String
  body     String
  eventRef String? @unique @map("outbox_event_id")
  card     Card    @relation(fields: [cardId], references: [id])
}

model Pin {
  boardId String
  userId  String
  board   Board  @relation(fields: [boardId], references: [id], onDelete: Cascade)
  @@id([boardId, userId])
}

model Value {
  id          String    @id
  workspaceId String
  workspace   Workspace @relation(fields: [workspaceId], references: [id], onDelete: Cascade)
  str         String
  int         Int
  float       Float
  bool        Boolean
  time        DateTime
  json        Json
  bytes       Bytes
  big         BigInt
  dec         Decimal
  role        Role
  optStr      String?
  optInt      Int?
  optFloat    Float?
  optBool     Boolean?
  optTime     DateTime?
  optJson     Json?
  optBytes    Bytes?
  optBig      BigInt?
  optDec      Decimal?
  optRole     Role?
  strs        String[]
  ints        Int[]
  floats      Float[]
  bools       Boolean[]
  times       DateTime[]
  jsons       Json[]
  blobs       Bytes[]
  bigs        BigInt[]
  decs        Decimal[]
  roles       Role[]
}
`

func kanbanTenant(t *testing.T, st *store.Store, id string) *store.Tenant {
	t.Helper()
	return openTenant(t, st, id, kanban, "Workspace", "User")
}

func workspace(id string) schema.Record {
	return schema.Record{"id": id, "name": "Workspace " + id, "slug": "slug-" + id}
}

func TestTenantTables(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		kanbanTenant(t, e.st, "acme-eu")
		c := openCatalog(t, e, "acme-eu")
		tables := []string{"Card", "Comment", "Member", "Pin", "Value", "Workspace", "_applied_events", "_changelog", "_history", "_meta", "_scope_heads", "_tombstone_horizons", "boards"}
		if diff := cmp.Diff(tables, c.tables()); diff != "" {
			t.Errorf("tables (-want +got):\n%s", diff)
		}
		want := map[string]tableShape{
			"Workspace": {
				Columns:    []string{"id", "name", "slug"},
				PrimaryKey: []string{"id"},
				Uniques:    []string{"slug"},
			},
			"Member": { // no foreign key to the excluded User
				Columns:     []string{"workspaceId", "userId", "role"},
				PrimaryKey:  []string{"workspaceId", "userId"},
				Indexes:     []string{"workspaceId"},
				ForeignKeys: []string{"workspaceId -> Workspace(id) ON DELETE CASCADE"},
			},
			"boards": {
				Columns:     []string{"id", "workspace_id", "title", "position"},
				PrimaryKey:  []string{"id"},
				Uniques:     []string{"workspace_id,position"},
				Indexes:     []string{"workspace_id"},
				ForeignKeys: []string{"workspace_id -> Workspace(id) ON DELETE CASCADE"},
			},
			"Card": {
				Columns:    []string{"id", "boardId", "title", "assigneeWs?", "assigneeId?"},
				PrimaryKey: []string{"id"},
				Indexes:    []string{"assigneeWs,assigneeId", "boardId"},
				ForeignKeys: []string{
					"assigneeWs,assigneeId -> Member(workspaceId,userId) ON DELETE SET NULL",
					"boardId -> boards(id) ON DELETE CASCADE",
				},
			},
			"Comment": {
				Columns:     []string{"id", "cardId", "body", "outbox_event_id?"},
				PrimaryKey:  []string{"id"},
				Uniques:     []string{"outbox_event_id"},
				Indexes:     []string{"cardId"},
				ForeignKeys: []string{"cardId -> Card(id) ON DELETE RESTRICT"},
			},
			"Pin": {
				Columns:     []string{"boardId", "userId"},
				PrimaryKey:  []string{"boardId", "userId"},
				Indexes:     []string{"boardId"},
				ForeignKeys: []string{"boardId -> boards(id) ON DELETE CASCADE"},
			},
			"_changelog": {
				Columns:    []string{"id", "model", "key_path", "operation", "scope_key", "outbox_event_id", "created_at"},
				PrimaryKey: []string{"id"},
				Indexes:    []string{"created_at", "model,key_path,id", "scope_key,id", "scope_key,model,key_path"},
			},
			"_history": {
				Columns:    []string{"id", "subject", "model", "key_path", "operation", "scope_key", "outbox_event_id", "record?", "created_at"},
				PrimaryKey: []string{"id"},
			},
			"_tombstone_horizons": {
				Columns:    []string{"scope_key", "dropped_through"},
				PrimaryKey: []string{"scope_key"},
			},
			"_applied_events": {
				Columns:    []string{"subject", "event_id", "changelog_id", "applied_at"},
				PrimaryKey: []string{"subject", "event_id"},
				Indexes:    []string{"applied_at"},
			},
			"_scope_heads": {
				Columns:    []string{"scope_key", "last_id"},
				PrimaryKey: []string{"scope_key"},
			},
		}
		for table, w := range want {
			if diff := cmp.Diff(w.normalized(), c.shape(table)); diff != "" {
				t.Errorf("table %s (-want +got):\n%s", table, diff)
			}
		}
	})
}

func TestRoundTrip(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		full := schema.Record{
			"id": "v1", "workspaceId": "w1",
			"str": "héllo 'quoted' \"double\" 🎉", "int": int64(math.MinInt32), "float": 3.25, "bool": true,
			"time":  time.Date(2024, 2, 29, 13, 45, 6, 789e6, time.UTC),
			"json":  json.RawMessage(`{"c":"x","a":[1,2.5,{"b":null}],"n":12345678901234567890}`),
			"bytes": []byte{0, 1, 2, 0xfe, 0xff},
			"big":   int64(math.MaxInt64), "dec": "12345678901234567890.123456789", "role": "OWNER",
			"optStr": "x", "optInt": int64(math.MaxInt32), "optFloat": -0.5, "optBool": false,
			"optTime":  time.Date(1969, 12, 31, 23, 59, 59, 1e6, time.UTC),
			"optJson":  json.RawMessage(`[1,"two",false]`),
			"optBytes": []byte{}, "optBig": int64(math.MinInt64), "optDec": "-0.001", "optRole": "MEMBER",
			"strs":   []any{"a", "", "ü,\"x\""},
			"ints":   []any{int64(1), int64(-2), int64(math.MaxInt32)},
			"floats": []any{0.1, -1e-7, 1e300, 0.0},
			"bools":  []any{true, false},
			"times": []any{
				time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
			},
			"jsons": []any{json.RawMessage(`{"k":[1]}`), json.RawMessage(`"s"`), json.RawMessage(`null`)},
			"blobs": []any{[]byte{0, 0xff}, []byte("xyz"), []byte{}},
			"bigs":  []any{int64(math.MaxInt64), int64(math.MinInt64)},
			"decs":  []any{"1.50", "-3"},
			"roles": []any{"OWNER", "MEMBER"},
		}
		empty := schema.Record{
			"id": "v2", "workspaceId": "w1",
			"str": "", "int": int64(0), "float": 0.0, "bool": false,
			"time":  time.Unix(0, 0).UTC(),
			"json":  json.RawMessage(`{}`),
			"bytes": []byte{},
			"big":   int64(0), "dec": "0", "role": "MEMBER",
			"optStr": nil, "optInt": nil, "optFloat": nil, "optBool": nil, "optTime": nil,
			"optJson": nil, "optBytes": nil, "optBig": nil, "optDec": nil, "optRole": nil,
			"strs": []any{}, "ints": []any{}, "floats": []any{}, "bools": []any{}, "times": []any{},
			"jsons": []any{}, "blobs": []any{}, "bigs": []any{}, "decs": []any{}, "roles": []any{},
		}
		upsert(t, tn, "Workspace", workspace("w1"))
		upsert(t, tn, "Value", full, empty)
		got := load(t, tn, "Value", "workspaceId", "w1")
		if diff := cmp.Diff([]schema.Record{full, empty}, got, jsonEqual); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		// Inside a transaction, Load sees the transaction's own writes.
		err := inTx(t, tn, func(x *store.Tx) error {
			changed := schema.Record{}
			for k, v := range empty {
				changed[k] = v
			}
			changed["str"] = "changed"
			if err := x.Upsert(t.Context(), "Value", []schema.Record{changed}); err != nil {
				return err
			}
			recs, err := x.Load(t.Context(), "Value", []string{"id"}, [][]any{{"v2"}})
			if err != nil {
				return err
			}
			if len(recs) != 1 || recs[0]["str"] != "changed" {
				t.Errorf("Tx.Load = %v, want the transaction's own write", recs)
			}
			return errors.New("roll back")
		})
		if err == nil || err.Error() != "roll back" {
			t.Fatalf("inTx = %v", err)
		}
		if got := load(t, tn, "Value", "id", "v2"); len(got) != 1 || got[0]["str"] != "" {
			t.Errorf("after rollback: %v", got)
		}
	})
}

func TestUpsertReplaces(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		upsert(t, tn, "Workspace", workspace("w1"))
		upsert(t, tn, "Member", schema.Record{"workspaceId": "w1", "userId": "u1", "role": "OWNER"})
		upsert(t, tn, "Board", schema.Record{"id": "b1", "workspaceId": "w1", "title": "Todo", "position": int64(1)})
		card := schema.Record{"id": "c1", "boardId": "b1", "title": "one", "assigneeWs": "w1", "assigneeId": "u1"}
		upsert(t, tn, "Card", card)

		upsert(t, tn, "Workspace", schema.Record{"id": "w1", "name": "Renamed", "slug": "renamed"})
		replaced := schema.Record{"id": "c1", "boardId": "b1", "title": "uno", "assigneeWs": nil, "assigneeId": nil}
		upsert(t, tn, "Card", replaced)
		upsert(t, tn, "Member", schema.Record{"workspaceId": "w1", "userId": "u1", "role": "MEMBER"})

		if diff := cmp.Diff([]schema.Record{{"id": "w1", "name": "Renamed", "slug": "renamed"}}, load(t, tn, "Workspace", "id", "w1")); diff != "" {
			t.Errorf("Workspace (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]schema.Record{replaced}, load(t, tn, "Card", "boardId", "b1")); diff != "" {
			t.Errorf("Card (-want +got):\n%s", diff)
		}
		members, err := tn.Load(t.Context(), "Member", []string{"workspaceId", "userId"}, [][]any{{"w1", "u1"}, {"w1", "u2"}})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]schema.Record{{"workspaceId": "w1", "userId": "u1", "role": "MEMBER"}}, members); diff != "" {
			t.Errorf("Member (-want +got):\n%s", diff)
		}

		// A model whose columns are all key columns: the upsert does nothing.
		pin := schema.Record{"boardId": "b1", "userId": "u1"}
		upsert(t, tn, "Pin", pin, schema.Record{"boardId": "b1", "userId": "u2"})
		upsert(t, tn, "Pin", pin)
		pins, err := tn.Load(t.Context(), "Pin", []string{"boardId", "userId"}, [][]any{{"b1", "u1"}, {"b1", "u2"}, {"b2", "u1"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(pins) != 2 {
			t.Errorf("pins = %v, want 2", pins)
		}
	})
}

func TestDeleteCascadesAndSetsNull(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		upsert(t, tn, "Workspace", workspace("w1"), workspace("w2"))
		upsert(t, tn, "Member",
			schema.Record{"workspaceId": "w1", "userId": "u1", "role": "OWNER"},
			schema.Record{"workspaceId": "w1", "userId": "u2", "role": "MEMBER"})
		upsert(t, tn, "Board",
			schema.Record{"id": "b1", "workspaceId": "w1", "title": "Todo", "position": int64(1)},
			schema.Record{"id": "b2", "workspaceId": "w1", "title": "Done", "position": int64(2)},
			schema.Record{"id": "b3", "workspaceId": "w2", "title": "Other", "position": int64(1)})
		upsert(t, tn, "Card",
			schema.Record{"id": "c1", "boardId": "b1", "title": "one", "assigneeWs": "w1", "assigneeId": "u1"},
			schema.Record{"id": "c2", "boardId": "b2", "title": "two", "assigneeWs": "w1", "assigneeId": "u2"},
			schema.Record{"id": "c3", "boardId": "b3", "title": "three", "assigneeWs": nil, "assigneeId": nil})
		upsert(t, tn, "Comment", schema.Record{"id": "m1", "cardId": "c2", "body": "hi", "eventRef": nil})
		upsert(t, tn, "Pin", schema.Record{"boardId": "b1", "userId": "u1"})

		del := func(model string, keys ...[]any) error {
			return inTx(t, tn, func(x *store.Tx) error { return x.Delete(ctx, model, keys) })
		}
		// SET NULL: the optional composite relation loses both columns.
		if err := del("Member", []any{"w1", "u1"}); err != nil {
			t.Fatalf("delete member: %v", err)
		}
		want := schema.Record{"id": "c1", "boardId": "b1", "title": "one", "assigneeWs": nil, "assigneeId": nil}
		if diff := cmp.Diff([]schema.Record{want}, load(t, tn, "Card", "id", "c1")); diff != "" {
			t.Errorf("card after its assignee was deleted (-want +got):\n%s", diff)
		}
		// CASCADE: the board's cards and pins go with it.
		if err := del("Board", []any{"b1"}); err != nil {
			t.Fatalf("delete board: %v", err)
		}
		if got := load(t, tn, "Card", "id", "c1", "c2", "c3"); len(got) != 2 || got[0]["id"] != "c2" {
			t.Errorf("cards after deleting b1 = %v, want c2 and c3", got)
		}
		if got := load(t, tn, "Pin", "boardId", "b1"); len(got) != 0 {
			t.Errorf("pins after deleting b1 = %v", got)
		}
		// RESTRICT: a card with a comment cannot go.
		err := del("Card", []any{"c2"})
		var ce *syncdata.ConstraintError
		if !errors.As(err, &ce) || ce.Kind != "foreign key" {
			t.Fatalf("delete a card with a comment = %v, want a foreign key syncdata.ConstraintError", err)
		}
		if got := load(t, tn, "Card", "id", "c2"); len(got) != 1 {
			t.Errorf("card c2 after the refused delete = %v", got)
		}
		// Once the comment is gone, the workspace takes everything with it.
		if err := del("Comment", []any{"m1"}); err != nil {
			t.Fatal(err)
		}
		if err := del("Workspace", []any{"w1"}); err != nil {
			t.Fatalf("delete workspace: %v", err)
		}
		for model, field := range map[string]string{"Board": "workspaceId", "Member": "workspaceId", "Workspace": "id"} {
			if got := load(t, tn, model, field, "w1"); len(got) != 0 {
				t.Errorf("%s of w1 after deleting it: %v", model, got)
			}
		}
		if got := load(t, tn, "Card", "id", "c1", "c2", "c3"); len(got) != 1 || got[0]["id"] != "c3" {
			t.Errorf("cards after deleting w1 = %v, want c3", got)
		}
		// Deleting what is not there is not an error.
		if err := del("Workspace", []any{"nope"}); err != nil {
			t.Errorf("delete a missing record: %v", err)
		}
	})
}

func TestConstraintErrors(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		upsert(t, tn, "Workspace", workspace("w1"))
		upsert(t, tn, "Member", schema.Record{"workspaceId": "w1", "userId": "u1", "role": "OWNER"})
		upsert(t, tn, "Board", schema.Record{"id": "b1", "workspaceId": "w1", "title": "Todo", "position": int64(1)})
		upsert(t, tn, "Card", schema.Record{"id": "c1", "boardId": "b1", "title": "one", "assigneeWs": nil, "assigneeId": nil})
		upsert(t, tn, "Comment", schema.Record{"id": "m1", "cardId": "c1", "body": "hi", "eventRef": "ev-1"})

		tests := map[string]struct {
			op   func(ctx context.Context, x *store.Tx) error
			kind string
		}{
			"unique": {
				op: func(ctx context.Context, x *store.Tx) error {
					return x.Upsert(ctx, "Workspace", []schema.Record{{"id": "w2", "name": "Two", "slug": "slug-w1"}})
				},
				kind: "unique",
			},
			"composite-unique": {
				op: func(ctx context.Context, x *store.Tx) error {
					return x.Upsert(ctx, "Board", []schema.Record{{"id": "b2", "workspaceId": "w1", "title": "Doing", "position": int64(1)}})
				},
				kind: "unique",
			},
			"unique-column-named-like-the-changelog's": {
				op: func(ctx context.Context, x *store.Tx) error {
					return x.Upsert(ctx, "Comment", []schema.Record{{"id": "m2", "cardId": "c1", "body": "again", "eventRef": "ev-1"}})
				},
				kind: "unique",
			},
			"missing-parent": {
				op: func(ctx context.Context, x *store.Tx) error {
					return x.Upsert(ctx, "Board", []schema.Record{{"id": "b2", "workspaceId": "nope", "title": "Doing", "position": int64(2)}})
				},
				kind: "foreign key",
			},
			"missing-composite-parent": {
				op: func(ctx context.Context, x *store.Tx) error {
					return x.Upsert(ctx, "Card", []schema.Record{{"id": "c2", "boardId": "b1", "title": "two", "assigneeWs": "w1", "assigneeId": "u9"}})
				},
				kind: "foreign key",
			},
			"restricted-delete": {
				op:   func(ctx context.Context, x *store.Tx) error { return x.Delete(ctx, "Card", [][]any{{"c1"}}) },
				kind: "foreign key",
			},
		}
		for name, tc := range tests {
			t.Run("violation="+name, func(t *testing.T) {
				err := inTx(t, tn, func(x *store.Tx) error { return tc.op(t.Context(), x) })
				var ce *syncdata.ConstraintError
				if !errors.As(err, &ce) || ce.Kind != tc.kind {
					t.Fatalf("error = %v (%T), want a %s syncdata.ConstraintError", err, err, tc.kind)
				}
				if errors.Is(err, syncdata.ErrDuplicateEvent) || errors.Is(err, syncdata.ErrUnavailable) {
					t.Errorf("error %v also matches a sentinel", err)
				}
				if ce.Detail == "" || !strings.HasPrefix(ce.Error(), tc.kind+" constraint violated: ") {
					t.Errorf("Error() = %q", ce.Error())
				}
			})
		}
		// Nothing of the refused writes was kept.
		if got := load(t, tn, "Workspace", "id", "w2"); len(got) != 0 {
			t.Errorf("w2 = %v", got)
		}
		if got := load(t, tn, "Board", "id", "b2"); len(got) != 0 {
			t.Errorf("b2 = %v", got)
		}
	})
}

// entries makes n changelog entries of scope, after last, each of its
// own Card (its key names its id: the changelog keeps one entry per record
// and scope, see TestCompaction).
func entries(t *testing.T, scope, last string, n int, event string) []changelog.Entry {
	t.Helper()
	var out []changelog.Entry
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range n {
		id, err := changelog.Next(last, now)
		if err != nil {
			t.Fatal(err)
		}
		last = id
		out = append(out, changelog.Entry{
			ID: id, Model: "Card", KeyPath: json.RawMessage(fmt.Sprintf(`["%s-%s"]`, scope, id)),
			Operation: changelog.Create, ScopeKey: scope, OutboxEventID: fmt.Sprintf("%s-%d", event, i), CreatedAt: now,
		})
	}
	return out
}

// appendEntries locks the scope, appends the entries and moves its head.
func appendEntries(t *testing.T, tn *store.Tenant, es []changelog.Entry) error {
	t.Helper()
	return appendApplied(t, tn, "", es)
}

// ledger records every entry of es as subject's applied event.
func ledger(subject string, es []changelog.Entry) syncdata.Applied {
	a := syncdata.Applied{Subject: subject}
	for _, e := range es {
		a.Events = append(a.Events, syncdata.AppliedEvent{EventID: e.OutboxEventID, ChangelogID: e.ID})
	}
	return a
}

// appendApplied is appendEntries that also records the entries as events
// subject applied (none when subject is "").
func appendApplied(t *testing.T, tn *store.Tenant, subject string, es []changelog.Entry) error {
	t.Helper()
	applied := syncdata.Applied{}
	if subject != "" {
		applied = ledger(subject, es)
	}
	return inTx(t, tn, func(x *store.Tx) error {
		heads := map[string]string{}
		var scopes []string
		for _, e := range es {
			if _, ok := heads[e.ScopeKey]; !ok {
				scopes = append(scopes, e.ScopeKey)
			}
			heads[e.ScopeKey] = e.ID
		}
		slices.Sort(scopes)
		if _, err := x.LockScopes(t.Context(), scopes); err != nil {
			return err
		}
		return x.Apply(t.Context(), nil, es, heads, applied)
	})
}

func TestChangelog(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()

		// A new scope has no head; after a commit its head is the last id.
		var first []changelog.Entry
		err := inTx(t, tn, func(x *store.Tx) error {
			heads, err := x.LockScopes(ctx, []string{"s1", "s2"})
			if err != nil {
				return err
			}
			if diff := cmp.Diff(map[string]string{"s1": "", "s2": ""}, heads); diff != "" {
				t.Errorf("LockScopes of new scopes (-want +got):\n%s", diff)
			}
			first = entries(t, "s1", "", 3, "ev-a")
			return x.Apply(ctx, nil, first, map[string]string{"s1": first[2].ID}, ledger("u1", first))
		})
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		err = inTx(t, tn, func(x *store.Tx) error {
			heads, err := x.LockScopes(ctx, []string{"s1", "s2"})
			if err != nil {
				return err
			}
			if diff := cmp.Diff(map[string]string{"s1": first[2].ID, "s2": ""}, heads); diff != "" {
				t.Errorf("LockScopes after a commit (-want +got):\n%s", diff)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// AppliedEvents finds the committed events of the subject only.
		err = inTx(t, tn, func(x *store.Tx) error {
			got, err := x.AppliedEvents(ctx, "u1", []string{"ev-a-0", "ev-a-2", "ev-unknown"})
			if err != nil {
				return err
			}
			if diff := cmp.Diff(map[string]string{"ev-a-0": first[0].ID, "ev-a-2": first[2].ID}, got); diff != "" {
				t.Errorf("AppliedEvents (-want +got):\n%s", diff)
			}
			if got, err := x.AppliedEvents(ctx, "u2", []string{"ev-a-0", "ev-a-2"}); err != nil || len(got) != 0 {
				t.Errorf("AppliedEvents of another subject = %v, %v", got, err)
			}
			if got, err := x.AppliedEvents(ctx, "u1", nil); err != nil || len(got) != 0 {
				t.Errorf("AppliedEvents(nil) = %v, %v", got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// A second transaction that records an event the subject applied
		// already fails with syncdata.ErrDuplicateEvent, and leaves nothing behind;
		// another subject's event with the same id is another event.
		dup := entries(t, "s1", first[2].ID, 1, "ev-a")
		err = appendApplied(t, tn, "u1", dup)
		if !errors.Is(err, syncdata.ErrDuplicateEvent) {
			t.Fatalf("duplicate outbox event id: %v, want syncdata.ErrDuplicateEvent", err)
		}
		var ce *syncdata.ConstraintError
		if errors.As(err, &ce) {
			t.Errorf("duplicate outbox event is also a syncdata.ConstraintError: %v", err)
		}
		if got, err := tn.Changes(ctx, "s1", first[2].ID, 10); err != nil || len(got) != 0 {
			t.Errorf("a refused duplicate left entries %v, %v", got, err)
		}
		if err := appendApplied(t, tn, "u2", dup); err != nil {
			t.Fatalf("the same event id from another subject: %v", err)
		}
		err = inTx(t, tn, func(x *store.Tx) error {
			got, err := x.AppliedEvents(ctx, "u2", []string{"ev-a-0"})
			if diff := cmp.Diff(map[string]string{"ev-a-0": dup[0].ID}, got); err != nil || diff != "" {
				t.Errorf("AppliedEvents of u2 (-want +got):\n%s %v", diff, err)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, dup...)

		// Changes pages by scope and id.
		more := entries(t, "s1", first[3].ID, 2, "ev-b")
		other := entries(t, "s2", "", 2, "ev-c")
		if err := appendEntries(t, tn, append(slices.Clone(more), other...)); err != nil {
			t.Fatal(err)
		}
		all := append(slices.Clone(first), more...)
		var pages [][]changelog.Entry
		after := ""
		for range 10 {
			page, err := tn.Changes(ctx, "s1", after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			pages = append(pages, page)
			after = page[len(page)-1].ID
		}
		if diff := cmp.Diff([][]changelog.Entry{all[0:2], all[2:4], all[4:6]}, pages); diff != "" {
			t.Errorf("pages of s1 (-want +got):\n%s", diff)
		}
		got, err := tn.Changes(ctx, "s2", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(other, got); diff != "" {
			t.Errorf("changes of s2 (-want +got):\n%s", diff)
		}
		if got, err := tn.Changes(ctx, "s3", "", 100); err != nil || len(got) != 0 {
			t.Errorf("changes of an unknown scope = %v, %v", got, err)
		}
	})
}

func TestLastScopes(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		now := time.Now().UTC().Truncate(time.Millisecond)
		id1, _ := changelog.Next("", now)
		id2, _ := changelog.Next(id1, now)
		id3, _ := changelog.Next(id2, now)
		id4, _ := changelog.Next(id3, now)
		entry := func(id, model, key, scope, ev string) changelog.Entry {
			return changelog.Entry{ID: id, Model: model, KeyPath: json.RawMessage(key), Operation: changelog.Update,
				ScopeKey: scope, OutboxEventID: ev, CreatedAt: now}
		}
		// The newest entry comes first: LastScopes must order by id.
		es := []changelog.Entry{
			entry(id3, "Card", `["c1"]`, "new", "e3"),
			entry(id1, "Card", `["c1"]`, "old", "e1"),
			entry(id2, "Board", `["c1"]`, "board", "e2"),
			entry(id4, "Card", `["c2"]`, "other", "e4"),
		}
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		err := inTx(t, tn, func(x *store.Tx) error {
			got, err := x.LastScopes(ctx, "Card", []string{`["c1"]`, `["c2"]`, `["c3"]`})
			if err != nil {
				return err
			}
			if diff := cmp.Diff(map[string]string{`["c1"]`: "new", `["c2"]`: "other"}, got); diff != "" {
				t.Errorf("LastScopes (-want +got):\n%s", diff)
			}
			if got, err := x.LastScopes(ctx, "Card", nil); err != nil || len(got) != 0 {
				t.Errorf("LastScopes(nil) = %v, %v", got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestLockScopesSerializes(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()

		x1, err := tn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer x1.Rollback()
		heads, err := x1.LockScopes(ctx, []string{"s"})
		if err != nil || heads["s"] != "" {
			t.Fatalf("first LockScopes = %v, %v", heads, err)
		}

		if e.db.Name == "postgres" {
			// Other scopes are not held up.
			err := inTx(t, tn, func(x *store.Tx) error {
				_, err := x.LockScopes(ctx, []string{"t"})
				return err
			})
			if err != nil {
				t.Fatalf("LockScopes of another scope: %v", err)
			}
		}

		type result struct {
			heads map[string]string
			err   error
		}
		done := make(chan result, 1)
		release := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			// On SQLite, Begin itself waits for the write lock.
			x2, err := tn.Begin(ctx)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer x2.Rollback()
			heads, err := x2.LockScopes(ctx, []string{"s"})
			done <- result{heads, err}
			<-release
		}()
		defer func() {
			close(release)
			x1.Rollback() // on failure: lets a waiting Begin on SQLite through
			wg.Wait()
		}()

		select {
		case r := <-done:
			t.Fatalf("second LockScopes returned while the first transaction holds the scope: %v, %v", r.heads, r.err)
		case <-time.After(200 * time.Millisecond):
		}

		es := entries(t, "s", "", 1, "ev")
		if err := x1.AppendChangelog(ctx, es, map[string]string{"s": es[0].ID}); err != nil {
			t.Fatal(err)
		}
		if err := x1.Commit(); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("second LockScopes: %v", r.err)
			}
			if diff := cmp.Diff(map[string]string{"s": es[0].ID}, r.heads); diff != "" {
				t.Errorf("second LockScopes sees (-want +got):\n%s", diff)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("second LockScopes still blocked after the first transaction committed")
		}
	})
}

const (
	migrateV1 = `
enum Status {
  OPEN
  DONE
}
model Workspace {
  id     String  @id
  name   String
  boards Board[]
}
model Board {
  id          String    @id
  workspaceId String
  title       String
  code        String    @unique
  workspace   Workspace @relation(fields: [workspaceId], references: [id], onDelete: Cascade)
}
`
	// migrateV2 adds a model, optional columns, columns with defaults, a
	// relation column and a unique, and drops a unique.
	migrateV2 = `
enum Status {
  OPEN
  DONE
}
model Workspace {
  id     String  @id
  name   String
  boards Board[]
  tags   Tag[]
}
model Tag {
  id          String    @id
  workspaceId String
  name        String
  workspace   Workspace @relation(fields: [workspaceId], references: [id], onDelete: Cascade)
  boards      Board[]
}
model Board {
  id          String    @id
  workspaceId String
  title       String
  code        String
  workspace   Workspace @relation(fields: [workspaceId], references: [id], onDelete: Cascade)
  note        String?
  rank        Int       @default(7)
  label       String    @default("it's")
  flag        Boolean   @default(true)
  off         Boolean   @default(false)
  ratio       Float     @default(-0.5)
  status      Status    @default(DONE)
  since       DateTime  @default("2024-01-02T03:04:05.678Z")
  seenAt      DateTime  @default(now())
  touchedAt   DateTime  @updatedAt
  big         BigInt    @default(9007199254740993)
  price       Decimal   @default(9.99)
  meta        Json      @default("{\"a\":[1,true]}")
  labels      String[]  @default(["x", "y"])
  statuses    Status[]  @default([OPEN, DONE])
  stamps      DateTime[] @default(["2024-01-02T03:04:05Z"])
  blob        Bytes     @default("AAH/")
  slogan      String    @default("now()")
  tagId       String?
  tag         Tag?      @relation(fields: [tagId], references: [id])
  @@unique([workspaceId, title])
}
`
)

func TestMigrateOnReload(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		v1 := openTenant(t, e.st, "acme", migrateV1, "Workspace")
		upsert(t, v1, "Workspace", schema.Record{"id": "w1", "name": "One"})
		upsert(t, v1, "Board", schema.Record{"id": "b1", "workspaceId": "w1", "title": "Todo", "code": "T"})

		// A restarted server reloads the tenant with v2.
		st2 := e.reopen(t)
		before := time.Now()
		v2 := openTenant(t, st2, "acme", migrateV2, "Workspace")
		after := time.Now()
		got := load(t, v2, "Board", "id", "b1")
		if len(got) != 1 {
			t.Fatalf("b1 after migration: %v", got)
		}
		seen, ok := got[0]["seenAt"].(time.Time)
		if !ok || seen.Before(before.Add(-time.Second)) || seen.After(after.Add(time.Second)) {
			t.Errorf("seenAt = %v, want the migration time (%v..%v)", got[0]["seenAt"], before, after)
		}
		touched, ok := got[0]["touchedAt"].(time.Time)
		if !ok || touched.Before(before.Add(-time.Second)) || touched.After(after.Add(time.Second)) {
			t.Errorf("touchedAt = %v, want the migration time", got[0]["touchedAt"])
		}
		delete(got[0], "seenAt")
		delete(got[0], "touchedAt")
		want := schema.Record{
			"id": "b1", "workspaceId": "w1", "title": "Todo", "code": "T",
			"note": nil, "rank": int64(7), "label": "it's", "flag": true, "off": false, "ratio": -0.5, "status": "DONE",
			"since": time.Date(2024, 1, 2, 3, 4, 5, 678e6, time.UTC),
			"big":   int64(9007199254740993), "price": "9.99", "meta": json.RawMessage(`{"a":[1,true]}`),
			"labels": []any{"x", "y"}, "statuses": []any{"OPEN", "DONE"},
			"stamps": []any{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
			"blob":   []byte{0, 1, 0xff}, "slogan": "now()", "tagId": nil,
		}
		if diff := cmp.Diff(want, got[0], jsonEqual); diff != "" {
			t.Errorf("b1 after migration (-want +got):\n%s", diff)
		}

		// The new table, relation column and uniques are real.
		c := openCatalog(t, e, "acme")
		wantShape := tableShape{
			Columns: []string{"id", "workspaceId", "title", "code", "note?", "rank", "label", "flag", "off", "ratio", "status",
				"since", "seenAt", "touchedAt", "big", "price", "meta", "labels", "statuses", "stamps", "blob", "slogan", "tagId?"},
			PrimaryKey: []string{"id"},
			Uniques:    []string{"workspaceId,title"},
			Indexes:    []string{"tagId", "workspaceId"},
			ForeignKeys: []string{
				"tagId -> Tag(id) ON DELETE SET NULL",
				"workspaceId -> Workspace(id) ON DELETE CASCADE",
			},
		}.normalized()
		if diff := cmp.Diff(wantShape, c.shape("Board")); diff != "" {
			t.Errorf("Board after migration (-want +got):\n%s", diff)
		}
		b2 := schema.Record{}
		for k, v := range want {
			b2[k] = v
		}
		b2["id"], b2["title"], b2["tagId"] = "b2", "Doing", "g1"
		b2["seenAt"], b2["touchedAt"] = time.Now().UTC().Truncate(time.Millisecond), time.Now().UTC().Truncate(time.Millisecond)
		upsert(t, v2, "Tag", schema.Record{"id": "g1", "workspaceId": "w1", "name": "red"})
		upsert(t, v2, "Board", b2) // same code as b1: that unique is gone
		b3 := schema.Record{}
		for k, v := range b2 {
			b3[k] = v
		}
		b3["id"] = "b3"
		err := inTx(t, v2, func(x *store.Tx) error { return x.Upsert(ctx, "Board", []schema.Record{b3}) })
		var ce *syncdata.ConstraintError
		if !errors.As(err, &ce) || ce.Kind != "unique" {
			t.Errorf("same workspace and title: %v, want a unique syncdata.ConstraintError", err)
		}
		if err := inTx(t, v2, func(x *store.Tx) error { return x.Delete(ctx, "Tag", [][]any{{"g1"}}) }); err != nil {
			t.Fatal(err)
		}
		if got := load(t, v2, "Board", "id", "b2"); len(got) != 1 || got[0]["tagId"] != nil {
			t.Errorf("b2 after deleting its tag: %v", got)
		}

		// A destructive v3 is refused and changes nothing.
		v3src := strings.Replace(strings.Replace(migrateV2, "  note        String?\n", "", 1), "rank        Int       @default(7)", `rank        String    @default("7")`, 1)
		s3, own3 := parseSchema(t, v3src, "Workspace")
		_, err = e.st.Tenant(ctx, "acme", s3, own3)
		var de *store.DestructiveError
		if !errors.As(err, &de) {
			t.Fatalf("Tenant with a destructive schema: %v, want a *DestructiveError", err)
		}
		wantProblems := []string{`column "Board"."note" would be dropped`, `column "Board"."rank" changes type from Int to String`}
		if diff := cmp.Diff(wantProblems, de.Problems); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantShape, c.shape("Board")); diff != "" {
			t.Errorf("Board after the refused migration (-want +got):\n%s", diff)
		}
		upsert(t, v2, "Workspace", schema.Record{"id": "w2", "name": "Two"})
		again := openTenant(t, e.st, "acme", migrateV2, "Workspace")
		if got := load(t, again, "Board", "workspaceId", "w1"); len(got) != 2 {
			t.Errorf("boards after the refused migration: %v", got)
		}
		if got := load(t, again, "Workspace", "id", "w2"); len(got) != 1 {
			t.Errorf("workspace written after the refused migration: %v", got)
		}
	})
}

func TestConcurrentTenantMigration(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		stores := []*store.Store{e.st, e.reopen(t)}
		for _, src := range []string{migrateV1, migrateV2} {
			s, own := parseSchema(t, src, "Workspace")
			errs := make(chan error, 4)
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() {
					_, err := stores[i%2].Tenant(t.Context(), "race", s, own)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("concurrent Tenant: %v", err)
				}
			}
		}
		a := openTenant(t, stores[0], "race", migrateV2, "Workspace")
		b := openTenant(t, stores[1], "race", migrateV2, "Workspace")
		upsert(t, a, "Workspace", schema.Record{"id": "w1", "name": "One"})
		upsert(t, b, "Tag", schema.Record{"id": "g1", "workspaceId": "w1", "name": "red"})
		if got := load(t, a, "Tag", "id", "g1"); len(got) != 1 {
			t.Errorf("tag written through the other store: %v", got)
		}
	})
}

func TestTenantIsolation(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		acme := kanbanTenant(t, e.st, "acme")
		eu := kanbanTenant(t, e.st, "acme-eu")

		upsert(t, acme, "Workspace", workspace("w1"))
		if got := load(t, eu, "Workspace", "id", "w1"); len(got) != 0 {
			t.Errorf("acme-eu reads acme's workspace: %v", got)
		}
		// The same key and unique value in the other tenant do not collide.
		other := schema.Record{"id": "w1", "name": "EU", "slug": "slug-w1"}
		upsert(t, eu, "Workspace", other)
		if diff := cmp.Diff([]schema.Record{workspace("w1")}, load(t, acme, "Workspace", "id", "w1")); diff != "" {
			t.Errorf("acme's workspace after acme-eu wrote its own (-want +got):\n%s", diff)
		}
		// Deletes stay in their tenant too.
		if err := inTx(t, eu, func(x *store.Tx) error { return x.Delete(ctx, "Workspace", [][]any{{"w1"}}) }); err != nil {
			t.Fatal(err)
		}
		if got := load(t, acme, "Workspace", "id", "w1"); len(got) != 1 {
			t.Errorf("acme's workspace after acme-eu deleted its own: %v", got)
		}
		// A record of the other tenant is no parent.
		err := inTx(t, eu, func(x *store.Tx) error {
			return x.Upsert(ctx, "Board", []schema.Record{{"id": "b1", "workspaceId": "w1", "title": "T", "position": int64(1)}})
		})
		var ce *syncdata.ConstraintError
		if !errors.As(err, &ce) || ce.Kind != "foreign key" {
			t.Errorf("board under another tenant's workspace: %v, want a foreign key syncdata.ConstraintError", err)
		}

		// Changelogs and scope heads are separate: the same outbox event
		// id is no duplicate in the other tenant.
		es := entries(t, "w1", "", 2, "ev")
		if err := appendEntries(t, acme, es); err != nil {
			t.Fatal(err)
		}
		if got, err := eu.Changes(ctx, "w1", "", 10); err != nil || len(got) != 0 {
			t.Errorf("acme-eu sees acme's changes: %v, %v", got, err)
		}
		err = inTx(t, eu, func(x *store.Tx) error {
			if got, err := x.AppliedEvents(ctx, "w1", []string{"ev-0"}); err != nil || len(got) != 0 {
				t.Errorf("acme-eu AppliedEvents = %v, %v", got, err)
			}
			if got, err := x.LastScopes(ctx, "Card", []string{`["w1-0"]`}); err != nil || len(got) != 0 {
				t.Errorf("acme-eu LastScopes = %v, %v", got, err)
			}
			if got, err := x.LockScopes(ctx, []string{"w1"}); err != nil || got["w1"] != "" {
				t.Errorf("acme-eu LockScopes = %v, %v", got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := appendEntries(t, eu, entries(t, "w1", "", 2, "ev")); err != nil {
			t.Errorf("same outbox event ids in another tenant: %v", err)
		}
		if got, err := acme.Changes(ctx, "w1", "", 10); err != nil || len(got) != 2 {
			t.Errorf("acme's changes = %d, %v; want its 2", len(got), err)
		}
	})
}

func TestPlatformMigrate(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		// e.st is migrated already; a second run changes nothing.
		if err := e.st.Migrate(t.Context()); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		// Two fresh stores on one new database migrate at once.
		url, dir := e.db.URL(t), t.TempDir()
		var stores []*store.Store
		for range 2 {
			st, err := store.Open(t.Context(), url, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			stores = append(stores, st)
		}
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		for i, st := range stores {
			wg.Go(func() { errs[i] = st.Migrate(t.Context()) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("concurrent Migrate %d: %v", i, err)
			}
		}
		for _, st := range stores {
			if err := st.Migrate(t.Context()); err != nil {
				t.Errorf("Migrate after the concurrent ones: %v", err)
			}
			if st.Postgres() != (e.db.Name == "postgres") {
				t.Errorf("Postgres() = %v on %s", st.Postgres(), e.db.Name)
			}
		}
		kanbanTenant(t, stores[1], "acme") // registers in syncplane_tenants
	})
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	t.Run("dsn=mysql", func(t *testing.T) {
		t.Parallel()
		_, err := store.Open(t.Context(), "mysql://user:s3cret@db.example:3306/app", t.TempDir())
		if err == nil {
			t.Fatal("Open(mysql://...) succeeded")
		}
		if !strings.Contains(err.Error(), "only postgres:// URLs are supported") {
			t.Errorf("error %q does not say what is supported", err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q shows the password", err)
		}
		if errors.Is(err, syncdata.ErrUnavailable) {
			t.Errorf("a wrong DSN is no syncdata.ErrUnavailable: %v", err)
		}
	})
	t.Run("dsn=postgres-unreachable", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		st, err := store.Open(ctx, "postgres://postgres:s3cret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", t.TempDir())
		if err == nil {
			st.Close()
			t.Fatal("Open on an unreachable PostgreSQL succeeded")
		}
		if !errors.Is(err, syncdata.ErrUnavailable) {
			t.Errorf("error %v is not syncdata.ErrUnavailable", err)
		}
	})
}

package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/syncdata"
)

// TestLoadScoped checks the one-query scope resolution against scope.Set's
// hop-by-hop resolution for every model and shape of the test schema: the
// root, one path, two paths to two scopes and to the same one, a null
// foreign key on one path, a composite foreign key, three hops.
func TestLoadScoped(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		sch, own, tn := twoWorkspaces(t, e)
		upsert(t, tn, "Card",
			schema.Record{"id": "c1", "boardId": "b1", "title": "unassigned", "assigneeWs": nil, "assigneeId": nil},
			schema.Record{"id": "c2", "boardId": "b1", "title": "assigned elsewhere", "assigneeWs": "w2", "assigneeId": "u2"},
			schema.Record{"id": "c3", "boardId": "b2", "title": "assigned here", "assigneeWs": "w2", "assigneeId": "u2"})
		upsert(t, tn, "Comment", schema.Record{"id": "m1", "cardId": "c2", "body": "hi", "eventRef": nil})
		upsert(t, tn, "Pin", schema.Record{"boardId": "b2", "userId": "u1"})

		keys := map[string][][]any{
			"Workspace": {{"w1"}, {"w2"}, {"nope"}},
			"Member":    {{"w1", "u1"}, {"w2", "u2"}},
			"Board":     {{"b1"}, {"b2"}},
			"Card":      {{"c1"}, {"c2"}, {"c3"}, {"nope"}},
			"Comment":   {{"m1"}},
			"Pin":       {{"b2", "u1"}},
		}
		want := map[string][]string{"c1": {"w1"}, "c2": {"w1", "w2"}, "c3": {"w2"}, "m1": {"w1", "w2"}}
		set := scope.NewSet(sch, own, tn)
		for model, ks := range keys {
			recs, scopes, err := tn.LoadScoped(t.Context(), model, ks)
			if err != nil {
				t.Fatalf("LoadScoped(%s): %v", model, err)
			}
			missing := 0
			for _, k := range ks {
				if k[0] == "nope" {
					missing++
				}
			}
			if len(recs) != len(ks)-missing || len(scopes) != len(recs) {
				t.Fatalf("LoadScoped(%s) = %d records, %d scope lists; want %d", model, len(recs), len(scopes), len(ks)-missing)
			}
			for i, r := range recs {
				ref, err := set.Scopes(t.Context(), model, r)
				if err != nil {
					t.Fatalf("Set.Scopes(%s %v): %v", model, r, err)
				}
				if diff := cmp.Diff(ref, scopes[i]); diff != "" {
					t.Errorf("%s %v: scopes differ from Set.Scopes (-set +scoped):\n%s", model, r, diff)
				}
				if id, _ := r["id"].(string); want[id] != nil && !slices.Equal(scopes[i], want[id]) {
					t.Errorf("%s %v: scopes %v, want %v", model, id, scopes[i], want[id])
				}
				stored := load(t, tn, model, model2field(model), r[model2field(model)])
				if !slices.ContainsFunc(stored, func(s schema.Record) bool { return cmp.Equal(s, r, jsonEqual) }) {
					t.Errorf("%s: LoadScoped record %v is not the stored one %v", model, r, stored)
				}
			}
		}
		if _, _, err := tn.LoadScoped(t.Context(), "User", [][]any{{"u1"}}); err == nil {
			t.Error("LoadScoped of an excluded model succeeded")
		}
	})
}

func model2field(model string) string {
	switch model {
	case "Member":
		return "workspaceId"
	case "Pin":
		return "boardId"
	}
	return "id"
}

// TestApply writes parents and children, the changelog and the heads in
// one Apply (one statement on PostgreSQL), then checks that a constraint
// violation or a replayed event anywhere in it keeps nothing, and that
// deletes and upserts of the same rows apply in order.
func TestApply(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		now := time.Now().UTC().Truncate(time.Millisecond)
		last := ""
		entry := func(model, key, event string) changelog.Entry {
			id, err := changelog.Next(last, now)
			if err != nil {
				t.Fatal(err)
			}
			last = id
			return changelog.Entry{ID: id, Model: model, KeyPath: []byte(`["` + key + `"]`), Operation: changelog.Create,
				ScopeKey: "w1", OutboxEventID: event, CreatedAt: now}
		}
		apply := func(writes []syncdata.Write, entries ...changelog.Entry) error {
			return inTx(t, tn, func(x *store.Tx) error {
				heads, err := x.LockScopes(ctx, []string{"w1"})
				if err != nil {
					return err
				}
				if len(entries) > 0 {
					heads["w1"] = entries[len(entries)-1].ID
				}
				return x.Apply(ctx, writes, entries, heads, ledger("u1", entries))
			})
		}

		e1 := entry("Workspace", "w1", "ev-1")
		e2 := entry("Board", "b1", "ev-2")
		e3 := entry("Card", "c1", "ev-3")
		err := apply([]syncdata.Write{
			{Model: "Workspace", Upsert: []schema.Record{workspace("w1")}},
			{Model: "Board", Upsert: []schema.Record{{"id": "b1", "workspaceId": "w1", "title": "One", "position": int64(1)}}},
			{Model: "Card", Upsert: []schema.Record{{"id": "c1", "boardId": "b1", "title": "card", "assigneeWs": nil, "assigneeId": nil}}},
		}, e1, e2, e3)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if got := load(t, tn, "Card", "id", "c1"); len(got) != 1 {
			t.Fatalf("c1 = %v", got)
		}
		got, err := tn.Changes(ctx, "w1", "", 10)
		if err != nil || len(got) != 3 || got[2].ID != e3.ID {
			t.Fatalf("changes = %v, %v; want the 3 entries", got, err)
		}
		if err := apply(nil, entry("Board", "b1", "ev-4")); err != nil {
			t.Fatalf("Apply of entries only: %v", err)
		}

		// A unique violation in the same statement as the changelog.
		e5 := entry("Workspace", "w2", "ev-5")
		err = apply([]syncdata.Write{
			{Model: "Workspace", Upsert: []schema.Record{{"id": "w2", "name": "Two", "slug": "slug-w1"}}},
			{Model: "Board", Upsert: []schema.Record{{"id": "b2", "workspaceId": "w2", "title": "Two", "position": int64(1)}}},
		}, e5)
		var ce *syncdata.ConstraintError
		if !errors.As(err, &ce) || ce.Kind != "unique" {
			t.Fatalf("unique violation: error %v, want a unique syncdata.ConstraintError", err)
		}
		// A child whose parent is missing.
		err = apply([]syncdata.Write{
			{Model: "Board", Upsert: []schema.Record{{"id": "b3", "workspaceId": "nope", "title": "Three", "position": int64(1)}}},
		}, e5)
		if !errors.As(err, &ce) || ce.Kind != "foreign key" {
			t.Fatalf("missing parent: error %v, want a foreign key syncdata.ConstraintError", err)
		}
		// A replayed event next to new records.
		err = apply([]syncdata.Write{
			{Model: "Board", Upsert: []schema.Record{{"id": "b4", "workspaceId": "w1", "title": "Four", "position": int64(4)}}},
		}, entry("Board", "b4", "ev-2"))
		if !errors.Is(err, syncdata.ErrDuplicateEvent) {
			t.Fatalf("replayed event: error %v, want syncdata.ErrDuplicateEvent", err)
		}
		for model, id := range map[string]string{"Workspace": "w2", "Board": "b2"} {
			if got := load(t, tn, model, "id", id); len(got) != 0 {
				t.Errorf("%s %s kept after a failed Apply: %v", model, id, got)
			}
		}
		if got := load(t, tn, "Board", "id", "b4"); len(got) != 0 {
			t.Errorf("b4 kept after a failed Apply: %v", got)
		}

		// Delete a board (its card cascades), then create it again with a
		// new card: the order of the writes decides.
		e6 := entry("Board", "b1", "ev-6")
		err = apply([]syncdata.Write{
			{Model: "Board", Delete: [][]any{{"b1"}}},
			{Model: "Board", Upsert: []schema.Record{{"id": "b1", "workspaceId": "w1", "title": "Again", "position": int64(1)}}},
			{Model: "Card", Upsert: []schema.Record{{"id": "c2", "boardId": "b1", "title": "new", "assigneeWs": nil, "assigneeId": nil}}},
		}, e6)
		if err != nil {
			t.Fatalf("Apply with a delete: %v", err)
		}
		if got := load(t, tn, "Card", "id", "c1", "c2"); len(got) != 1 || got[0]["id"] != "c2" {
			t.Errorf("cards after delete and re-create = %v, want c2 only", got)
		}
		if got := load(t, tn, "Board", "id", "b1"); len(got) != 1 || got[0]["title"] != "Again" {
			t.Errorf("b1 = %v", got)
		}
	})
}

// TestChangesWithRecords checks a page with its records (one statement) against ChangesAcross and LoadScoped: records of every model
// and key shape (composite keys, integer keys), records deleted since,
// entries of a model no longer synced, several scopes in one page.
func TestChangesWithRecords(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		sch, own, tn := twoWorkspaces(t, e)
		upsert(t, tn, "Card", schema.Record{"id": "c1", "boardId": "b1", "title": "x", "assigneeWs": "w2", "assigneeId": "u2"})
		upsert(t, tn, "Pin", schema.Record{"boardId": "b2", "userId": "u1"})
		now := time.Now().UTC().Truncate(time.Millisecond)
		last := ""
		var es []changelog.Entry
		add := func(model, key, sc string) {
			id, err := changelog.Next(last, now)
			if err != nil {
				t.Fatal(err)
			}
			last = id
			es = append(es, changelog.Entry{ID: id, Model: model, KeyPath: []byte(key), Operation: changelog.Update,
				ScopeKey: sc, OutboxEventID: "ev-" + id, CreatedAt: now})
		}
		add("Workspace", `["w1"]`, "w1")
		add("Board", `["b1"]`, "w1")
		add("Member", `["w1","u1"]`, "w1")
		add("Card", `["c1"]`, "w1")
		add("Card", `["gone"]`, "w1")
		add("User", `["u1"]`, "w1") // a model that is not synced
		add("Pin", `["b2","u1"]`, "w2")
		add("Board", `["b2"]`, "w2")
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		if !tn.OneStatementPage() {
			t.Fatalf("one-statement page: %v on %s", tn.OneStatementPage(), e.db.Name)
		}
		after := map[string]string{"w1": "", "w2": ""}
		got, err := tn.ChangesWithRecords(ctx, after, 50)
		if err != nil {
			t.Fatalf("ChangesWithRecords: %v", err)
		}
		entries, err := tn.ChangesAcross(ctx, after, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(entries) {
			t.Fatalf("%d entries, want %d", len(got), len(entries))
		}
		for i, g := range got {
			if diff := cmp.Diff(entries[i], g.Entry); diff != "" {
				t.Errorf("entry %d (-ChangesAcross +page):\n%s", i, diff)
			}
			var want schema.Record
			var wantScopes []string
			if m := sch.Model(g.Model); m != nil && own.IsSynced(g.Model) {
				pk, err := m.ValidateKey(g.KeyPath)
				if err != nil {
					t.Fatal(err)
				}
				recs, scopes, err := tn.LoadScoped(ctx, g.Model, [][]any{pk})
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) == 1 {
					want, wantScopes = recs[0], scopes[0]
				}
			}
			if diff := cmp.Diff(want, g.Record, jsonEqual); diff != "" {
				t.Errorf("%s %s record (-LoadScoped +page):\n%s", g.Model, g.KeyPath, diff)
			}
			if !slices.Equal(wantScopes, g.Scopes) {
				t.Errorf("%s %s scopes %v, want %v", g.Model, g.KeyPath, g.Scopes, wantScopes)
			}
		}
		if got[4].Record != nil || got[5].Record != nil {
			t.Errorf("a deleted record or an unsynced model's entry has a record: %v, %v", got[4].Record, got[5].Record)
		}
		if got[3].Record == nil || !slices.Equal(got[3].Scopes, []string{"w1", "w2"}) {
			t.Errorf("c1 = %v in %v, want the card in w1 and w2", got[3].Record, got[3].Scopes)
		}
		// The limit and the cursors hold across scopes.
		page, err := tn.ChangesWithRecords(ctx, map[string]string{"w1": es[2].ID, "w2": ""}, 3)
		if err != nil || len(page) != 3 || page[0].ID != es[3].ID || page[2].ID != es[5].ID {
			t.Errorf("second page = %v, %v; want entries 3 to 5", page, err)
		}
	})
}

// TestChangesWithRecordsIntegerKeys: the one-statement page reads integer
// keys out of the key path.
func TestChangesWithRecordsIntegerKeys(t *testing.T) {
	const src = `
model Org {
  id    Int    @id
  name  String
  notes Note[]
}
model Note {
  id    BigInt @id
  orgId Int
  body  String
  org   Org    @relation(fields: [orgId], references: [id], onDelete: Cascade)
}`
	forEachDB(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := openTenant(t, e.st, "ints", src, "Org")
		upsert(t, tn, "Org", schema.Record{"id": int64(7), "name": "seven"})
		upsert(t, tn, "Note", schema.Record{"id": int64(9007199254740993), "orgId": int64(7), "body": "big"})
		now := time.Now().UTC().Truncate(time.Millisecond)
		id1, _ := changelog.Next("", now)
		id2, _ := changelog.Next(id1, now)
		es := []changelog.Entry{
			{ID: id1, Model: "Org", KeyPath: []byte(`[7]`), Operation: changelog.Create, ScopeKey: "7", OutboxEventID: "e1", CreatedAt: now},
			{ID: id2, Model: "Note", KeyPath: []byte(`[9007199254740993]`), Operation: changelog.Create, ScopeKey: "7", OutboxEventID: "e2", CreatedAt: now},
		}
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		if !tn.OneStatementPage() {
			t.Fatalf("one-statement page: %v on %s", tn.OneStatementPage(), e.db.Name)
		}
		got, err := tn.ChangesWithRecords(ctx, map[string]string{"7": ""}, 10)
		if err != nil || len(got) != 2 {
			t.Fatalf("ChangesWithRecords = %v, %v", got, err)
		}
		if got[0].Record["name"] != "seven" || !slices.Equal(got[0].Scopes, []string{"7"}) {
			t.Errorf("org = %v in %v", got[0].Record, got[0].Scopes)
		}
		if got[1].Record["id"] != int64(9007199254740993) || !slices.Equal(got[1].Scopes, []string{"7"}) {
			t.Errorf("note = %v in %v", got[1].Record, got[1].Scopes)
		}
	})
}

// twoWorkspaces opens tenant acme of the test kanban schema with
// workspaces w1 and w2, a member of each (u1, u2) and a board in each (b1,
// b2).
func twoWorkspaces(t *testing.T, e *env) (*schema.Schema, *schema.Ownership, *store.Tenant) {
	t.Helper()
	sch, own := parseSchema(t, kanban, "Workspace", "User")
	tn, err := e.st.Tenant(t.Context(), "acme", sch, own)
	if err != nil {
		t.Fatal(err)
	}
	upsert(t, tn, "Workspace", workspace("w1"), workspace("w2"))
	upsert(t, tn, "Member", schema.Record{"workspaceId": "w1", "userId": "u1", "role": "OWNER"},
		schema.Record{"workspaceId": "w2", "userId": "u2", "role": "MEMBER"})
	upsert(t, tn, "Board", schema.Record{"id": "b1", "workspaceId": "w1", "title": "One", "position": int64(1)},
		schema.Record{"id": "b2", "workspaceId": "w2", "title": "Two", "position": int64(1)})
	return sch, own, tn
}

// TestAwkwardStrings writes and reads back keys and values that an array
// parameter must escape (PostgreSQL sends string columns as one array
// literal): quotes, backslashes, braces, commas, the text NULL, the empty
// string, spaces and non-ASCII; a null value stays null.
func TestAwkwardStrings(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		awkward := []string{`q"uote`, `back\slash`, `\"`, `{brace}`, `a,b`, "NULL", "", " lead and trail ", "ünï ✓", `"{\,}"`}
		var boards []schema.Record
		var ids []any
		for i, s := range awkward {
			id := fmt.Sprintf("b%d%s", i, s)
			boards = append(boards, schema.Record{"id": id, "workspaceId": "w1", "title": s, "position": int64(i)})
			ids = append(ids, id)
		}
		boards[0]["title"] = `x"y`
		err := inTx(t, tn, func(x *store.Tx) error {
			return x.Apply(ctx, []syncdata.Write{
				{Model: "Workspace", Upsert: []schema.Record{workspace("w1")}},
				{Model: "Board", Upsert: boards},
			}, nil, nil, syncdata.Applied{})
		})
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		got := map[string]string{}
		for _, r := range load(t, tn, "Board", "id", ids...) {
			got[r["id"].(string)] = r["title"].(string)
		}
		want := map[string]string{}
		for _, b := range boards {
			want[b["id"].(string)] = b["title"].(string)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("boards read back (-want +got):\n%s", diff)
		}
		cards := []schema.Record{{"id": `c"1`, "boardId": ids[1], "title": `t\`, "assigneeWs": nil, "assigneeId": nil}}
		if err := inTx(t, tn, func(x *store.Tx) error {
			return x.Apply(ctx, []syncdata.Write{{Model: "Card", Upsert: cards}}, nil, nil, syncdata.Applied{})
		}); err != nil {
			t.Fatalf("Apply card: %v", err)
		}
		c := load(t, tn, "Card", "id", `c"1`)
		if len(c) != 1 || c[0]["title"] != `t\` || c[0]["assigneeWs"] != nil || c[0]["boardId"] != ids[1] {
			t.Errorf("card read back = %v", c)
		}
	})
}

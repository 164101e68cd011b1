package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/syncdata"
)

// pageEntries makes changelog entries (model, key path, scope) with increasing ids.
func pageEntries(t *testing.T, specs ...[3]string) []changelog.Entry {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	last := ""
	out := make([]changelog.Entry, len(specs))
	for i, s := range specs {
		id, err := changelog.Next(last, now)
		if err != nil {
			t.Fatal(err)
		}
		last = id
		out[i] = changelog.Entry{ID: id, Model: s[0], KeyPath: []byte(s[1]), Operation: changelog.Update, ScopeKey: s[2],
			OutboxEventID: "ev-" + id, CreatedAt: now}
	}
	return out
}

// readAll is ReadPage collected, stopping after stop entries (0: never).
func readAll(t *testing.T, tn *store.Tenant, after map[string]string, limit, stop int) []syncdata.PageEntry {
	t.Helper()
	var got []syncdata.PageEntry
	err := tn.ReadPage(t.Context(), after, limit, func(e *syncdata.PageEntry) (bool, error) {
		got = append(got, *e)
		return stop == 0 || len(got) < stop, nil
	})
	if err != nil {
		t.Fatalf("ReadPage: %v", err)
	}
	return got
}

// TestReadPageRecordOnce: a record named by several entries of a page comes
// with its first entry only, the others are marked Repeat; and reading
// stops when the reader says so.
func TestReadPageRecordOnce(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		_, _, tn := twoWorkspaces(t, e)
		es := pageEntries(t,
			[3]string{"Board", `["b1"]`, "w1"},
			[3]string{"Board", `["b1"]`, "w1"},
			[3]string{"Workspace", `["w1"]`, "w1"},
			[3]string{"Board", `["b1"]`, "w1"},
			[3]string{"Board", `["gone"]`, "w1"},
			[3]string{"Board", `["gone"]`, "w1"},
			[3]string{"Board", `["b2"]`, "w2"},
		)
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		after := map[string]string{"w1": "", "w2": ""}
		got := readAll(t, tn, after, 50, 0)
		if len(got) != len(es) {
			t.Fatalf("%d entries, want %d", len(got), len(es))
		}
		wantRepeat := []bool{false, true, false, true, false, true, false}
		for i, g := range got {
			if g.ID != es[i].ID || g.Repeat != wantRepeat[i] {
				t.Errorf("entry %d: %s repeat=%v, want %s repeat=%v", i, g.ID, g.Repeat, es[i].ID, wantRepeat[i])
			}
			if g.Repeat && (g.Record != nil || g.Scopes != nil) {
				t.Errorf("entry %d repeats its record but carries %v in %v", i, g.Record, g.Scopes)
			}
		}
		if got[0].Record["title"] != "One" || got[2].Record == nil || got[4].Record != nil || got[6].Record["title"] != "Two" {
			t.Errorf("records: %v, %v, %v, %v", got[0].Record, got[2].Record, got[4].Record, got[6].Record)
		}
		// ChangesWithRecords gives every entry its record.
		all, err := tn.ChangesWithRecords(t.Context(), after, 50)
		if err != nil || len(all) != len(es) || all[3].Record["title"] != "One" || all[5].Record != nil {
			t.Errorf("ChangesWithRecords: %d entries, %v", len(all), err)
		}
		// A page is read only as far as the reader goes; the next read
		// starts after the last entry taken, where b1 is new again.
		if part := readAll(t, tn, after, 50, 2); len(part) != 2 {
			t.Fatalf("stopped after 2: got %d", len(part))
		}
		rest := readAll(t, tn, map[string]string{"w1": es[2].ID, "w2": ""}, 50, 0)
		if len(rest) != 4 || rest[0].Repeat || rest[0].Record["title"] != "One" {
			t.Errorf("after entry 2: %d entries, first %+v", len(rest), rest[0])
		}
	})
}

// TestReadPageManyScopes: one page across 700 scopes (SQLite refused more
// than 500 terms in the compound SELECT the union read was) merged in id
// order, each scope after its own cursor.
func TestReadPageManyScopes(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		_, _, tn := twoWorkspaces(t, e)
		var specs [][3]string
		for i := 0; i < 700; i++ {
			sc := fmt.Sprintf("s%04d", i)
			specs = append(specs, [3]string{"Board", `["x` + sc + `"]`, sc}, [3]string{"Board", `["y` + sc + `"]`, sc})
		}
		es := pageEntries(t, specs...)
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		after := map[string]string{}
		for i := 0; i < 700; i++ {
			after[fmt.Sprintf("s%04d", i)] = ""
		}
		after["s0000"] = es[1].ID // s0000 is read
		got := readAll(t, tn, after, 50, 0)
		if len(got) != 50 {
			t.Fatalf("%d entries, want 50", len(got))
		}
		for i, g := range got {
			if g.ID != es[i+2].ID {
				t.Fatalf("entry %d: %s (%s), want %s", i, g.ID, g.ScopeKey, es[i+2].ID)
			}
		}
	})
}

// TestReadPageInChunks: keys the one statement cannot read from a key path
// (a DateTime here) are loaded a few records at a time, each record once.
func TestReadPageInChunks(t *testing.T) {
	const src = `
model Org {
  id     String  @id
  events Event[]
}
model Event {
  orgId String
  at    DateTime
  note  String
  org   Org      @relation(fields: [orgId], references: [id], onDelete: Cascade)
  @@id([orgId, at])
}`
	forEachDB(t, func(t *testing.T, e *env) {
		tn := openTenant(t, e.st, "chunks", src, "Org")
		if tn.OneStatementPage() {
			t.Fatal("a DateTime key is read in one statement")
		}
		upsert(t, tn, "Org", schema.Record{"id": "o1"})
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var specs [][3]string
		for i := 0; i < 40; i++ {
			at := base.Add(time.Duration(i) * time.Second)
			upsert(t, tn, "Event", schema.Record{"orgId": "o1", "at": at, "note": fmt.Sprintf("n%d", i)})
			key := fmt.Sprintf(`["o1","%s"]`, at.Format("2006-01-02T15:04:05.000Z"))
			specs = append(specs, [3]string{"Event", key, "o1"})
			if i%10 == 0 {
				specs = append(specs, [3]string{"Event", key, "o1"}) // the same record again
			}
		}
		es := pageEntries(t, specs...)
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, tn, map[string]string{"o1": ""}, 100, 0)
		if len(got) != len(es) {
			t.Fatalf("%d entries, want %d", len(got), len(es))
		}
		n := 0
		for i, g := range got {
			if g.Repeat != (i > 0 && string(es[i-1].KeyPath) == string(g.KeyPath)) {
				t.Errorf("entry %d repeat=%v", i, g.Repeat)
			}
			if g.Repeat {
				continue
			}
			if want := fmt.Sprintf("n%d", n); g.Record["note"] != want {
				t.Errorf("entry %d: record %v, want note %s", i, g.Record, want)
			}
			n++
		}
	})
}

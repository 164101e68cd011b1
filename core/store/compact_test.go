package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
)

// TestCompaction: an entry deletes the previous entry of its record in
// its scope, and only that: the record's entries in other scopes, other
// records' entries and the new entry itself stay; the ledger keeps the
// superseded entry's id.
func TestCompaction(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		now := time.Now().UTC().Truncate(time.Millisecond)
		last := ""
		entry := func(key, scope, ev string, op changelog.Operation) changelog.Entry {
			id, err := changelog.Next(last, now)
			if err != nil {
				t.Fatal(err)
			}
			last = id
			return changelog.Entry{ID: id, Model: "Card", KeyPath: json.RawMessage(`["` + key + `"]`), Operation: op,
				ScopeKey: scope, OutboxEventID: ev, CreatedAt: now}
		}
		c1a := entry("c1", "a", "e1", changelog.Create)
		c1b := entry("c1", "b", "e2", changelog.Create) // same record, another scope
		c2a := entry("c2", "a", "e3", changelog.Create)
		if err := appendApplied(t, tn, "u1", []changelog.Entry{c1a, c1b, c2a}); err != nil {
			t.Fatal(err)
		}
		c1a2 := entry("c1", "a", "e4", changelog.Update)
		if err := appendApplied(t, tn, "u1", []changelog.Entry{c1a2}); err != nil {
			t.Fatal(err)
		}
		c1a3 := entry("c1", "a", "e5", changelog.Delete)
		if err := appendApplied(t, tn, "u1", []changelog.Entry{c1a3}); err != nil {
			t.Fatal(err)
		}
		gotA, err := tn.Changes(ctx, "a", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]changelog.Entry{c2a, c1a3}, gotA); diff != "" {
			t.Errorf("scope a (-want +got):\n%s", diff)
		}
		gotB, err := tn.Changes(ctx, "b", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]changelog.Entry{c1b}, gotB); diff != "" {
			t.Errorf("scope b (-want +got):\n%s", diff)
		}
		// A reader behind a removed entry reads the newer one; a reader
		// past it has read it.
		if got, err := tn.Changes(ctx, "a", c1a.ID, 100); err != nil || len(got) != 2 || got[1].ID != c1a3.ID {
			t.Errorf("reader at the removed entry: %v, %v", got, err)
		}
		applied, err := tn.AppliedEvents(ctx, "u1", []string{"e1", "e4", "e5"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"e1": c1a.ID, "e4": c1a2.ID, "e5": c1a3.ID}, applied); diff != "" {
			t.Errorf("the ledger keeps superseded entries' ids (-want +got):\n%s", diff)
		}
	})
}

// TestPruneLedger: PruneLedger deletes at most limit rows applied before
// the given time, and nothing newer.
func TestPruneLedger(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		if err := appendApplied(t, tn, "u1", entries(t, "s1", "", 5, "old")); err != nil {
			t.Fatal(err)
		}
		n, err := tn.PruneLedger(ctx, time.Now().Add(-time.Hour), 100)
		if err != nil || n != 0 {
			t.Fatalf("pruning before an hour ago = %d, %v; want 0", n, err)
		}
		cut := time.Now().Add(time.Second)
		if n, err = tn.PruneLedger(ctx, cut, 3); err != nil || n != 3 {
			t.Fatalf("pruning 3 = %d, %v", n, err)
		}
		if n, err = tn.PruneLedger(ctx, cut, 3); err != nil || n != 2 {
			t.Fatalf("pruning the rest = %d, %v", n, err)
		}
		got, err := tn.AppliedEvents(ctx, "u1", []string{"old-0", "old-1", "old-2", "old-3", "old-4"})
		if err != nil || len(got) != 0 {
			t.Errorf("after pruning, AppliedEvents = %v, %v", got, err)
		}
	})
}

// TestLedgerRetention: with a retention set, a commit prunes the ledger
// rows older than it (the first commit of a handle; then at most once a
// minute).
func TestLedgerRetention(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		old := entries(t, "s1", "", 3, "old")
		if err := appendApplied(t, tn, "u1", old); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		tn.SetLedgerRetention(500 * time.Millisecond)
		if err := appendApplied(t, tn, "u1", entries(t, "s1", old[2].ID, 1, "new")); err != nil {
			t.Fatal(err)
		}
		// The pruning runs in the background, after the commit.
		var got map[string]string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var err error
			if got, err = tn.AppliedEvents(ctx, "u1", []string{"old-0", "old-1", "old-2", "new-0"}); err != nil {
				t.Fatal(err)
			}
			if len(got) == 1 || time.Now().After(deadline) {
				break
			}
		}
		if _, ok := got["new-0"]; len(got) != 1 || !ok {
			t.Errorf("after the pruning, the ledger holds %v, want only new-0", got)
		}
	})
}

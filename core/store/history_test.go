package store_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/syncdata"
)

// history is an uncompacted changelog as syncplane wrote it before system
// version 3: in scope "a", records c0…c29 with a create and three updates
// each, c0…c4 deleted at the end; in scope "b", c0…c9 with a create and an
// update each. The entries of different records interleave.
type history struct {
	all    []changelog.Entry
	latest map[string]changelog.Entry // scope|key → the record's last entry there
}

func makeHistory(t *testing.T, records int) history {
	t.Helper()
	h := history{latest: map[string]changelog.Entry{}}
	now := time.Now().UTC().Truncate(time.Millisecond)
	last := ""
	add := func(scope string, i int, op changelog.Operation) {
		id, err := changelog.Next(last, now)
		if err != nil {
			t.Fatal(err)
		}
		last = id
		e := changelog.Entry{ID: id, Model: "Card", KeyPath: json.RawMessage(fmt.Sprintf(`["c%d"]`, i)), Operation: op,
			ScopeKey: scope, OutboxEventID: fmt.Sprintf("ev-%d", len(h.all)), CreatedAt: now}
		h.all = append(h.all, e)
		h.latest[scope+"|"+string(e.KeyPath)] = e
	}
	for round, op := range []changelog.Operation{changelog.Create, changelog.Update, changelog.Update, changelog.Update} {
		for i := range records {
			add("a", i, op)
			if i < records/3 && round < 2 {
				add("b", i, op)
			}
		}
	}
	for i := range records / 6 {
		add("a", i, changelog.Delete)
	}
	return h
}

// state is what a reader knows of scope's records after applying entries
// (record key → its last operation).
func state(into map[string]changelog.Operation, entries []changelog.Entry) map[string]changelog.Operation {
	for _, e := range entries {
		into[string(e.KeyPath)] = e.Operation
	}
	return into
}

// TestCompactHistory: Compact removes every entry a newer entry of its
// record in its scope supersedes, in batches, and reports it; a fresh
// reader then reads one entry per record, and a reader holding a cursor in
// the middle of the old history ends where a reader of the whole history
// ends. A second run removes nothing.
func TestCompactHistory(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		h := makeHistory(t, 30)
		if err := tn.AppendUncompacted(ctx, h.all); err != nil {
			t.Fatal(err)
		}
		var inA []changelog.Entry
		for _, x := range h.all {
			if x.ScopeKey == "a" {
				inA = append(inA, x)
			}
		}
		mid := inA[len(inA)/2].ID
		behind := state(map[string]changelog.Operation{}, inA[:len(inA)/2+1])

		rep, err := tn.Compact(ctx, store.CompactOptions{Batch: 7})
		if err != nil {
			t.Fatal(err)
		}
		want := store.CompactReport{Before: int64(len(h.all)), Superseded: int64(len(h.all) - len(h.latest)),
			After: int64(len(h.latest)), Deletes: 5, Batches: (len(h.all) + 6) / 7}
		if len(h.all)%7 == 0 {
			want.Batches++ // the last batch finds the end
		}
		rep.Took = 0
		if diff := cmp.Diff(want, rep); diff != "" {
			t.Errorf("report (-want +got):\n%s", diff)
		}
		for _, sc := range []string{"a", "b"} {
			got, err := tn.Changes(ctx, sc, "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, x := range got {
				if seen[string(x.KeyPath)] {
					t.Errorf("scope %s: a fresh reader reads %s twice", sc, x.KeyPath)
				}
				seen[string(x.KeyPath)] = true
				if w := h.latest[sc+"|"+string(x.KeyPath)]; w.ID != x.ID {
					t.Errorf("scope %s: %s kept %s, want its last entry %s", sc, x.KeyPath, x.ID, w.ID)
				}
			}
		}
		rest, err := tn.Changes(ctx, "a", mid, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(state(map[string]changelog.Operation{}, inA), state(behind, rest)); diff != "" {
			t.Errorf("a reader at a mid-history cursor ends elsewhere than the whole history (-want +got):\n%s", diff)
		}
		if pending, err := tn.CompactionPending(ctx); err != nil || pending {
			t.Errorf("CompactionPending after Compact = %v, %v", pending, err)
		}
		again, err := tn.Compact(ctx, store.CompactOptions{})
		if err != nil || again.Superseded != 0 || again.After != want.After {
			t.Errorf("second Compact = %+v, %v; want nothing removed", again, err)
		}
	})
}

// TestCompactionAfterUpgrade: a tenant at system version 3 or earlier is
// marked for compaction by its upgrade, and ResumeCompaction compacts it
// in the background; a new tenant has nothing pending.
func TestCompactionAfterUpgrade(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := kanbanTenant(t, e.st, "acme")
		if pending, err := tn.CompactionPending(ctx); err != nil || pending {
			t.Fatalf("a new tenant: CompactionPending = %v, %v", pending, err)
		}
		h := makeHistory(t, 12)
		if err := tn.AppendUncompacted(ctx, h.all); err != nil {
			t.Fatal(err)
		}
		if err := tn.SetSystemVersion(ctx, "3"); err != nil {
			t.Fatal(err)
		}
		up := kanbanTenant(t, e.reopen(t), "acme") // the next version of the server starts
		if pending, err := up.CompactionPending(ctx); err != nil || !pending {
			t.Fatalf("upgraded from 3: CompactionPending = %v, %v", pending, err)
		}
		done := make(chan store.CompactReport, 1)
		up.ResumeCompaction(func(r store.CompactReport, err error) {
			if err != nil {
				t.Errorf("background compaction: %v", err)
			}
			done <- r
		})
		select {
		case r := <-done:
			if r.Superseded != int64(len(h.all)-len(h.latest)) || r.After != int64(len(h.latest)) {
				t.Errorf("background compaction: %+v; want %d removed, %d left", r, len(h.all)-len(h.latest), len(h.latest))
			}
		case <-time.After(time.Minute):
			t.Fatal("the background compaction did not end")
		}
		if pending, err := up.CompactionPending(ctx); err != nil || pending {
			t.Errorf("after the compaction: CompactionPending = %v, %v", pending, err)
		}
	})
}

// TestCompactWhileWriting: Compact runs in small batches while writers
// append compacting entries to the same records; both succeed, and
// afterwards every record has exactly its newest entry.
func TestCompactWhileWriting(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		h := makeHistory(t, 60)
		if err := tn.AppendUncompacted(ctx, h.all); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		newest := map[string]string{} // key → newest id written by the writers
		for w := range 2 {
			wg.Go(func() {
				for n := range 40 {
					key := fmt.Sprintf(`["c%d"]`, (n*7+w*3)%60)
					err := inTx(t, tn, func(x *store.Tx) error {
						heads, err := x.LockScopes(ctx, []string{"a"})
						if err != nil {
							return err
						}
						id, err := changelog.Next(heads["a"], time.Now())
						if err != nil {
							return err
						}
						en := changelog.Entry{ID: id, Model: "Card", KeyPath: json.RawMessage(key), Operation: changelog.Update,
							ScopeKey: "a", OutboxEventID: fmt.Sprintf("w%d-%d", w, n), CreatedAt: time.Now().UTC()}
						if err := x.Apply(ctx, nil, []changelog.Entry{en}, map[string]string{"a": id}, syncdata.Applied{}); err != nil {
							return err
						}
						mu.Lock()
						newest[key] = max(newest[key], id)
						mu.Unlock()
						return nil
					})
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			})
		}
		if _, err := tn.Compact(ctx, store.CompactOptions{Batch: 5}); err != nil {
			t.Errorf("Compact: %v", err)
		}
		wg.Wait()
		if _, err := tn.Compact(ctx, store.CompactOptions{}); err != nil { // what the writers' first batches left
			t.Fatal(err)
		}
		got, err := tn.Changes(ctx, "a", "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, x := range got {
			k := string(x.KeyPath)
			if seen[k] {
				t.Errorf("%s has two entries", k)
			}
			seen[k] = true
			want := h.latest["a|"+k].ID
			if id, ok := newest[k]; ok {
				want = id
			}
			if x.ID != want {
				t.Errorf("%s kept %s, want %s", k, x.ID, want)
			}
		}
		if len(seen) != 60 {
			t.Errorf("%d records in scope a, want 60", len(seen))
		}
	})
}

// TestDropTombstones: DropTombstones removes delete entries written before
// the cut, oldest first and at most limit, moves each scope's horizon to
// the newest id it dropped there in the same transaction, and keeps every
// other entry; Horizons answers nothing, without a query, for a tenant
// that never dropped one.
func TestDropTombstones(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		tn := kanbanTenant(t, e.st, "acme")
		ctx := t.Context()
		if hz, err := tn.Horizons(ctx, []string{"a"}); err != nil || hz != nil {
			t.Fatalf("Horizons of a tenant without retention = %v, %v", hz, err)
		}
		h := makeHistory(t, 12)
		if err := tn.AppendUncompacted(ctx, h.all); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.Compact(ctx, store.CompactOptions{}); err != nil {
			t.Fatal(err)
		}
		var tombs []string // in scope a, in id order
		for _, x := range h.all {
			if x.Operation == changelog.Delete {
				tombs = append(tombs, x.ID)
			}
		}
		if n, err := tn.DropTombstones(ctx, time.Now().Add(-time.Hour), 100); err != nil || n != 0 {
			t.Fatalf("dropping tombstones older than an hour = %d, %v", n, err)
		}
		cut := time.Now().Add(time.Second)
		if n, err := tn.DropTombstones(ctx, cut, 1); err != nil || n != 1 {
			t.Fatalf("dropping 1 = %d, %v", n, err)
		}
		tn.SetTombstoneRetention(time.Hour)
		hz, err := tn.Horizons(ctx, []string{"a", "b"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"a": tombs[0]}, hz); diff != "" {
			t.Errorf("horizons after one drop (-want +got):\n%s", diff)
		}
		if n, err := tn.DropTombstones(ctx, cut, 100); err != nil || n != int64(len(tombs)-1) {
			t.Fatalf("dropping the rest = %d, %v", n, err)
		}
		if hz, err = tn.Horizons(ctx, []string{"a", "b", "c"}); err != nil || hz["a"] != tombs[len(tombs)-1] || len(hz) != 1 {
			t.Errorf("horizons after all drops = %v, %v", hz, err)
		}
		got, err := tn.Changes(ctx, "a", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range got {
			if x.Operation == changelog.Delete {
				t.Errorf("tombstone %s stayed", x.ID)
			}
		}
		if len(got) != 12-len(tombs) {
			t.Errorf("scope a holds %d entries, want the %d live records'", len(got), 12-len(tombs))
		}
	})
}

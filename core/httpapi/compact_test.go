package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/storetest"
)

// reader follows a subject's changelog with the cursor, as a device does,
// and keeps each record's state as the entries it read leave it.
type reader struct {
	cursor  string
	state   map[string]string // Board key -> name; "" deleted
	entries int
	last    string
}

// page pulls one page of at most limit entries and applies it; it reports
// whether the page held any.
func (r *reader) page(t *testing.T, e *env, sub string, limit int) bool {
	t.Helper()
	req := map[string]any{"limit": limit}
	if r.cursor != "" {
		req["lastChangelogId"] = r.cursor
	}
	page := e.pull(t, "acme", sub, req)
	for _, l := range page.LogsWithRecords {
		if l.ID <= r.last {
			t.Fatalf("entry %s after %s", l.ID, r.last)
		}
		r.last = l.ID
		r.entries++
		r.apply(t, l)
	}
	if page.Cursor != nil {
		r.cursor = *page.Cursor
	}
	return len(page.LogsWithRecords) > 0
}

func (r *reader) apply(t *testing.T, l pull.LogWithRecord) {
	if l.Model != "Board" {
		return
	}
	if r.state == nil {
		r.state = map[string]string{}
	}
	if l.Operation == "delete" || string(l.Record) == "null" {
		r.state[string(l.KeyPath)] = ""
		return
	}
	r.state[string(l.KeyPath)], _ = recordOf(t, l)["name"].(string)
}

func (r *reader) drain(t *testing.T, e *env, sub string, limit int) {
	t.Helper()
	for r.page(t, e, sub, limit) {
	}
}

// TestCompactedFirstPull: 100 boards each changed 20 times (the first a
// create; within a push some boards change twice, so the batch collapses
// them too). A new device pulls 101 entries (the user and each board
// once), each with the board's last state; readers that pulled part of the
// history before the later updates (one halfway through, one a page behind
// the writer all along) converge to the same state.
func TestCompactedFirstPull(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		const sub, boards, changes = "cfp", 100, 20
		ok(t, e.push(t, "acme", sub, ev("", "User", "create", user(sub))))
		name := func(b, c int) string { return fmt.Sprintf("board %d change %d", b, c) }
		key := func(b int) string { return fmt.Sprintf(`["cfp-%03d"]`, b) }
		done := make([]int, boards) // changes made per board
		var halfway, behind reader
		events := 0
		// Push p changes boards of one half twice each: 20 pushes of 100
		// events, 20 changes per board.
		for p := 0; p < changes; p++ {
			var batch []map[string]any
			half := p % 2
			for twice := 0; twice < 2; twice++ {
				for j := 0; j < boards/2; j++ {
					b := half*boards/2 + j
					op := "update"
					if done[b] == 0 {
						op = "create"
					}
					batch = append(batch, ev("", "Board", op, board(fmt.Sprintf("cfp-%03d", b), sub, name(b, done[b]))))
					done[b]++
				}
			}
			ok(t, e.push(t, "acme", sub, batch...))
			events += len(batch)
			behind.page(t, e, sub, 13)
			if p == 9 {
				halfway.drain(t, e, sub, 50)
				if halfway.entries != 1+boards {
					t.Errorf("halfway through, a reader pulled %d entries, want %d", halfway.entries, 1+boards)
				}
			}
		}
		if events != boards*changes {
			t.Fatalf("%d events, want %d", events, boards*changes)
		}
		var fresh reader
		fresh.drain(t, e, sub, 50)
		t.Logf("%d records changed %d times each (%d events): a new device pulls %d entries", boards, changes, events, fresh.entries)
		if fresh.entries != 1+boards {
			t.Errorf("a new device pulled %d entries, want %d (the user and each board's latest)", fresh.entries, 1+boards)
		}
		halfway.drain(t, e, sub, 50)
		behind.drain(t, e, sub, 13)
		for who, r := range map[string]*reader{"new device": &fresh, "halfway reader": &halfway, "lagging reader": &behind} {
			if len(r.state) != boards {
				t.Errorf("%s knows %d boards, want %d", who, len(r.state), boards)
			}
			for b := 0; b < boards; b++ {
				if got, want := r.state[key(b)], name(b, changes-1); got != want {
					t.Errorf("%s: board %d is %q, want %q", who, b, got, want)
					break
				}
			}
		}
	})
}

// TestReplaySupersededEvent: an event whose entry a later event of its
// record superseded, sent again, answers its original changelog id and
// writes nothing: no entry, and the record keeps the later state.
func TestReplaySupersededEvent(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		const sub = "rse"
		ok(t, e.push(t, "acme", sub, ev("", "User", "create", user(sub))))
		first := ev("rse-e1", "Board", "create", board("rse-b", sub, "first"))
		r1 := e.push(t, "acme", sub, first)
		ok(t, r1)
		ok(t, e.push(t, "acme", sub, ev("rse-e2", "Board", "update", board("rse-b", sub, "second"))))
		before := e.pullAll(t, "acme", sub)
		if len(before) != 2 || before[1].OutboxEventID != "rse-e2" {
			t.Fatalf("entries %+v, want the user's and the board's latest (rse-e2)", before)
		}
		again := e.push(t, "acme", sub, first)
		ok(t, again)
		if *again[0].AppliedChangelogID != *r1[0].AppliedChangelogID {
			t.Errorf("replay answers %s, want the original %s", *again[0].AppliedChangelogID, *r1[0].AppliedChangelogID)
		}
		after := e.pullAll(t, "acme", sub)
		if len(after) != 2 || after[1].ID != before[1].ID || recordOf(t, after[1])["name"] != "second" {
			t.Errorf("after the replay: %+v, want the same two entries and the board named second", after)
		}
	})
}

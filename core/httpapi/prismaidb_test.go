package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// The failures a prisma-idb app met in ordinary use, one regression test
// each, over HTTP (the browser test in sdk/typescript/e2e drives the
// real generated client through the same cases).

// TestCascadeDeleteInAnyOrder: deleting a board makes the client send the
// board's delete and each todo's in one batch, ordered by a millisecond
// timestamp with random ties. Every order applies, and every todo gets its
// delete entry even when the board's cascade already removed its row.
func TestCascadeDeleteInAnyOrder(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		for name, boardFirst := range map[string]bool{"board-first": true, "todos-first": false} {
			t.Run("order="+name, func(t *testing.T) {
				t.Parallel()
				sub := "cd-" + name
				b := board(sub+"-b", sub, "doomed")
				events := []map[string]any{ev("", "User", "create", user(sub)), ev("", "Board", "create", b)}
				var deletes []map[string]any
				for i := range 3 {
					td := todo(fmt.Sprintf("%s-t%d", sub, i), sub+"-b", "todo")
					events = append(events, ev("", "Todo", "create", td))
					deletes = append(deletes, ev("", "Todo", "delete", td))
				}
				ok(t, e.push(t, "acme", sub, events...))
				batch := append([]map[string]any{ev("", "Board", "delete", b)}, deletes...)
				if !boardFirst {
					batch = append(deletes, ev("", "Board", "delete", b))
				}
				ok(t, e.push(t, "acme", sub, batch...))
				live := map[string]bool{}
				for _, l := range e.pullAll(t, "acme", sub) {
					live[l.Model+string(l.KeyPath)] = l.Operation != "delete"
					if l.Operation == "delete" && string(l.Record) != "null" {
						t.Errorf("delete entry of %s %s carries a record: %s", l.Model, l.KeyPath, l.Record)
					}
				}
				for k, alive := range live {
					if alive && k != `User["`+sub+`"]` {
						t.Errorf("%s is still alive after the cascade delete", k)
					}
				}
				if len(live) != 5 {
					t.Errorf("%d records in the changelog, want 5 (user, board, 3 todos)", len(live))
				}
			})
		}
	})
}

// TestChildrenBeforeParents: a board and its todos created in the same
// millisecond may reach the server todos first; the batch applies them in
// dependency order, in one round.
func TestChildrenBeforeParents(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		res := e.push(t, "acme", "cbp",
			ev("", "Todo", "create", todo("cbp-t1", "cbp-b", "first")),
			ev("", "Todo", "update", todo("cbp-t1", "cbp-b", "first, renamed")),
			ev("", "Board", "create", board("cbp-b", "cbp", "b")),
			ev("", "Todo", "create", todo("cbp-t2", "cbp-b", "second")),
			ev("", "User", "create", user("cbp")),
		)
		ok(t, res)
		logs := e.pullAll(t, "acme", "cbp")
		pos := map[string]int{}
		for i, l := range logs {
			pos[l.Model+":"+l.Operation+string(l.KeyPath)] = i
		}
		for _, c := range [][2]string{
			{`User:create["cbp"]`, `Board:create["cbp-b"]`},
			{`Board:create["cbp-b"]`, `Todo:create["cbp-t1"]`},
			{`Todo:create["cbp-t1"]`, `Todo:update["cbp-t1"]`},
			{`Board:create["cbp-b"]`, `Todo:create["cbp-t2"]`},
		} {
			a, aok := pos[c[0]]
			b, bok := pos[c[1]]
			if !aok || !bok || a >= b {
				t.Errorf("entry %s (at %d) must come before %s (at %d)", c[0], a, c[1], b)
			}
		}
		if got := recordOf(t, logs[len(logs)-1]); logs[len(logs)-1].Model == "Todo" && got["title"] == "first" {
			t.Errorf("the update was overtaken by its create: %v", got)
		}
	})
}

// TestMissingParentRetryability: MISSING_PARENT is retryable only while the
// parent has never existed. A todo added offline to a board another device
// deleted can never succeed; a client told "retryable" would stop pulling
// for ever.
func TestMissingParentRetryability(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		ok(t, e.push(t, "acme", "mp", ev("", "User", "create", user("mp")), ev("", "Board", "create", board("mp-b", "mp", "b"))))
		// Device A deletes the board.
		ok(t, e.push(t, "acme", "mp", ev("", "Board", "delete", board("mp-b", "mp", "b"))))
		cases := []struct {
			name      string
			events    []map[string]any
			at        int
			retryable bool
		}{
			{"parent-deleted-by-another-device", []map[string]any{ev("", "Todo", "create", todo("mp-t1", "mp-b", "offline"))}, 0, false},
			{"update-into-deleted-parent", []map[string]any{ev("", "Todo", "update", todo("mp-t2", "mp-b", "offline"))}, 0, false},
			{"parent-never-existed", []map[string]any{ev("", "Todo", "create", todo("mp-t3", "mp-nowhere", "early"))}, 0, true},
			{"parent-deleted-in-batch", []map[string]any{
				ev("", "Board", "create", board("mp-b2", "mp", "b2")),
				ev("", "Board", "delete", board("mp-b2", "mp", "b2")),
				ev("", "Todo", "create", todo("mp-t4", "mp-b2", "late")),
			}, 2, false},
			{"parent-deleted-in-batch-child-first", []map[string]any{
				ev("", "Todo", "create", todo("mp-t5", "mp-b3", "early")),
				ev("", "Board", "create", board("mp-b3", "mp", "b3")),
				ev("", "Board", "delete", board("mp-b3", "mp", "b3")),
			}, 0, false},
		}
		for _, c := range cases {
			t.Run("case="+c.name, func(t *testing.T) {
				res := e.push(t, "acme", "mp", c.events...)
				r := res[c.at]
				if errType(r) != push.MissingParent || r.Error.Retryable != c.retryable {
					t.Fatalf("result %+v, want MISSING_PARENT with retryable=%t", r.Error, c.retryable)
				}
				for i, o := range res {
					if i != c.at && o.Error != nil {
						t.Errorf("event %d: %+v", i, o.Error)
					}
				}
			})
		}
		// A device that got the permanent error keeps pulling and learns
		// that the board is gone; nothing of the refused todos was written.
		last := map[string]string{}
		for _, l := range e.pullAll(t, "acme", "mp") {
			last[l.Model+string(l.KeyPath)] = l.Operation
		}
		if last[`Board["mp-b"]`] != "delete" {
			t.Errorf("board mp-b's last entry is %q, want delete", last[`Board["mp-b"]`])
		}
		for _, k := range []string{`Todo["mp-t1"]`, `Todo["mp-t2"]`, `Todo["mp-t4"]`, `Todo["mp-t5"]`} {
			if op, ok := last[k]; ok {
				t.Errorf("%s was refused but has a %s entry", k, op)
			}
		}
	})
}

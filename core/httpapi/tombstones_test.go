package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/storetest"
)

// auditEnv is an env with one tenant, "audit", that drops tombstones after
// an hour and keeps its full history.
func auditEnv(t *testing.T, db storetest.DB) *env {
	t.Helper()
	e := &env{t: t, db: db, dir: t.TempDir(), data: t.TempDir()}
	e.dbURL = db.URL(t)
	writeTenant(t, e.dir, "audit", "tombstoneRetention: 1h\nchangelog: history\n")
	e.url = e.start(t)
	return e
}

// TestTombstoneRetention: once the tenant's expired tombstones are dropped,
// a pull whose cursor stands behind one of them is answered 410 with a
// clear error (one scope or the union of the subject's scopes), while a
// cursor past them and an empty cursor go on; a fresh pull reads the live
// records and no tombstone.
func TestTombstoneRetention(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := auditEnv(t, db)
		ok(t, e.push(t, "audit", "u1", ev("", "User", "create", user("u1")), ev("", "Board", "create", board("b1", "u1", "B")),
			ev("", "Todo", "create", todo("t1", "b1", "one")), ev("", "Todo", "create", todo("t2", "b1", "two")),
			ev("", "Todo", "create", todo("t3", "b1", "three"))))
		stale := e.pull(t, "audit", "u1", map[string]any{"scopeKey": "u1"}).Cursor
		if stale == nil || !strings.HasPrefix(*stale, "c1.") {
			t.Fatalf("a scopeKey pull's cursor in a tenant that drops tombstones: %v, want a c1. cursor carrying the reader's start", stale)
		}
		staleUnion := e.pull(t, "audit", "u1", map[string]any{}).Cursor
		ok(t, e.push(t, "audit", "u1", ev("", "Todo", "delete", todo("t1", "b1", "one")), ev("", "Todo", "delete", todo("t2", "b1", "two"))))
		caughtUp := e.pullAll(t, "audit", "u1")
		end := caughtUp[len(caughtUp)-1].ID

		n, err := e.reg.Get("audit").Store.DropTombstones(t.Context(), time.Now().Add(time.Hour), 100)
		if err != nil || n != 2 {
			t.Fatalf("DropTombstones = %d, %v; want the 2 deletes", n, err)
		}
		for name, req := range map[string]map[string]any{
			"scope": {"scopeKey": "u1", "lastChangelogId": *stale},
			"union": {"lastChangelogId": *staleUnion},
			// A changelog id says nothing of when its reader began.
			"plain id": {"lastChangelogId": caughtUp[2].ID},
		} {
			code, body, _ := post(t, e.url+"/v1/tenants/audit/pull", token(t, "audit", "u1"), req)
			var got struct{ Error string }
			_ = json.Unmarshal(body, &got)
			if code != http.StatusGone || !strings.Contains(got.Error, "tombstoneRetention") || !strings.Contains(got.Error, "empty cursor") {
				t.Errorf("%s: a cursor behind dropped tombstones: %d %s; want 410 naming tombstoneRetention and the empty cursor", name, code, body)
			}
		}
		if page := e.pull(t, "audit", "u1", map[string]any{"lastChangelogId": end}); len(page.LogsWithRecords) != 0 {
			t.Errorf("a cursor past the dropped tombstones reads %d entries, want none", len(page.LogsWithRecords))
		}
		// A device's first sync after the drop, one entry a page: its
		// cursors stand behind the dropped tombstones, and it is never
		// answered 410 (its cursors say it began after they were written).
		var fresh []pull.LogWithRecord
		for req := (map[string]any{"limit": 1}); ; {
			page := e.pull(t, "audit", "u1", req)
			if len(page.LogsWithRecords) == 0 {
				break
			}
			fresh = append(fresh, page.LogsWithRecords...)
			req = map[string]any{"limit": 1, "lastChangelogId": *page.Cursor}
		}
		var keys []string
		for _, l := range fresh {
			if l.Operation == "delete" {
				t.Errorf("a fresh pull reads tombstone %s %s", l.Model, l.KeyPath)
			}
			keys = append(keys, l.Model+string(l.KeyPath))
		}
		if want := []string{`User["u1"]`, `Board["b1"]`, `Todo["t3"]`}; strings.Join(keys, " ") != strings.Join(want, " ") {
			t.Errorf("a fresh pull reads %v, want %v", keys, want)
		}
	})
}

// TestHistory: a tenant with changelog: history keeps every entry push
// allocated, superseded ones included (within a batch and across
// batches), with the subject and the record as written, while the sync
// changelog stays compacted.
func TestHistory(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := auditEnv(t, db)
		ok(t, e.push(t, "audit", "u1", ev("e1", "User", "create", user("u1")), ev("e2", "Board", "create", board("b1", "u1", "B")),
			ev("e3", "Todo", "create", todo("t1", "b1", "first")), ev("e4", "Todo", "update", todo("t1", "b1", "second"))))
		ok(t, e.push(t, "audit", "u1", ev("e5", "Todo", "update", todo("t1", "b1", "third"))))
		ok(t, e.push(t, "audit", "u1", ev("e6", "Todo", "delete", todo("t1", "b1", "third"))))

		rows, err := e.reg.Get("audit").Store.History(t.Context(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			title := ""
			if r.Record != nil {
				var rec map[string]any
				must(t, json.Unmarshal(r.Record, &rec))
				title, _ = rec["title"].(string)
			}
			got = append(got, strings.Join([]string{r.Subject, r.OutboxEventID, r.Model, string(r.Operation), r.ScopeKey, title}, " "))
		}
		want := []string{"u1 e1 User create u1 ", "u1 e2 Board create u1 ", "u1 e3 Todo create u1 first",
			"u1 e4 Todo update u1 second", "u1 e5 Todo update u1 third", "u1 e6 Todo delete u1 "}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if rows[5].Record != nil {
			t.Errorf("a delete's history row has record %s, want null", rows[5].Record)
		}
		var todos int
		for _, l := range e.pullAll(t, "audit", "u1") {
			if l.Model == "Todo" {
				todos++
				if l.Operation != "delete" || l.OutboxEventID != "e6" {
					t.Errorf("the sync changelog holds %s %s from %s, want only the delete e6", l.Operation, l.KeyPath, l.OutboxEventID)
				}
			}
		}
		if todos != 1 {
			t.Errorf("the sync changelog holds %d entries of the todo, want 1", todos)
		}
	})
}

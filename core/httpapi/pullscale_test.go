package httpapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"github.com/google/go-cmp/cmp"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// Regression tests of issue 9's findings 1 (pull pages bounded only by
// count) and 5 (union pull with many scopes), over HTTP on every database.

// betaServer runs a server of the "beta" tenant (kanban schema) with the
// manifest's extra lines, and returns its URL.
func betaServer(t testing.TB, db storetest.DB, extra string) string {
	t.Helper()
	root := t.TempDir()
	writeTenant(t, root, "beta", extra)
	st := db.Open(t)
	reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: quietLog()})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srv := httptest.NewServer(httpapi.New(reg, quietLog()))
	t.Cleanup(srv.Close)
	return srv.URL
}

// pullPage pulls one page and returns it with the size of the body.
func pullPage(t testing.TB, url, tenantID, tok string, req map[string]any) (pull.Response, int) {
	t.Helper()
	code, body, _ := post(t, url+"/v1/tenants/"+tenantID+"/pull", tok, req)
	if code != http.StatusOK {
		t.Fatalf("pull %v: status %d: %.300s", req, code, body)
	}
	var page pull.Response
	must(t, jsonUnmarshal(body, &page))
	return page, len(body)
}

// TestPullPageBytes is finding 1: 499 small updates to one board, then one
// update that gives it a 900 KB name. Each entry carries the board as it
// is now, so a page of 500 entries was 428 MiB. The changelog now keeps
// one entry per record and scope, so that board is one entry; eleven more
// boards with 900 KB names make a stream of 13 entries of about 10 MB. A
// page stops at pullPageBytes (4 MiB by default) and the reader following
// the cursor gets every entry exactly once, each with its board's current
// state.
func TestPullPageBytes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		url := betaServer(t, db, "")
		const sub = "big-name"
		tok := token(t, "beta", sub)
		ok(t, pushTo(t, url, "beta", sub, ev("", "User", "create", user(sub)), ev("", "Board", "create", board("bn", sub, "small"))))
		for i := 0; i < 498; i += 100 {
			var events []map[string]any
			for j := i; j < min(i+100, 498); j++ {
				events = append(events, ev("", "Board", "update", board("bn", sub, fmt.Sprintf("small %d", j))))
			}
			ok(t, pushTo(t, url, "beta", sub, events...))
		}
		huge := strings.Repeat("n", 900_000)
		for i := 0; i < 11; i++ {
			ok(t, pushTo(t, url, "beta", sub, ev("", "Board", "create", board(fmt.Sprintf("bn-%02d", i), sub, huge))))
		}
		ok(t, pushTo(t, url, "beta", sub, ev("", "Board", "update", board("bn", sub, huge))))

		var order, keys []string
		req := map[string]any{"limit": 500, "scopeKey": sub}
		for pages := 1; ; pages++ {
			page, size := pullPage(t, url, "beta", tok, req)
			if size > pull.DefaultPageBytes {
				t.Fatalf("page %d: %d entries in %d bytes (budget %d)", pages, len(page.LogsWithRecords), size, pull.DefaultPageBytes)
			}
			if len(page.LogsWithRecords) == 0 {
				break
			}
			if pages > 20 {
				t.Fatal("more than 20 pages for 13 entries")
			}
			for _, l := range page.LogsWithRecords {
				order = append(order, l.ID)
				keys = append(keys, string(l.KeyPath))
				if l.Model == "Board" && (len(l.Record) < 900_000 || !strings.Contains(string(l.Record), `"name":"nnnnnnnn`)) {
					t.Fatalf("entry %s carries %.60s…, want the board's current state", l.ID, l.Record)
				}
			}
			if last := page.LogsWithRecords[len(page.LogsWithRecords)-1].ID; *page.Cursor != last {
				t.Fatalf("page %d: cursor %s, want its last entry %s", pages, *page.Cursor, last)
			}
			req = map[string]any{"limit": 500, "scopeKey": sub, "lastChangelogId": *page.Cursor}
		}
		for i := 1; i < len(order); i++ {
			if order[i] <= order[i-1] {
				t.Fatalf("entry %s after %s", order[i], order[i-1])
			}
		}
		want := []string{`["big-name"]`}
		for i := 0; i < 11; i++ {
			want = append(want, fmt.Sprintf(`["bn-%02d"]`, i))
		}
		want = append(want, `["bn"]`)
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("entries (-want +got):\n%s", diff)
		}
	})
}

// TestPullPageBytesManifest: the tenant's limits.pullPageBytes bounds pages
// of distinct records, and an entry larger than the budget still comes, alone.
func TestPullPageBytesManifest(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		const budget = 64 << 10
		url := betaServer(t, db, fmt.Sprintf("limits:\n  pullPageBytes: %d\n", budget))
		const sub = "budgeted"
		tok := token(t, "beta", sub)
		events := []map[string]any{ev("", "User", "create", user(sub))}
		for i := 0; i < 40; i++ {
			events = append(events, ev("", "Board", "create", board(fmt.Sprintf("bb-%02d", i), sub, strings.Repeat(string(rune('a'+i%26)), 10_000))))
		}
		events = append(events, ev("", "Board", "create", board("bb-huge", sub, strings.Repeat("h", 200_000))))
		events = append(events, ev("", "Board", "create", board("bb-last", sub, "last")))
		ok(t, pushTo(t, url, "beta", sub, events...))

		var got []string
		req := map[string]any{"limit": 500}
		for {
			page, size := pullPage(t, url, "beta", tok, req)
			n := len(page.LogsWithRecords)
			if n == 0 {
				break
			}
			if n > 1 && size > budget {
				t.Errorf("a page of %d entries takes %d bytes, over the %d-byte budget", n, size, budget)
			}
			for _, l := range page.LogsWithRecords {
				if l.Model == "Board" {
					if l.KeyPath == nil || string(l.Record) == "null" {
						t.Fatalf("board entry %s without its record", l.KeyPath)
					}
					if string(l.KeyPath) == `["bb-huge"]` && n != 1 {
						t.Errorf("the 200 KB board shares a page with %d other entries", n-1)
					}
				}
				got = append(got, string(l.KeyPath))
			}
			req = map[string]any{"limit": 500, "lastChangelogId": *page.Cursor}
		}
		if len(got) != len(events) || got[len(got)-2] != `["bb-huge"]` || got[len(got)-1] != `["bb-last"]` {
			t.Errorf("the reader got %d entries (last %v), want %d ending with bb-huge and bb-last", len(got), got[max(0, len(got)-2):], len(events))
		}
	})
}

// manyTeams creates n teams fan-00000… (and a project in each) as fanwriter,
// the owner of every fan-* team, and returns the team ids.
func manyTeams(t testing.TB, e *teamsEnv, n int) []string {
	t.Helper()
	tok := teamsToken(t, "fanwriter", nil)
	teams := make([]string, n)
	for i := 0; i < n; i += 50 {
		var events []map[string]any
		for j := i; j < min(i+50, n); j++ {
			teams[j] = fmt.Sprintf("fan-%05d", j)
			events = append(events, ev("", "Team", "create", team(teams[j])), ev("", "Project", "create", project("fp-"+teams[j], teams[j])))
		}
		ok(t, e.push(t, tok, events...))
	}
	return teams
}

// TestUnionPullManyScopes is finding 5: a subject who may pull 600 scopes
// (more than SQLite's 500 terms of a compound SELECT, which made every
// union pull a 500) pulls all of them through one cursor that stays small
// (it grew by about 69 bytes per scope, past the body limit at ~15,000), and
// an old-style cursor (a position per scope) still works.
func TestUnionPullManyScopes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newTeamsEnv(t, db)
		teams := manyTeams(t, e, 600)
		fan := teamsToken(t, "fan", nil) // viewer of every fan-* team
		seen := map[string]int{}
		scopes := map[string]bool{}
		maxCursor := 0
		var cursor string
		req := map[string]any{"limit": 100}
		for {
			page, _ := pullPage(t, e.url, "teams", fan, req)
			if len(page.LogsWithRecords) == 0 {
				if page.Cursor == nil || *page.Cursor != cursor {
					t.Errorf("an empty page answers cursor %v, want the request's", page.Cursor)
				}
				break
			}
			for _, l := range page.LogsWithRecords {
				seen[l.ID]++
				scopes[l.ScopeKey] = true
			}
			cursor = *page.Cursor
			maxCursor = max(maxCursor, len(cursor))
			req = map[string]any{"limit": 100, "lastChangelogId": cursor}
		}
		if len(seen) != 2*len(teams) || len(scopes) != len(teams) {
			t.Fatalf("the reader saw %d entries in %d scopes, want %d in %d", len(seen), len(scopes), 2*len(teams), len(teams))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("entry %s seen %d times", id, n)
			}
		}
		if maxCursor > 4096 {
			t.Errorf("the cursor grew to %d bytes for %d scopes", maxCursor, len(teams))
		}
		if !strings.HasPrefix(cursor, "c2.") {
			t.Errorf("cursor of %d positions: %.40s…, want stored positions (c2.)", len(teams), cursor)
		}

		// New entries in a few scopes come once, through the small cursor.
		ok(t, e.push(t, teamsToken(t, "fanwriter", nil), ev("", "Task", "create", task("ft-1", "fp-fan-00003")), ev("", "Task", "create", task("ft-2", "fp-fan-00597"))))
		more, _ := pullAllFrom(t, e.url, fan, map[string]any{"lastChangelogId": cursor})
		if len(more) != 2 || more[0].ScopeKey != "fan-00003" || more[1].ScopeKey != "fan-00597" {
			t.Errorf("after two new tasks: %d entries %+v", len(more), more)
		}

		// A cursor of the old shape (c1., every position inline) still reads
		// from where it stands: here a plain changelog id, which old clients
		// and single-scope pulls send, stands for every scope.
		plain := more[0].ID
		again, _ := pullAllFrom(t, e.url, fan, map[string]any{"lastChangelogId": plain})
		if len(again) != 1 || again[0].ID != more[1].ID {
			t.Errorf("from a plain id: %+v, want the one later task", again)
		}

		// A cursor naming positions the server does not hold is a 400 that
		// says what to do, not a 500.
		bogus := "c2." + base64.RawURLEncoding.EncodeToString([]byte(`{"b":"`+strings.Repeat("0", 64)+`","d":{}}`))
		code, body, _ := post(t, e.url+"/v1/tenants/teams/pull", fan, map[string]any{"lastChangelogId": bogus})
		if code != http.StatusBadRequest || !strings.Contains(string(body), "from the beginning") {
			t.Errorf("unknown stored positions: %d %s", code, body)
		}
	})
}

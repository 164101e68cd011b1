package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/pull"
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
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
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
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
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
		// The changelog keeps a record's latest entry: cbp-t1 is one entry,
		// its update, after its board; its create went (and its event's id
		// comes before the update's).
		if len(logs) != 4 {
			t.Errorf("%d entries, want 4 (user, board, the todos' latest)", len(logs))
		}
		if _, ok := pos[`Todo:create["cbp-t1"]`]; ok {
			t.Errorf("cbp-t1's create is still in the changelog after its update")
		}
		if *res[0].AppliedChangelogID >= *res[1].AppliedChangelogID {
			t.Errorf("cbp-t1's create answers %s, not before its update's %s", *res[0].AppliedChangelogID, *res[1].AppliedChangelogID)
		}
		for _, c := range [][2]string{
			{`User:create["cbp"]`, `Board:create["cbp-b"]`},
			{`Board:create["cbp-b"]`, `Todo:update["cbp-t1"]`},
			{`Board:create["cbp-b"]`, `Todo:create["cbp-t2"]`},
		} {
			a, aok := pos[c[0]]
			b, bok := pos[c[1]]
			if !aok || !bok || a >= b {
				t.Errorf("entry %s (at %d) must come before %s (at %d)", c[0], a, c[1], b)
			}
		}
		if i, ok := pos[`Todo:update["cbp-t1"]`]; ok && recordOf(t, logs[i])["title"] != "first, renamed" {
			t.Errorf("the update was overtaken by its create: %v", recordOf(t, logs[i]))
		}
	})
}

// TestMissingParentRetryability: MISSING_PARENT is retryable only while the
// parent has never existed. A todo added offline to a board another device
// deleted can never succeed; a client told "retryable" would stop pulling
// for ever.
func TestMissingParentRetryability(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
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
			{"own-user-not-yet-there", []map[string]any{ev("", "Board", "create", board("mp-b9", "mp-late", "b"))}, 0, true},
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
		// A board for a user the subject is not: whether or not that user
		// ever comes, the subject may not write there.
		if res := e.push(t, "acme", "mp", ev("", "Board", "create", board("mp-b8", "mp-stranger", "b"))); errType(res[0]) != push.ScopeViolation || res[0].Error.Retryable {
			t.Errorf("board of another, missing user: %+v, want a final SCOPE_VIOLATION", res[0].Error)
		}
		for _, c := range cases {
			t.Run("case="+c.name, func(t *testing.T) {
				sub := "mp"
				if c.name == "own-user-not-yet-there" {
					sub = "mp-late"
				}
				res := e.push(t, "acme", sub, c.events...)
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

// TestRootFromToken: in the prisma-idb example the app's auth library
// creates the User on its own server, and the client inserts its local
// User without an outbox event. With rootFromToken, syncplane creates the
// subject's root from its verified token at its first push or pull, so
// its boards find their user and its device pulls the user.
func TestRootFromToken(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		signed := func(sub string, claims map[string]any) string {
			tok, err := auth.SignHS256([]byte(secrets["signin"]), auth.SignClaims{Subject: sub, Issuer: "https://signin.example",
				Audience: "syncplane", TTL: time.Hour, Extra: claims})
			must(t, err)
			return tok
		}
		pushWith := func(tok string, events ...map[string]any) (int, []push.Result) {
			code, body, _ := post(t, e.url+"/v1/tenants/signin/push", tok, map[string]any{"events": events})
			var res []push.Result
			if code == http.StatusOK {
				must(t, json.Unmarshal(body, &res))
			}
			return code, res
		}
		t.Run("case=first-push-creates-the-user", func(t *testing.T) {
			tok := signed("ada", map[string]any{"email": "ada@example.com", "name": "Ada"})
			code, res := pushWith(tok, ev("", "Board", "create", board("ada-b", "ada", "first board")))
			if code != http.StatusOK {
				t.Fatalf("push: status %d", code)
			}
			ok(t, res)
			code, body, _ := post(t, e.url+"/v1/tenants/signin/pull", tok, map[string]any{"scopeKey": "ada"})
			if code != http.StatusOK {
				t.Fatalf("pull: %d %s", code, body)
			}
			var page pull.Response
			must(t, json.Unmarshal(body, &page))
			if len(page.LogsWithRecords) != 2 || page.LogsWithRecords[0].Model != "User" {
				t.Fatalf("pull: %+v, want the user, then the board", page.LogsWithRecords)
			}
			u := recordOf(t, page.LogsWithRecords[0])
			if u["id"] != "ada" || u["email"] != "ada@example.com" || u["name"] != "Ada" || u["emailVerified"] != false || u["image"] != nil {
				t.Errorf("user from the token: %v", u)
			}
		})
		t.Run("case=first-pull-creates-the-user", func(t *testing.T) {
			tok := signed("bob", map[string]any{"email": "bob@example.com", "name": "Bob"})
			code, body, _ := post(t, e.url+"/v1/tenants/signin/pull", tok, map[string]any{})
			if code != http.StatusOK {
				t.Fatalf("pull: %d %s", code, body)
			}
			var page pull.Response
			must(t, json.Unmarshal(body, &page))
			if len(page.LogsWithRecords) != 1 || recordOf(t, page.LogsWithRecords[0])["email"] != "bob@example.com" {
				t.Fatalf("pull: %+v, want bob's user", page.LogsWithRecords)
			}
			// Later requests, with changed claims, change nothing.
			tok = signed("bob", map[string]any{"email": "robert@example.com", "name": "Robert"})
			code, body, _ = post(t, e.url+"/v1/tenants/signin/pull", tok, map[string]any{"lastChangelogId": *page.Cursor})
			if code != http.StatusOK || !strings.Contains(string(body), `"logsWithRecords":[]`) {
				t.Errorf("second pull: %d %s, want an empty page", code, body)
			}
		})
		t.Run("case=client-pushes-its-user-too", func(t *testing.T) {
			tok := signed("cy", map[string]any{"email": "cy@example.com", "name": "Cy"})
			u := user("cy")
			u["name"] = "Cy from the device"
			code, res := pushWith(tok, ev("", "User", "create", u), ev("", "Board", "create", board("cy-b", "cy", "b")))
			if code != http.StatusOK {
				t.Fatalf("push: status %d", code)
			}
			ok(t, res)
			var last map[string]any
			for _, l := range pullAllWith(t, e.url, "signin", tok) {
				if l.Model == "User" {
					last = recordOf(t, l)
				}
			}
			if last["name"] != "Cy from the device" {
				t.Errorf("user after the device's push: %v, want the device's values", last)
			}
		})
		t.Run("case=token-without-a-required-claim", func(t *testing.T) {
			// No email: no user is made, the request goes on as without
			// rootFromToken, and the client may push its user itself.
			tok := signed("dee", map[string]any{"name": "Dee"})
			code, res := pushWith(tok, ev("", "Board", "create", board("dee-b", "dee", "b")))
			if code != http.StatusOK || errType(res[0]) != push.MissingParent || !res[0].Error.Retryable {
				t.Fatalf("push: %d %+v, want 200 with a retryable MISSING_PARENT", code, res)
			}
			code, res = pushWith(tok, ev("", "User", "create", user("dee")), ev("", "Board", "create", board("dee-b", "dee", "b")))
			if code != http.StatusOK {
				t.Fatalf("push: status %d", code)
			}
			ok(t, res)
		})
		t.Run("case=tenant-without-rootFromToken", func(t *testing.T) {
			res := e.push(t, "acme", "eve", ev("", "Board", "create", board("eve-b", "eve", "b")))
			if errType(res[0]) != push.MissingParent || !res[0].Error.Retryable {
				t.Errorf("board of a user nobody created: %+v, want a retryable MISSING_PARENT", res[0].Error)
			}
		})
	})
}

// TestCORS: a browser page on an origin the tenant lists may call its
// routes; other origins, and tenants that list none, get no CORS headers.
func TestCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.DB{Name: "sqlite"})
	preflight := func(path, origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, e.url+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Errorf("preflight %s from %s: status %d", path, origin, resp.StatusCode)
		}
		return resp.Header
	}
	h := preflight("/v1/tenants/signin/push", "https://app.example")
	if h.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("allowed origin's preflight: %v", h)
	}
	for _, c := range [][2]string{{"/v1/tenants/signin/push", "https://evil.example"}, {"/v1/tenants/acme/push", "https://app.example"}, {"/v1/tenants/nope/push", "https://app.example"}} {
		if got := preflight(c[0], c[1]).Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s from %s: Access-Control-Allow-Origin %q, want none", c[0], c[1], got)
		}
	}
	// The request itself carries the header, also on errors the page must read.
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/tenants/signin/pull", strings.NewReader("{}"))
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("unauthenticated pull from an allowed origin: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestServiceSubjectCreatesRoots: an app's backend creates users through
// a service subject that policies/examples/service.csv allows to write the
// root model in every scope; the user's device then pulls its User, and
// the service subject can touch nothing else.
func TestServiceSubjectCreatesRoots(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		dir := filepath.Join(e.dir, "svc")
		writeTenant(t, e.dir, "svc", "policy: policy.csv\n")
		src, err := os.ReadFile("../../policies/examples/service.csv")
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "policy.csv"), src, 0o644))
		url := e.start(t)
		res := pushTo(t, url, "svc", "svc:auth", ev("", "User", "create", user("zed")))
		ok(t, res)
		res = pushTo(t, url, "svc", "svc:auth", ev("", "Board", "create", board("zed-b", "zed", "not the service's")))
		if errType(res[0]) != push.ScopeViolation {
			t.Errorf("service subject creating a board: %+v, want SCOPE_VIOLATION", res[0].Error)
		}
		ok(t, pushTo(t, url, "svc", "zed", ev("", "Board", "create", board("zed-b", "zed", "zed's"))))
		page := pullFrom(t, url, "svc", "zed", map[string]any{})
		if len(page.LogsWithRecords) != 2 || page.LogsWithRecords[0].Model != "User" || recordOf(t, page.LogsWithRecords[0])["id"] != "zed" {
			t.Errorf("zed's pull: %+v, want its user, then its board", page.LogsWithRecords)
		}
	})
}

// TestAppSchemaFolderAsIs: the kanban example keeps its schema as a folder
// with a subfolder, states rootModel and exclude in its prisma-idb
// generator block, and carries the Changelog model and ChangeOperation
// enum the generator requires (plus an auth library's Session, Account and
// Verification, excluded). A tenant whose manifest names only that folder
// loads and syncs; the bookkeeping and excluded models are not synced.
func TestAppSchemaFolderAsIs(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		dir := filepath.Join(e.dir, "pidb")
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.CopyFS(filepath.Join(dir, "prisma"), os.DirFS("../schema/testdata/pidb-kanban")))
		must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte(secrets["pidb"]+"\n"), 0o600))
		must(t, os.WriteFile(filepath.Join(dir, "tenant.yaml"), []byte("id: pidb\nschema: prisma\nauth:\n  hs256SecretFile: secret\n  issuer: https://pidb.example\n  audience: syncplane\n"), 0o644))
		url := e.start(t)
		ok(t, pushTo(t, url, "pidb", "ann", ev("", "User", "create", user("ann")), ev("", "Board", "create", board("ann-b", "ann", "b")),
			ev("", "Todo", "create", todo("ann-t", "ann-b", "t"))))
		for _, m := range []string{"Changelog", "Session", "Account", "Verification"} {
			res := pushTo(t, url, "pidb", "ann", ev("", m, "create", map[string]any{"id": "x"}))
			if errType(res[0]) != push.InvalidModel {
				t.Errorf("push of a %s: %+v, want INVALID_MODEL", m, res[0].Error)
			}
		}
		if n := len(pullFrom(t, url, "pidb", "ann", map[string]any{}).LogsWithRecords); n != 3 {
			t.Errorf("pull: %d entries, want 3", n)
		}
	})
}

// TestNULIsRefusedForGood: a NUL character is input the server can judge
// (no column of PostgreSQL or SQLite takes it), never a retryable
// UNKNOWN_ERROR that would keep a prisma-idb client from pulling.
func TestNULIsRefusedForGood(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		ok(t, e.push(t, "acme", "nul", ev("", "User", "create", user("nul")), ev("", "Board", "create", board("nul-b", "nul", "b"))))
		cases := map[string]struct {
			event map[string]any
			want  string // error type, or "400" for a refused body
		}{
			"title":    {ev("", "Todo", "create", todo("nul-t1", "nul-b", "a\x00b")), push.RecordValidationFailure},
			"key":      {ev("", "Todo", "create", todo("nul-\x00", "nul-b", "t")), push.KeyPathValidation},
			"delete":   {ev("", "Todo", "delete", map[string]any{"id": "nul-\x00"}), push.KeyPathValidation},
			"event-id": {ev("nul-evt-\x00", "Todo", "create", todo("nul-t2", "nul-b", "t")), "400"},
		}
		for name, c := range cases {
			t.Run("field="+name, func(t *testing.T) {
				code, body, _ := post(t, e.url+"/v1/tenants/acme/push", token(t, "acme", "nul"), map[string]any{"events": []any{c.event}})
				if c.want == "400" {
					if code != http.StatusBadRequest {
						t.Errorf("push: %d %s, want 400", code, body)
					}
					return
				}
				var res []push.Result
				if code != http.StatusOK || json.Unmarshal(body, &res) != nil || len(res) != 1 {
					t.Fatalf("push: %d %s", code, body)
				}
				if errType(res[0]) != c.want || res[0].Error.Retryable {
					t.Errorf("push: %+v, want a final %s", res[0].Error, c.want)
				}
			})
		}
		if logs := e.pullAll(t, "acme", "nul"); len(logs) != 2 {
			t.Errorf("%d entries after the refused events, want 2 (user, board)", len(logs))
		}
	})
}

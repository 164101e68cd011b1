package httpapi_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// TestStatusCodes covers every status code of push and pull, on each database.
func TestStatusCodes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		good := token(t, "acme", "sc-u")
		expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "sc-u", "iss": "https://acme.example", "aud": "syncplane",
			"exp": time.Now().Add(-time.Hour).Unix()}).SignedString([]byte(secrets["acme"]))
		notYet, _ := auth.SignHS256([]byte(secrets["acme"]), auth.SignClaims{Subject: "sc-u", Issuer: "https://acme.example", Audience: "syncplane", TTL: 2 * time.Hour,
			Extra: map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}})
		wrongAud, _ := auth.SignHS256([]byte(secrets["acme"]), auth.SignClaims{Subject: "sc-u", Issuer: "https://acme.example", Audience: "other", TTL: time.Hour})
		wrongIss, _ := auth.SignHS256([]byte(secrets["acme"]), auth.SignClaims{Subject: "sc-u", Issuer: "https://evil.example", Audience: "syncplane", TTL: time.Hour})
		manyEvents := make([]map[string]any, 101)
		for i := range manyEvents {
			manyEvents[i] = ev("", "User", "create", user("sc-u"))
		}
		huge := []byte(`{"events":[` + strings.Repeat(" ", 1<<20) + `]}`)
		tests := map[string]struct {
			path, token string
			body        any
			want        int
			wantErr     string // substring of the error body
		}{
			"case=push-ok":                {"/v1/tenants/acme/push", good, map[string]any{"events": []any{}}, 200, ""},
			"case=pull-ok":                {"/v1/tenants/acme/pull", good, map[string]any{}, 200, ""},
			"case=pull-empty-body":        {"/v1/tenants/acme/pull", good, []byte{}, 200, ""},
			"case=malformed-json":         {"/v1/tenants/acme/push", good, []byte(`{"events": [`), 400, "malformed JSON"},
			"case=trailing-data":          {"/v1/tenants/acme/push", good, []byte(`{"events": []} {}`), 400, "malformed JSON"},
			"case=body-not-object":        {"/v1/tenants/acme/push", good, []byte(`[]`), 400, "malformed JSON"},
			"case=events-missing":         {"/v1/tenants/acme/push", good, map[string]any{}, 400, `missing field \"events\"`},
			"case=events-not-array":       {"/v1/tenants/acme/push", good, map[string]any{"events": "x"}, 400, "must be an array"},
			"case=unknown-body-field":     {"/v1/tenants/acme/push", good, map[string]any{"events": []any{}, "x": 1}, 400, `unknown field \"x\"`},
			"case=event-not-object":       {"/v1/tenants/acme/push", good, map[string]any{"events": []any{1}}, 400, "events[0]: must be an object"},
			"case=event-without-id":       {"/v1/tenants/acme/push", good, map[string]any{"events": []any{map[string]any{"entityType": "User", "operation": "create", "payload": user("sc-u")}}}, 400, `events[0]: missing field \"id\"`},
			"case=event-unknown-field":    {"/v1/tenants/acme/push", good, map[string]any{"events": []any{withField(ev("", "User", "create", user("sc-u")), "extra", 1)}}, 400, `unknown field \"extra\"`},
			"case=event-bad-createdAt":    {"/v1/tenants/acme/push", good, map[string]any{"events": []any{withField(ev("", "User", "create", user("sc-u")), "createdAt", "yesterday")}}, 400, "ISO-8601"},
			"case=pull-bad-cursor":        {"/v1/tenants/acme/pull", good, map[string]any{"lastChangelogId": "nope"}, 400, "not a changelog id"},
			"case=pull-zero-limit":        {"/v1/tenants/acme/pull", good, map[string]any{"limit": 0}, 400, "limit must be at least 1"},
			"case=pull-unknown-field":     {"/v1/tenants/acme/pull", good, map[string]any{"since": 1}, 400, "unknown field"},
			"case=missing-token":          {"/v1/tenants/acme/push", "", map[string]any{"events": []any{}}, 401, "missing bearer token"},
			"case=garbage-token":          {"/v1/tenants/acme/pull", "abc.def.ghi", map[string]any{}, 401, "invalid token"},
			"case=expired-token":          {"/v1/tenants/acme/pull", expired, map[string]any{}, 401, "expired"},
			"case=not-yet-valid-token":    {"/v1/tenants/acme/pull", notYet, map[string]any{}, 401, "not yet valid"},
			"case=wrong-audience":         {"/v1/tenants/acme/pull", wrongAud, map[string]any{}, 401, "audience"},
			"case=wrong-issuer":           {"/v1/tenants/acme/pull", wrongIss, map[string]any{}, 401, "issuer"},
			"case=other-tenants-token":    {"/v1/tenants/acme/pull", token(t, "beta", "sc-u"), map[string]any{}, 401, "invalid token"},
			"case=unknown-tenant":         {"/v1/tenants/nope/push", good, map[string]any{"events": []any{}}, 404, `unknown tenant`},
			"case=pull-forbidden-scope":   {"/v1/tenants/acme/pull", good, map[string]any{"scopeKey": "someone-else"}, 403, "may not pull"},
			"case=batch-over-maxBatch":    {"/v1/tenants/acme/push", good, map[string]any{"events": manyEvents}, 413, "exceeds the limit of 100"},
			"case=body-over-maxBodyBytes": {"/v1/tenants/acme/push", good, huge, 413, "exceeds the limit of 1048576 bytes"},
			"case=no-such-endpoint":       {"/v1/tenants/acme/nothing", good, map[string]any{}, 404, "no such endpoint"},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				code, body, hdr := post(t, e.url+tc.path, tc.token, tc.body)
				if code != tc.want {
					t.Fatalf("status %d, want %d: %s", code, tc.want, body)
				}
				if tc.want == 200 {
					return
				}
				var eb struct {
					Error   string   `json:"error"`
					Details []string `json:"details"`
				}
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
					t.Fatalf("error body %s is not {\"error\": ...}", body)
				}
				if !strings.Contains(string(body), tc.wantErr) {
					t.Errorf("error body %s does not mention %q", body, tc.wantErr)
				}
				if code == 401 && hdr.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			})
		}
		t.Run("case=rate-limited", func(t *testing.T) {
			t.Parallel()
			tok := token(t, "limited", "rl-u")
			code, body, _ := post(t, e.url+"/v1/tenants/limited/pull", tok, map[string]any{})
			if code != 200 {
				t.Fatalf("first request: %d %s", code, body)
			}
			code, body, hdr := post(t, e.url+"/v1/tenants/limited/pull", tok, map[string]any{})
			if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
				t.Fatalf("second request: %d (Retry-After %q) %s; want 429 with Retry-After", code, hdr.Get("Retry-After"), body)
			}
		})
	})
}

func withField(m map[string]any, k string, v any) map[string]any {
	m[k] = v
	return m
}

// TestStorageUnavailable: a push or pull while the database is gone is a
// 503, and nothing is half-written.
func TestStorageUnavailable(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		ok(t, e.push(t, "acme", "down-u", ev("", "User", "create", user("down-u"))))
		must(t, e.st.Close())
		for _, path := range []string{"push", "pull"} {
			code, body, hdr := post(t, e.url+"/v1/tenants/acme/"+path, token(t, "acme", "down-u"),
				map[string]any{"events": []any{ev("", "Board", "create", board("down-b", "down-u", "x"))}})
			if path == "pull" {
				code, body, hdr = post(t, e.url+"/v1/tenants/acme/pull", token(t, "acme", "down-u"), map[string]any{})
			}
			if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
				t.Errorf("%s: status %d (Retry-After %q): %s; want 503", path, code, hdr.Get("Retry-After"), body)
			}
		}
	})
}

// TestInternalErrorLeaksNothing: a record that cannot be read back (bad
// data written behind syncplane's back) gives a 500 without internals, and
// the server keeps serving.
func TestInternalErrorLeaksNothing(t *testing.T) {
	t.Parallel()
	db := storetest.Databases(t)[0] // SQLite: write a bad value straight into the tenant's file
	e := newEnv(t, db)
	ok(t, e.push(t, "acme", "ie-u", ev("", "User", "create", user("ie-u"))))
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(e.data, "tenants", "acme.db"))
	must(t, err)
	_, err = raw.Exec(`UPDATE "User" SET "createdAt" = 'not a date' WHERE id = 'ie-u'`)
	must(t, err)
	raw.Close()
	code, body, _ := post(t, e.url+"/v1/tenants/acme/pull", token(t, "acme", "ie-u"), map[string]any{})
	if code != 500 {
		t.Fatalf("status %d, want 500: %s", code, body)
	}
	for _, leak := range []string{"createdAt", "DateTime", "sqlite", "User", "not a date"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("500 body %s leaks %q", body, leak)
		}
	}
	if code, _, _ := post(t, e.url+"/v1/tenants/acme/pull", token(t, "acme", "other-u"), map[string]any{}); code != 200 {
		t.Errorf("server stopped serving others after a 500: %d", code)
	}
}

// TestErrorTypes: every per-event error type of push, each next to events
// that apply, so one event's failure never blocks another.
func TestErrorTypes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		ok(t, e.push(t, "acme", "et-u", ev("", "User", "create", user("et-u")), ev("", "Board", "create", board("et-b", "et-u", "mine"))))
		ok(t, e.push(t, "acme", "et-v", ev("", "User", "create", user("et-v")), ev("", "Board", "create", board("et-vb", "et-v", "theirs"))))
		badField := board("et-b2", "et-u", "x")
		badField["color"] = "red"
		missing := board("et-b3", "et-u", "x")
		delete(missing, "createdAt")
		wrongType := board("et-b4", "et-u", "x")
		wrongType["name"] = 7
		nullRequired := board("et-b5", "et-u", "x")
		nullRequired["name"] = nil
		badDate := board("et-b6", "et-u", "x")
		badDate["createdAt"] = "soon"
		emptyID := board("", "et-u", "x")
		tests := map[string]struct {
			event     map[string]any
			want      string
			retryable bool
		}{
			"type=INVALID_MODEL":                           {ev("", "Nope", "create", board("x", "et-u", "x")), push.InvalidModel, false},
			"type=RECORD_VALIDATION_FAILURE/unknown-field": {ev("", "Board", "create", badField), push.RecordValidationFailure, false},
			"type=RECORD_VALIDATION_FAILURE/missing":       {ev("", "Board", "create", missing), push.RecordValidationFailure, false},
			"type=RECORD_VALIDATION_FAILURE/type":          {ev("", "Board", "create", wrongType), push.RecordValidationFailure, false},
			"type=RECORD_VALIDATION_FAILURE/null":          {ev("", "Board", "create", nullRequired), push.RecordValidationFailure, false},
			"type=RECORD_VALIDATION_FAILURE/date":          {ev("", "Board", "create", badDate), push.RecordValidationFailure, false},
			"type=RECORD_VALIDATION_FAILURE/not-object":    {ev("", "Board", "update", "b1"), push.RecordValidationFailure, false},
			"type=KEYPATH_VALIDATION_FAILURE/empty-id":     {ev("", "Board", "create", emptyID), push.KeyPathValidation, false},
			"type=KEYPATH_VALIDATION_FAILURE/delete":       {ev("", "Board", "delete", map[string]any{"name": "no id"}), push.KeyPathValidation, false},
			// A board for another, missing user can never be the subject's
			// (TestMissingParentRetryability has the subject's own).
			"type=SCOPE_VIOLATION/another-missing-user": {ev("", "Board", "create", board("et-b7", "et-ghost", "x")), push.ScopeViolation, false},
			"type=MISSING_PARENT/todo":                  {ev("", "Todo", "create", todo("et-t1", "et-ghost-board", "x")), push.MissingParent, true},
			"type=SCOPE_VIOLATION/other-users-parent":   {ev("", "Board", "create", board("et-b8", "et-v", "x")), push.ScopeViolation, false},
			"type=SCOPE_VIOLATION/root-of-other":        {ev("", "User", "create", user("et-w")), push.ScopeViolation, false},
			"type=SCOPE_VIOLATION/update-others":        {ev("", "Board", "update", board("et-vb", "et-v", "hijack")), push.ScopeViolation, false},
			"type=SCOPE_VIOLATION/move-to-other":        {ev("", "Board", "update", board("et-b", "et-v", "moved")), push.ScopeViolation, false},
			"type=SCOPE_VIOLATION/steal-by-create":      {ev("", "Board", "create", board("et-vb", "et-u", "stolen")), push.ScopeViolation, false},
			"type=SCOPE_VIOLATION/delete-others":        {ev("", "Board", "delete", board("et-vb", "et-v", "theirs")), push.ScopeViolation, false},
			"type=SCOPE_VIOLATION/todo-under-others":    {ev("", "Todo", "create", todo("et-t2", "et-vb", "x")), push.ScopeViolation, false},
			"type=UNKNOWN_OPERATION":                    {ev("", "Board", "upsert", board("et-b9", "et-u", "x")), push.UnknownOperation, false},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				fine := ev("", "Todo", "create", todo("et-ok-"+strings.ReplaceAll(name, "/", "-"), "et-b", "fine"))
				res := e.push(t, "acme", "et-u", fine, tc.event, ev("", "Todo", "create", todo("et-ok2-"+strings.ReplaceAll(name, "/", "-"), "et-b", "fine too")))
				if errType(res[1]) != tc.want || res[1].Error.Retryable != tc.retryable || res[1].AppliedChangelogID != nil || res[1].Error.Message == "" {
					t.Errorf("result %+v (error %+v), want %s retryable=%v", res[1], res[1].Error, tc.want, tc.retryable)
				}
				if errType(res[0]) != "" || errType(res[2]) != "" {
					t.Errorf("neighbours did not apply: %+v %+v", res[0].Error, res[2].Error)
				}
			})
		}
		t.Run("type=RECORD_VALIDATION_FAILURE/unique", func(t *testing.T) {
			t.Parallel()
			dup := user("et-u")
			dup["email"] = "et-v@example.com" // et-v's email: the unique constraint refuses it
			res := e.push(t, "acme", "et-u", ev("", "Board", "create", board("et-ub1", "et-u", "before")), ev("", "User", "update", dup),
				ev("", "Board", "create", board("et-ub2", "et-u", "after")))
			if errType(res[1]) != push.RecordValidationFailure || res[1].Error.Retryable || !strings.Contains(res[1].Error.Message, "unique") {
				t.Errorf("duplicate email: %+v, want non-retryable RECORD_VALIDATION_FAILURE", res[1].Error)
			}
			if errType(res[0]) != "" || errType(res[2]) != "" {
				t.Errorf("the valid events around it failed: %+v %+v", res[0].Error, res[2].Error)
			}
		})
		t.Run("check=nothing-written-for-rejects", func(t *testing.T) {
			// et-v's scope holds exactly its own two entries, whatever et-u tried.
			logs := e.pullAll(t, "acme", "et-v")
			if len(logs) != 2 || string(recordOf(t, logs[1])["name"].(string)) != "theirs" {
				t.Errorf("et-v's scope changed: %+v", logs)
			}
		})
	})
}

// TestSemantics covers idempotency, ordering, resurrection, deletes,
// materialization and the root model rules.
func TestSemantics(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		t.Run("case=idempotent-replay", func(t *testing.T) {
			t.Parallel()
			events := []map[string]any{ev("idem-1", "User", "create", user("idem")), ev("idem-2", "Board", "create", board("idem-b", "idem", "v1"))}
			first := e.push(t, "acme", "idem", events...)
			ok(t, first)
			again := e.push(t, "acme", "idem", events[1], events[0], ev("idem-2", "Board", "create", board("idem-b", "idem", "changed")))
			want := []push.Result{first[1], first[0], first[1]}
			if diff := cmp.Diff(want, again); diff != "" {
				t.Errorf("replay (-want +got):\n%s", diff)
			}
			logs := e.pullAll(t, "acme", "idem")
			if len(logs) != 2 || recordOf(t, logs[1])["name"] != "v1" {
				t.Errorf("replay wrote something: %d entries, board %v", len(logs), logs)
			}
		})
		t.Run("case=duplicate-id-in-batch", func(t *testing.T) {
			t.Parallel()
			res := e.push(t, "acme", "dup", ev("dup-1", "User", "create", user("dup")), ev("dup-1", "User", "create", user("dup")))
			ok(t, res)
			if *res[0].AppliedChangelogID != *res[1].AppliedChangelogID {
				t.Errorf("same event id, different results: %v %v", *res[0].AppliedChangelogID, *res[1].AppliedChangelogID)
			}
			if n := len(e.pullAll(t, "acme", "dup")); n != 1 {
				t.Errorf("%d entries, want 1", n)
			}
		})
		t.Run("case=order-inside-batch", func(t *testing.T) {
			t.Parallel()
			res := e.push(t, "acme", "ord",
				ev("", "Todo", "create", todo("ord-t0", "ord-b", "before its board")),
				ev("", "User", "create", user("ord")),
				ev("", "Board", "create", board("ord-b", "ord", "b")),
				ev("", "Todo", "create", todo("ord-t1", "ord-b", "after its board")),
				ev("", "Todo", "update", todo("ord-t1", "ord-b", "renamed")),
				ev("", "Todo", "delete", todo("ord-t1", "ord-b", "renamed")),
				ev("", "Todo", "create", todo("ord-t1", "ord-b", "recreated")),
			)
			// The todo sent before its board waits for the rest of the
			// batch; the events on ord-t1 keep their order.
			ok(t, res)
			for i := 2; i < len(res); i++ {
				if *res[i].AppliedChangelogID <= *res[i-1].AppliedChangelogID {
					t.Errorf("changelog ids not increasing in batch order: %s then %s", *res[i-1].AppliedChangelogID, *res[i].AppliedChangelogID)
				}
			}
			if *res[0].AppliedChangelogID <= *res[2].AppliedChangelogID {
				t.Errorf("the todo sent before its board has entry %s, not after its board's %s", *res[0].AppliedChangelogID, *res[2].AppliedChangelogID)
			}
			logs := e.pullAll(t, "acme", "ord")
			var ops []string
			for _, l := range logs {
				ops = append(ops, l.Model+":"+l.Operation+":"+string(l.KeyPath))
			}
			// The changelog keeps a record's latest entry: of ord-t1's four
			// events, the last (its re-creation), under its own id.
			want := []string{`User:create:["ord"]`, `Board:create:["ord-b"]`, `Todo:create:["ord-t1"]`, `Todo:create:["ord-t0"]`}
			if diff := cmp.Diff(want, ops); diff != "" {
				t.Fatalf("entries (-want +got):\n%s", diff)
			}
			if l := logs[2]; recordOf(t, l)["title"] != "recreated" || l.ChangelogID != *res[6].AppliedChangelogID || l.OutboxEventID != res[6].ID {
				t.Errorf("ord-t1's entry %+v, want its re-creation's (%s, %s) with the current state", l, res[6].ID, *res[6].AppliedChangelogID)
			}
			// The superseded events, sent again, answer their own ids and
			// write nothing.
			var again []map[string]any
			for _, r := range res[3:6] {
				again = append(again, ev(r.ID, "Todo", "delete", todo("ord-t1", "ord-b", "x")))
			}
			res2 := e.push(t, "acme", "ord", again...)
			ok(t, res2)
			for i, r := range res2 {
				if *r.AppliedChangelogID != *res[3+i].AppliedChangelogID {
					t.Errorf("replay of %s answers %s, want its original %s", r.ID, *r.AppliedChangelogID, *res[3+i].AppliedChangelogID)
				}
			}
			if n := len(e.pullAll(t, "acme", "ord")); n != 4 {
				t.Errorf("after the replays, %d entries, want 4", n)
			}
		})
		t.Run("case=resurrection", func(t *testing.T) {
			t.Parallel()
			ok(t, e.push(t, "acme", "res", ev("", "User", "create", user("res"))))
			res := e.push(t, "acme", "res", ev("", "Board", "update", board("res-b", "res", "from nowhere")))
			ok(t, res)
			logs := e.pullAll(t, "acme", "res")
			last := logs[len(logs)-1]
			if last.Operation != "update" || recordOf(t, last)["name"] != "from nowhere" {
				t.Errorf("resurrected board: %+v", last)
			}
		})
		t.Run("case=delete-missing-record", func(t *testing.T) {
			t.Parallel()
			ok(t, e.push(t, "acme", "dm", ev("", "User", "create", user("dm")), ev("", "Board", "create", board("dm-b", "dm", "b"))))
			res := e.push(t, "acme", "dm",
				ev("", "Board", "delete", board("dm-never", "dm", "never existed")),
				ev("", "Board", "delete", board("dm-b", "dm", "b")),
				ev("", "Board", "delete", board("dm-b", "dm", "b")), // now missing: its last entry says where it was
				ev("", "Todo", "delete", todo("dm-t", "dm-b", "parent gone too")))
			if errType(res[3]) != push.ScopeViolation {
				t.Errorf("delete of an unknown todo whose parent is gone: %+v, want SCOPE_VIOLATION", res[3].Error)
			}
			ok(t, res[:3])
			// The user's create, dm-never's delete and dm-b's last delete
			// (the changelog keeps a record's latest entry).
			logs := e.pullAll(t, "acme", "dm")
			if len(logs) != 3 || string(logs[1].KeyPath) != `["dm-never"]` || string(logs[2].KeyPath) != `["dm-b"]` ||
				logs[2].Operation != "delete" || logs[2].OutboxEventID != res[2].ID {
				t.Fatalf("entries %+v, want the user's, dm-never's delete and dm-b's last delete", logs)
			}
			for _, l := range logs[1:] {
				if string(l.Record) != "null" {
					t.Errorf("entry %s %s of a deleted board carries %s", l.Operation, l.KeyPath, l.Record)
				}
			}
		})
		t.Run("case=cascade", func(t *testing.T) {
			t.Parallel()
			ok(t, e.push(t, "acme", "cas", ev("", "User", "create", user("cas")), ev("", "Board", "create", board("cas-b", "cas", "b")),
				ev("", "Todo", "create", todo("cas-t", "cas-b", "t")), ev("", "Board", "delete", board("cas-b", "cas", "b"))))
			for _, l := range e.pullAll(t, "acme", "cas")[1:] {
				if string(l.Record) != "null" {
					t.Errorf("%s %s: record %s survives its board's delete", l.Model, l.KeyPath, l.Record)
				}
			}
			res := e.push(t, "acme", "cas", ev("", "Todo", "update", todo("cas-t", "cas-b", "t")))
			if errType(res[0]) != push.MissingParent {
				t.Errorf("update of a todo whose board was deleted: %+v, want MISSING_PARENT", res[0].Error)
			}
		})
		t.Run("case=root-model", func(t *testing.T) {
			t.Parallel()
			u := user("root")
			res := e.push(t, "acme", "root", ev("", "User", "create", u))
			ok(t, res)
			u["name"] = "renamed"
			ok(t, e.push(t, "acme", "root", ev("", "User", "update", u)))
			if res := e.push(t, "acme", "not-root", ev("", "User", "update", u)); errType(res[0]) != push.ScopeViolation {
				t.Errorf("another subject updates the root record: %+v", res[0].Error)
			}
			if res := e.push(t, "acme", "not-root", ev("", "User", "delete", u)); errType(res[0]) != push.ScopeViolation {
				t.Errorf("another subject deletes the root record: %+v", res[0].Error)
			}
			logs := e.pullAll(t, "acme", "root")
			// The create's entry went with the update's.
			if len(logs) != 1 || logs[0].ScopeKey != "root" || logs[0].Operation != "update" || recordOf(t, logs[0])["name"] != "renamed" {
				t.Errorf("root entries: %+v", logs)
			}
		})
		t.Run("case=materialization-shape", func(t *testing.T) {
			t.Parallel()
			u := user("shape")
			u["image"] = "https://img.example/x.png"
			u["isAnonymous"] = true
			u["createdAt"] = "2026-11-25T10:00:00.123456Z"
			res := e.push(t, "acme", "shape", ev("shape-1", "User", "create", u))
			ok(t, res)
			logs := e.pullAll(t, "acme", "shape")
			got := logs[0]
			want := `{"id":"shape","name":"User shape","email":"shape@example.com","emailVerified":false,"image":"https://img.example/x.png","createdAt":"2026-11-25T10:00:00.123Z","updatedAt":"2026-11-25T10:00:00.000Z","isAnonymous":true}`
			if string(got.Record) != want {
				t.Errorf("record\n got %s\nwant %s", got.Record, want)
			}
			if got.ID != got.ChangelogID || got.ID != *res[0].AppliedChangelogID || got.OutboxEventID != "shape-1" ||
				string(got.KeyPath) != `["shape"]` || got.ScopeKey != "shape" || got.Model != "User" || got.Operation != "create" {
				t.Errorf("entry envelope: %+v", got)
			}
		})
		t.Run("case=paging", func(t *testing.T) {
			t.Parallel()
			events := []map[string]any{ev("", "User", "create", user("pg")), ev("", "Board", "create", board("pg-b", "pg", "b"))}
			for i := 0; i < 118; i++ {
				events = append(events, ev("", "Todo", "create", todo(fmt.Sprintf("pg-t%03d", i), "pg-b", "t")))
			}
			ok(t, e.push(t, "acme", "pg", events[:100]...))
			ok(t, e.push(t, "acme", "pg", events[100:]...))
			first := e.pull(t, "acme", "pg", map[string]any{})
			if len(first.LogsWithRecords) != 50 {
				t.Errorf("default page: %d entries, want 50", len(first.LogsWithRecords))
			}
			capped := e.pull(t, "acme", "pg", map[string]any{"limit": 1000})
			if len(capped.LogsWithRecords) != 100 {
				t.Errorf("limit 1000 with pullPageMax 100: %d entries", len(capped.LogsWithRecords))
			}
			var sizes []int
			var seen []string
			// With an explicit scopeKey the cursor is the last entry's id
			// (without one it is the opaque union cursor; see scopes_test.go).
			req := map[string]any{"limit": 30, "scopeKey": "pg"}
			for {
				page := e.pull(t, "acme", "pg", req)
				sizes = append(sizes, len(page.LogsWithRecords))
				if len(page.LogsWithRecords) == 0 {
					if page.Cursor == nil || *page.Cursor != req["lastChangelogId"] {
						t.Errorf("empty page cursor %v, want the request's", page.Cursor)
					}
					break
				}
				for _, l := range page.LogsWithRecords {
					seen = append(seen, l.ID)
				}
				if *page.Cursor != seen[len(seen)-1] {
					t.Errorf("cursor %s is not the page's last id", *page.Cursor)
				}
				req = map[string]any{"limit": 30, "scopeKey": "pg", "lastChangelogId": *page.Cursor}
			}
			if diff := cmp.Diff([]int{30, 30, 30, 30, 0}, sizes); diff != "" {
				t.Errorf("page sizes (-want +got):\n%s", diff)
			}
			for i := 1; i < len(seen); i++ {
				if seen[i] <= seen[i-1] {
					t.Fatalf("ids not increasing: %s after %s", seen[i], seen[i-1])
				}
			}
			fresh := e.pull(t, "acme", "pg-nobody", map[string]any{})
			if fresh.Cursor != nil || len(fresh.LogsWithRecords) != 0 {
				t.Errorf("first pull of an empty scope: cursor %v, %d entries; want null, 0", fresh.Cursor, len(fresh.LogsWithRecords))
			}
		})
		t.Run("case=scope-isolation", func(t *testing.T) {
			t.Parallel()
			ok(t, e.push(t, "acme", "iso-u", ev("", "User", "create", user("iso-u")), ev("", "Board", "create", board("iso-b", "iso-u", "secret"))))
			ok(t, e.push(t, "acme", "iso-v", ev("", "User", "create", user("iso-v"))))
			for _, l := range e.pullAll(t, "acme", "iso-v") {
				if l.ScopeKey != "iso-v" || strings.Contains(string(l.Record), "secret") {
					t.Errorf("iso-v sees %+v", l)
				}
			}
			code, _, _ := post(t, e.url+"/v1/tenants/acme/pull", token(t, "acme", "iso-v"), map[string]any{"scopeKey": "iso-u"})
			if code != http.StatusForbidden {
				t.Errorf("iso-v pulls iso-u's scope: %d, want 403", code)
			}
			res := e.push(t, "acme", "iso-v",
				ev("", "Board", "update", board("iso-b", "iso-u", "defaced")),
				ev("", "Board", "delete", board("iso-b", "iso-u", "secret")),
				ev("", "Todo", "create", todo("iso-t", "iso-b", "planted")))
			for i, r := range res {
				if errType(r) != push.ScopeViolation {
					t.Errorf("iso-v write %d into iso-u's scope: %+v", i, r.Error)
				}
			}
			logs := e.pullAll(t, "acme", "iso-u")
			if len(logs) != 2 || recordOf(t, logs[1])["name"] != "secret" {
				t.Errorf("iso-u's scope after iso-v's attempts: %+v", logs)
			}
		})
		t.Run("case=tenant-isolation", func(t *testing.T) {
			t.Parallel()
			ok(t, e.push(t, "acme", "ten", ev("", "User", "create", user("ten")), ev("", "Board", "create", board("ten-b", "ten", "acme's"))))
			if logs := e.pullAll(t, "beta", "ten"); len(logs) != 0 {
				t.Errorf("the same subject in tenant beta sees acme's data: %+v", logs)
			}
			res := e.push(t, "beta", "ten", ev("", "Board", "create", board("ten-b2", "ten", "x")))
			if errType(res[0]) != push.MissingParent {
				t.Errorf("beta's push refers to acme's user: %+v, want MISSING_PARENT", res[0].Error)
			}
			code, _, _ := post(t, e.url+"/v1/tenants/beta/push", token(t, "acme", "ten"), map[string]any{"events": []any{}})
			if code != http.StatusUnauthorized {
				t.Errorf("acme's token at beta: %d, want 401", code)
			}
			if logs := e.pullAll(t, "acme", "ten"); len(logs) != 2 {
				t.Errorf("acme's scope: %d entries, want 2", len(logs))
			}
		})
	})
}

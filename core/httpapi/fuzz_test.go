package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// fuzzEnvs starts one server per database for a fuzz target, with a user
// and a board to write into.
func fuzzEnvs(f *testing.F) []*env {
	var envs []*env
	for _, db := range storetest.Databases(f) {
		e := newEnv(f, db)
		ok(f, e.push(f, "acme", "fz", ev("", "User", "create", user("fz")), ev("", "Board", "create", board("fz-b", "fz", "b"))))
		envs = append(envs, e)
	}
	return envs
}

// pushFields are the places FuzzPushField puts its string.
var pushFields = []string{"title", "id", "boardId", "description", "createdAt", "event-id", "entityType", "operation", "delete-id"}

// FuzzPushField puts arbitrary text into one field of an otherwise valid
// event. Whatever the text, the answer is a clear one: 200 with a final
// error or an applied event, or 400; never a 500, and never UNKNOWN_ERROR
// or a retryable error for input the server can judge (the only retryable
// answer is a parent that does not exist yet).
func FuzzPushField(f *testing.F) {
	for _, s := range []string{"", "a\x00b", "\x00", "\xff\xfe", "é", "😀", "\u2028", "'; DROP TABLE x; --", `\u0000`, "2026-11-25T10:00:00.000Z",
		strings.Repeat("x", 70000), "fz-b", "Board", "update", "create", "delete", "~moved-out"} {
		for i := range pushFields {
			f.Add(s, uint8(i))
		}
	}
	envs := fuzzEnvs(f)
	f.Fuzz(func(t *testing.T, s string, which uint8) {
		field := pushFields[int(which)%len(pushFields)]
		td := todo("fz-t", "fz-b", "t")
		e := ev("", "Todo", "create", td)
		switch field {
		case "event-id":
			e["id"] = s
		case "entityType", "operation":
			e[field] = s
		case "delete-id":
			e["operation"] = "delete"
			e["payload"] = map[string]any{"id": s}
		default:
			td[field] = s
		}
		body, err := json.Marshal(map[string]any{"events": []any{e}})
		if err != nil {
			t.Skip("not encodable") // json.Marshal replaces invalid UTF-8; it does not fail on strings
		}
		for _, env := range envs {
			code, resp, _ := post(t, env.url+"/v1/tenants/acme/push", token(t, "acme", "fz"), body)
			checkPushAnswer(t, field, code, resp)
		}
	})
}

// FuzzPushBody sends arbitrary bytes as a push body.
func FuzzPushBody(f *testing.F) {
	for _, s := range []string{`{"events":[]}`, `{"events":[{}]}`, `{"events":null}`, `[]`, `{`, "\x00", `{"events":[{"id":"x","entityType":"Todo","operation":"create","payload":{}}]}`,
		`{"events":[{"id":"e","entityType":"Todo","operation":"delete","payload":{"id":"fz-t"},"createdAt":"2026-11-25T10:00:00.000Z","tries":0,"lastError":null,"synced":false,"syncedAt":null,"retryable":true,"lastAttemptedAt":null}]}`} {
		f.Add([]byte(s))
	}
	envs := fuzzEnvs(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, env := range envs {
			code, resp, _ := post(t, env.url+"/v1/tenants/acme/push", token(t, "acme", "fz"), body)
			checkPushAnswer(t, "body", code, resp)
		}
	})
}

func checkPushAnswer(t *testing.T, what string, code int, resp []byte) {
	t.Helper()
	switch code {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return
	default:
		t.Fatalf("%s: status %d: %s", what, code, resp)
	}
	var res []push.Result
	if err := json.Unmarshal(resp, &res); err != nil {
		t.Fatalf("%s: 200 with %s: %v", what, resp, err)
	}
	for _, r := range res {
		if r.Error == nil {
			continue
		}
		if r.Error.Type == push.UnknownError || (r.Error.Retryable && r.Error.Type != push.MissingParent) {
			t.Errorf("%s: %+v, want a final error the server can name", what, r.Error)
		}
	}
}

// FuzzPullBody sends arbitrary bytes as a pull body: 200, 400, 403 or
// 413, never a 500.
func FuzzPullBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"limit":0}`, `{"limit":-1}`, `{"limit":1e9}`, `{"lastChangelogId":"\u0000"}`, `{"lastChangelogId":"c1.!!!"}`,
		`{"scopeKey":"\u0000"}`, `{"scopeKey":"fz"}`, `{"scopeKey":"other"}`, `{"waitMs":-5}`, `{"lastChangelogId":"zzzz"}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	envs := fuzzEnvs(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if strings.Contains(string(body), "waitMs") {
			t.Skip("long polls wait; their bounds are tested in TestLongPollValidation")
		}
		for _, env := range envs {
			code, resp, _ := post(t, env.url+"/v1/tenants/acme/pull", token(t, "acme", "fz"), body)
			switch code {
			case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			default:
				t.Fatalf("pull %q: status %d: %s", body, code, resp)
			}
		}
	})
}

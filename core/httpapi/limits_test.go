package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// errorBody is an error response.
type errorBody struct {
	Error   string   `json:"error"`
	Details []string `json:"details"`
}

func decodeError(t testing.TB, b []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %.300q: %v", b, err)
	}
	return e
}

// TestPushBoundedDecoding: the batch limit is enforced while the body is
// decoded, and a body error lists at most push.MaxDetails problems, so a
// body of empty events just under maxBodyBytes gets a short answer and
// writes nothing (issue 9, finding 2: it used to answer 51 MB).
func TestPushBoundedDecoding(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		url := e.url + "/v1/tenants/acme/push"
		tok := token(t, "acme", "dec")
		ok(t, e.push(t, "acme", "dec", ev("", "User", "create", user("dec"))))

		// {"events":[{},{},…]} of about 878 KiB, under the 1 MiB limit.
		empties := []byte(`{"events":[` + strings.Repeat(`{},`, 300_000) + `{}]}`)
		code, b, _ := post(t, url, tok, empties)
		if code != http.StatusRequestEntityTooLarge {
			t.Fatalf("push of 300,001 empty events: %d %.300s", code, b)
		}
		if got := decodeError(t, b); got.Error != "batch exceeds the limit of 100 events" || len(got.Details) != 0 {
			t.Errorf("push of 300,001 empty events: %+v", got)
		}
		if len(b) > 200 {
			t.Errorf("push of 300,001 empty events: answer of %d bytes: %.300s", len(b), b)
		}

		// 101 good events: 413 as well, and none applied.
		var events []map[string]any
		for i := range 101 {
			events = append(events, ev("", "Board", "create", board(fmt.Sprintf("dec-b%d", i), "dec", "b")))
		}
		if code, b, _ := post(t, url, tok, map[string]any{"events": events}); code != http.StatusRequestEntityTooLarge {
			t.Errorf("push of 101 events: %d %.300s", code, b)
		}

		// 60 empty events (under maxBatch): 240 problems, 20 listed.
		code, b, _ = post(t, url, tok, []byte(`{"events":[`+strings.Repeat(`{},`, 59)+`{}]}`))
		got := decodeError(t, b)
		if code != http.StatusBadRequest || got.Error != "invalid events" || len(got.Details) != push.MaxDetails+1 {
			t.Fatalf("push of 60 empty events: %d %.500s", code, b)
		}
		if got.Details[0] != `events[0]: missing field "id"` || got.Details[push.MaxDetails] != "… and 220 more problems" {
			t.Errorf("push of 60 empty events: details %q", got.Details)
		}

		if n := len(e.pullAll(t, "acme", "dec")); n != 1 {
			t.Errorf("pull after the refused pushes: %d entries, want 1 (the user)", n)
		}
	})
}

// TestPushNULEventID: an event id with a NUL character can never be
// stored, so the body is refused (400) with a detail naming the event,
// and nothing of the batch is written (issue 9, finding 8).
func TestPushNULEventID(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		ok(t, e.push(t, "acme", "nulid", ev("", "User", "create", user("nulid"))))
		body := map[string]any{"events": []any{
			ev("", "Board", "create", board("nulid-b1", "nulid", "b")),
			ev("nulid-evt-\x00", "Board", "create", board("nulid-b2", "nulid", "b")),
		}}
		code, b, _ := post(t, e.url+"/v1/tenants/acme/push", token(t, "acme", "nulid"), body)
		got := decodeError(t, b)
		want := []string{`events[1]: field "id": must not contain the NUL character (U+0000)`}
		if code != http.StatusBadRequest || got.Error != "invalid events" || !slices.Equal(got.Details, want) {
			t.Fatalf("push: %d %s; want 400 with details %q", code, b, want)
		}
		if n := len(e.pullAll(t, "acme", "nulid")); n != 1 {
			t.Errorf("pull: %d entries, want 1 (the user): the batch was refused as a whole", n)
		}
	})
}

// TestTokenSubjectNUL: a token whose sub has a NUL character is refused
// with 401 on push and pull alike; it used to make every pull 500.
func TestTokenSubjectNUL(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		tok := token(t, "acme", "u\x00nul")
		for path, body := range map[string]any{
			"push": map[string]any{"events": []any{ev("", "User", "create", user("u\x00nul"))}},
			"pull": map[string]any{},
		} {
			code, b, h := post(t, e.url+"/v1/tenants/acme/"+path, tok, body)
			if code != http.StatusUnauthorized || !bytes.Contains(b, []byte("sub must not contain the NUL character")) {
				t.Errorf("%s: %d %s, want 401", path, code, b)
			}
			if !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("%s: WWW-Authenticate %q", path, h.Get("WWW-Authenticate"))
			}
		}
	})
}

package push_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/syncplane/syncplane/core/push"
)

// validEvent is the OutboxEvent of docs/protocol.md, on one line so that
// its payload's raw bytes are easy to state.
const validEvent = `{"id":"evt-1","entityType":"Board","operation":"create",` +
	`"payload":{"id":"b1","name":"Q4","createdAt":"2026-11-25T10:00:00.000Z","userId":"u1"},` +
	`"createdAt":"2026-11-25T10:00:00.000Z","tries":0,"lastError":null,` +
	`"synced":false,"syncedAt":null,"retryable":true,"lastAttemptedAt":null}`

const validPayload = `{"id":"b1","name":"Q4","createdAt":"2026-11-25T10:00:00.000Z","userId":"u1"}`

// withField returns validEvent with field set to the raw JSON value (or
// removed when value is "").
func withField(t testing.TB, field, value string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(validEvent), &m); err != nil {
		t.Fatal(err)
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func body(events ...string) string { return `{"events":[` + strings.Join(events, ",") + `]}` }

func TestDecodeBodyValid(t *testing.T) {
	t.Parallel()
	b1 := push.Event{ID: "evt-1", EntityType: "Board", Operation: "create", Payload: json.RawMessage(validPayload)}
	tests := map[string]struct {
		body string
		want []push.Event
	}{
		"design example":             {body: body(validEvent), want: []push.Event{b1}},
		"empty batch":                {body: `{"events":[]}`, want: []push.Event{}},
		"whitespace around the body": {body: " \n\t" + body(validEvent) + "\r\n ", want: []push.Event{b1}},
		"several events in order": {
			body: body(validEvent, withField(t, "id", `"evt-2"`), withField(t, "operation", `"delete"`)),
			want: []push.Event{b1, {ID: "evt-2", EntityType: "Board", Operation: "create", Payload: json.RawMessage(validPayload)},
				{ID: "evt-1", EntityType: "Board", Operation: "delete", Payload: json.RawMessage(validPayload)}},
		},
		// Model, operation and payload problems are reported per event by
		// Push, not as a body error.
		"unknown model and operation, payload not an object": {
			body: body(`{"id":"e","entityType":"Nope","operation":"upsert","payload":42}`),
			want: []push.Event{{ID: "e", EntityType: "Nope", Operation: "upsert", Payload: json.RawMessage(`42`)}},
		},
		"only the required fields": {
			body: body(`{"id":"e","entityType":"Todo","operation":"update","payload":null}`),
			want: []push.Event{{ID: "e", EntityType: "Todo", Operation: "update", Payload: json.RawMessage(`null`)}},
		},
		"entityKeyPath of older clients is ignored": {
			body: body(withField(t, "entityKeyPath", `["b1"]`)),
			want: []push.Event{b1},
		},
		"createdAt as epoch milliseconds": {
			body: body(withField(t, "createdAt", `1764064800000`)),
			want: []push.Event{b1},
		},
		"bookkeeping fields set": {
			body: body(`{"id":"evt-1","entityType":"Board","operation":"create","payload":` + validPayload + `,` +
				`"createdAt":"2026-11-25T10:00:00+01:00","tries":3.5,"lastError":"timeout","synced":true,` +
				`"syncedAt":"2026-11-25T10:00:01.123456789Z","retryable":false,"lastAttemptedAt":1764064800000}`),
			want: []push.Event{b1},
		},
		"duplicate event ids are not a body error": {
			body: body(validEvent, validEvent),
			want: []push.Event{b1, b1},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			got, err := push.DecodeBody([]byte(tc.body), 100)
			if err != nil {
				t.Fatalf("DecodeBody(%s) failed: %v", tc.body, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(push.Event{})); diff != "" {
				t.Errorf("DecodeBody(%s) (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

func TestDecodeBodyErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body string
		want *push.BodyError
		// prefix: only the start of want.Msg is fixed (the rest is the
		// JSON decoder's own words).
		prefix bool
	}{
		"empty body":            {body: ``, want: &push.BodyError{Msg: "malformed JSON: "}, prefix: true},
		"truncated":             {body: `{"events":[`, want: &push.BodyError{Msg: "malformed JSON: "}, prefix: true},
		"not an object":         {body: `[]`, want: &push.BodyError{Msg: "malformed JSON: "}, prefix: true},
		"a string":              {body: `"events"`, want: &push.BodyError{Msg: "malformed JSON: "}, prefix: true},
		"trailing value":        {body: `{"events":[]} {}`, want: &push.BodyError{Msg: "malformed JSON: trailing data after the JSON value"}},
		"trailing garbage":      {body: `{"events":[]} x`, want: &push.BodyError{Msg: "malformed JSON: trailing data after the JSON value"}},
		"trailing bracket":      {body: `{"events":[]}]`, want: &push.BodyError{Msg: "malformed JSON: trailing data after the JSON value"}},
		"trailing brace":        {body: `{"events":[]}}`, want: &push.BodyError{Msg: "malformed JSON: trailing data after the JSON value"}},
		"null body":             {body: `null`, want: &push.BodyError{Msg: `body must be an object {"events": [...]}`}},
		"missing events":        {body: `{}`, want: &push.BodyError{Msg: `missing field "events"`}},
		"unknown field":         {body: `{"events":[],"extra":1}`, want: &push.BodyError{Msg: `unknown field "extra" in body`}},
		"unknown fields sorted": {body: `{"zeta":1,"events":[],"alpha":2,"mid":3}`, want: &push.BodyError{Msg: `unknown field "alpha" in body`}},
		"events null":           {body: `{"events":null}`, want: &push.BodyError{Msg: `"events" must be an array`}},
		"events object":         {body: `{"events":{}}`, want: &push.BodyError{Msg: `"events" must be an array`}},
		"events string":         {body: `{"events":"[]"}`, want: &push.BodyError{Msg: `"events" must be an array`}},
		"event not an object": {body: `{"events":[1,null,[],"x"]}`, want: &push.BodyError{Msg: "invalid events", Details: []string{
			"events[0]: must be an object", "events[1]: must be an object", "events[2]: must be an object", "events[3]: must be an object"}}},
		"empty event": {body: body(`{}`), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: missing field "id"`, `events[0]: missing field "entityType"`,
			`events[0]: missing field "operation"`, `events[0]: missing field "payload"`}}},
		"missing payload": {body: body(withField(t, "payload", "")), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: missing field "payload"`}}},
		"unknown event fields, sorted": {body: body(strings.Replace(validEvent, `{"id"`, `{"zz":1,"Id":"x","id"`, 1)),
			want: &push.BodyError{Msg: "invalid events", Details: []string{`events[0]: unknown field "Id"`, `events[0]: unknown field "zz"`}}},
		"empty id": {body: body(withField(t, "id", `""`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "id": must not be empty`}}},
		"id with a NUL character": {body: body(withField(t, "id", `"evt-\u0000-1"`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "id": must not contain the NUL character (U+0000)`}}},
		"NUL id of the second event": {body: body(validEvent, withField(t, "id", `"\u0000"`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[1]: field "id": must not contain the NUL character (U+0000)`}}},
		"id a number": {body: body(withField(t, "id", `1`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "id": must be a string`}}},
		"id null": {body: body(withField(t, "id", `null`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "id": must be a string`}}},
		"entityType an array": {body: body(withField(t, "entityType", `["Board"]`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "entityType": must be a string`}}},
		"operation null": {body: body(withField(t, "operation", `null`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "operation": must be a string`}}},
		"tries a string": {body: body(withField(t, "tries", `"0"`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "tries": must be a number`}}},
		"tries null": {body: body(withField(t, "tries", `null`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "tries": must be a number`}}},
		"tries out of range": {body: body(withField(t, "tries", `1e400`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "tries": must be a number`}}},
		"lastError a number": {body: body(withField(t, "lastError", `5`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "lastError": must be a string`}}},
		"synced a string": {body: body(withField(t, "synced", `"false"`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "synced": must be a boolean`}}},
		"retryable null": {body: body(withField(t, "retryable", `null`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "retryable": must be a boolean`}}},
		"createdAt null": {body: body(withField(t, "createdAt", `null`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "createdAt": must not be null`}}},
		"createdAt not a date": {body: body(withField(t, "createdAt", `"yesterday"`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "createdAt": must be an ISO-8601 date, got "yesterday"`}}},
		"createdAt a boolean": {body: body(withField(t, "createdAt", `true`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "createdAt": must be a date string`}}},
		"syncedAt an object": {body: body(withField(t, "syncedAt", `{}`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "syncedAt": must be a date string`}}},
		"lastAttemptedAt not a date": {body: body(withField(t, "lastAttemptedAt", `"2026-13-01T00:00:00Z"`)), want: &push.BodyError{Msg: "invalid events", Details: []string{
			`events[0]: field "lastAttemptedAt": must be an ISO-8601 date, got "2026-13-01T00:00:00Z"`}}},
		"problems of several events, in order": {
			body: body(withField(t, "tries", `"x"`), validEvent, `{"id":"","entityType":"Todo","operation":"create","payload":{}}`, `7`),
			want: &push.BodyError{Msg: "invalid events", Details: []string{
				`events[0]: field "tries": must be a number`,
				`events[2]: field "id": must not be empty`,
				`events[3]: must be an object`,
			}},
		},
		"several problems of one event: fields sorted, then missing ones": {
			body: body(`{"synced":1,"operation":2,"id":"e","bogus":null}`),
			want: &push.BodyError{Msg: "invalid events", Details: []string{
				`events[0]: unknown field "bogus"`,
				`events[0]: field "operation": must be a string`,
				`events[0]: field "synced": must be a boolean`,
				`events[0]: missing field "entityType"`,
				`events[0]: missing field "payload"`,
			}},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			events, err := push.DecodeBody([]byte(tc.body), 100)
			var got *push.BodyError
			if !errors.As(err, &got) {
				t.Fatalf("DecodeBody(%s) = %v, %v; want a *BodyError", tc.body, events, err)
			}
			if events != nil {
				t.Errorf("DecodeBody(%s) returned events %v along with an error", tc.body, events)
			}
			want := *tc.want
			if tc.prefix {
				if !strings.HasPrefix(got.Msg, want.Msg) || len(got.Msg) == len(want.Msg) {
					t.Errorf("Msg = %q, want %q followed by the decoder's error", got.Msg, want.Msg)
				}
				want.Msg = got.Msg
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("DecodeBody(%s) error (-want +got):\n%s", tc.body, diff)
			}
			if got.Error() != got.Msg {
				t.Errorf("Error() = %q, want Msg %q", got.Error(), got.Msg)
			}
		})
	}
}

// TestDecodeBodyBatchLimit: past maxBatch events DecodeBody stops and
// answers *BatchTooLargeError, whether the events are well-formed or not,
// and however many follow; body-level problems found before the events
// (malformed JSON, an unknown member) are still body errors.
func TestDecodeBodyBatchLimit(t *testing.T) {
	t.Parallel()
	events := func(n int, ev string) string { return body(slices.Repeat([]string{ev}, n)...) }
	tooLarge := &push.BatchTooLargeError{Max: 3}
	tests := map[string]struct {
		body      string
		wantCount int   // events decoded, when want is nil
		want      error // *push.BatchTooLargeError or *push.BodyError (Msg compared)
	}{
		"at the limit":                   {body: events(3, validEvent), wantCount: 3},
		"one past the limit":             {body: events(4, validEvent), want: tooLarge},
		"far past the limit":             {body: events(10000, validEvent), want: tooLarge},
		"empty events past the limit":    {body: events(200000, `{}`), want: tooLarge},
		"non-objects past the limit":     {body: `{"events":[1,2,3,4,5,null,"x"]}`, want: tooLarge},
		"bad fourth event":               {body: events(3, validEvent)[:len(events(3, validEvent))-2] + `,{"id":1}]}`, want: tooLarge},
		"escaped key, past the limit":    {body: `{"\u0065vents":[{},{},{},{}]}`, want: tooLarge},
		"invalid events at the limit":    {body: events(3, `{}`), want: &push.BodyError{Msg: "invalid events"}},
		"malformed, past the limit":      {body: events(10, validEvent) + "x", want: &push.BodyError{Msg: "malformed JSON: trailing data after the JSON value"}},
		"unknown member, past the limit": {body: `{"events":[{},{},{},{},{}],"x":1}`, want: &push.BodyError{Msg: `unknown field "x" in body`}},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			got, err := push.DecodeBody([]byte(tc.body), 3)
			if tc.want == nil {
				if err != nil || len(got) != tc.wantCount {
					t.Fatalf("DecodeBody = %d events, %v; want %d events", len(got), err, tc.wantCount)
				}
				return
			}
			if got != nil {
				t.Errorf("DecodeBody returned %d events along with an error", len(got))
			}
			switch want := tc.want.(type) {
			case *push.BatchTooLargeError:
				var tl *push.BatchTooLargeError
				if !errors.As(err, &tl) || *tl != *want {
					t.Fatalf("DecodeBody = %v (%T), want %#v", err, err, want)
				}
				if msg := err.Error(); msg != "batch exceeds the limit of 3 events" {
					t.Errorf("Error() = %q", msg)
				}
			case *push.BodyError:
				var be *push.BodyError
				if !errors.As(err, &be) || be.Msg != want.Msg {
					t.Fatalf("DecodeBody = %v (%T), want a *BodyError %q", err, err, want.Msg)
				}
			}
		})
	}
}

// TestDecodeBodyDetailsCapped: a body error lists the first MaxDetails
// problems in order, then how many more there were.
func TestDecodeBodyDetailsCapped(t *testing.T) {
	t.Parallel()
	// 30 empty events: four missing fields each, 120 problems.
	b := body(slices.Repeat([]string{`{}`}, 30)...)
	_, err := push.DecodeBody([]byte(b), 100)
	var be *push.BodyError
	if !errors.As(err, &be) {
		t.Fatalf("DecodeBody = %v, want a *BodyError", err)
	}
	if len(be.Details) != push.MaxDetails+1 {
		t.Fatalf("%d details, want %d: %q", len(be.Details), push.MaxDetails+1, be.Details)
	}
	var want []string
	for i := range push.MaxDetails / 4 {
		for _, f := range []string{"id", "entityType", "operation", "payload"} {
			want = append(want, fmt.Sprintf("events[%d]: missing field %q", i, f))
		}
	}
	want = append(want, "… and 100 more problems")
	if diff := cmp.Diff(want, be.Details); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
	// At the cap exactly, no summary line.
	_, err = push.DecodeBody([]byte(body(slices.Repeat([]string{`{}`}, push.MaxDetails/4)...)), 100)
	if !errors.As(err, &be) || len(be.Details) != push.MaxDetails || strings.HasPrefix(be.Details[len(be.Details)-1], "…") {
		t.Errorf("at the cap: %v, details %q", err, be.Details)
	}
}

// TestDecodeBodyDeterministic: the same body gives the same error every
// time, whatever the order of map iteration.
func TestDecodeBodyDeterministic(t *testing.T) {
	t.Parallel()
	b := []byte(`{"d":1,"c":2,"b":3,"a":4,"events":[{"z":1,"y":2,"x":3}]}`)
	_, first := push.DecodeBody(b, 100)
	for range 50 {
		if _, err := push.DecodeBody(b, 100); err.Error() != first.Error() {
			t.Fatalf("DecodeBody gave %q, then %q", first, err)
		}
	}
}

func FuzzDecodeBody(f *testing.F) {
	seeds := []string{
		body(validEvent),
		body(validEvent, validEvent),
		`{"events":[]}`,
		body(`{"id":"e","entityType":"Todo","operation":"update","payload":null}`),
		body(`{"id":"evt-1","entityType":"Board","operation":"create","payload":{},"createdAt":1764064800000,` +
			`"tries":1,"lastError":"x","synced":true,"syncedAt":"2026-11-25T10:00:00+01:00","retryable":false,` +
			`"lastAttemptedAt":null,"entityKeyPath":["b1"]}`),
		``, `null`, `[]`, `{}`, `{"events":null}`, `{"events":{}}`, `{"events":[]}]`, `{"events":[]} {}`,
		`{"events":[],"x":1}`, `{"events":[1,null,"x"]}`, body(`{}`), body(`{"id":""}`),
		body(`{"id":"","entityType":"Todo","operation":"create","payload":{}}`),
		body(`{"id":1,"entityType":null,"operation":[],"payload":{},"tries":"1","createdAt":"nope"}`),
		`{"events":[{"id":"\u0000","entityType":"\ud800","operation":"create","payload":1e999}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		events, err := push.DecodeBody(b, 100)
		if err != nil {
			var be *push.BodyError
			if !errors.As(err, &be) {
				t.Fatalf("error %v (%T) is not a *BodyError", err, err)
			}
			if be.Msg == "" {
				t.Fatalf("BodyError without a message: %#v", be)
			}
			if events != nil {
				t.Fatalf("events %v returned along with an error", events)
			}
			return
		}
		if events == nil {
			t.Fatalf("neither events nor an error")
		}
		if !json.Valid(b) {
			t.Fatalf("accepted a body that is not JSON: %q", b)
		}
		for i, ev := range events {
			if ev.ID == "" {
				t.Fatalf("events[%d] has an empty id", i)
			}
			if !json.Valid(ev.Payload) {
				t.Fatalf("events[%d] payload %q is not JSON", i, ev.Payload)
			}
		}
	})
}

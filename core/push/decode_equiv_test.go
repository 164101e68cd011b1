package push_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/syncplane/syncplane/core/push"
)

// FuzzDecodeBodyEquivalence checks DecodeBody against oldDecodeBody, the
// implementation before the one-pass walk: the same events, or the same
// error, Details and their order included. With a small batch limit, a
// body that oldDecodeBody reads as more events than the limit (top level
// fine) is a *BatchTooLargeError instead.
func FuzzDecodeBodyEquivalence(f *testing.F) {
	seeds := []string{
		body(validEvent, validEvent, validEvent),
		body(validEvent), body(validEvent, validEvent), `{"events":[]}`, ` {"events" : [ ] } `,
		body(`{"id":"e","entityType":"Todo","operation":"update","payload":null}`),
		body(`{"id":"evt-1","entityType":"Board","operation":"create","payload":{},"createdAt":1764064800000,` +
			`"tries":1,"lastError":"x","synced":true,"syncedAt":"2026-11-25T10:00:00+01:00","retryable":false,` +
			`"lastAttemptedAt":null,"entityKeyPath":["b1"]}`),
		``, `null`, `[]`, `{}`, `{"events":null}`, `{"events":{}}`, `{"events":[]}]`, `{"events":[]} {}`,
		`{"events":[],"x":1}`, `{"events":[1,null,"x"]}`, `{"events":[null]}`, body(`{}`), body(`{"id":""}`),
		`{"events":[],"events":[]}`, `{"events":null,"events":[]}`, `{"events":[],"events":null}`, `{"\u0065vents":[]}`,
		body(`{"id":"","entityType":"Todo","operation":"create","payload":{}}`),
		body(`{"id":1,"entityType":null,"operation":[],"payload":{},"tries":"1","createdAt":"nope"}`),
		`{"events":[{"id":"\u0000","entityType":"\ud800","operation":"create","payload":1e999}]}`,
		body(`{"\u0069d":"e","entityType":"T","operation":"create","payload":1}`),
		body(`{"id":"a","id":"b","entityType":"T","operation":"create","payload":1}`),
		body(`{"id":"a~moved-1","entityType":"T","operation":"create","payload":1}`),
		body(`{"id":"a\"b\u00e9\ufffd","entityType":"T\n","operation":"cr\u0065ate","payload":[1, {"a" : "}"}]}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"tries":-0.5e-3,"createdAt":-1e400}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"tries":1e400}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"tries":123456789012345678901234567890}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"createdAt":"2026-11-25T10:00:00,5Z"}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"createdAt":"2026-11-25T24:00:00Z"}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"createdAt":"2026-11-25T1:00:00Z"}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"createdAt":"2026-11-25T10:00:00+24:00"}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"createdAt":"2026-11-25t10:00:00z"}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"createdAt":"2026-11-25T10:00:00.1234567891Z"}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"createdAt":"2026-11-25T10:00:00\u002e5Z"}`),
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"syncedAt":"2026-02-30T10:00:00Z"}`),
		"{\"events\":[{\"id\":\"\xff\",\"entityType\":\"\xe2\x82\",\"operation\":\"c\",\"payload\":\"\xff\"}]}",
		body(`{"id":"a","entityType":"T","operation":"create","payload":1,"synced":true,"retryable":false,"lastError":""}`),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const small = 2
		n := oldEventCount(in)
		if got, err := push.DecodeBody(bytes.Clone(in), small); n > small {
			var tl *push.BatchTooLargeError
			if !errors.As(err, &tl) || tl.Max != small || got != nil {
				t.Fatalf("DecodeBody(%q, %d) = %v, %v; want a *BatchTooLargeError (%d events)", in, small, got, err, n)
			}
		} else if errors.As(err, new(*push.BatchTooLargeError)) {
			t.Fatalf("DecodeBody(%q, %d) = %v with %d events", in, small, err, n)
		}

		b := bytes.Clone(in)
		wantEvents, wantErr := oldDecodeBody(b)
		gotEvents, gotErr := push.DecodeBody(b, 1<<20)
		// The events must not alias the body.
		for i := range b {
			b[i] = 'x'
		}
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("DecodeBody(%q) = %v, %v; want %v, %v", in, gotEvents, gotErr, wantEvents, wantErr)
		}
		if wantErr != nil {
			var want, got *push.BodyError
			if !errors.As(wantErr, &want) || !errors.As(gotErr, &got) || !reflect.DeepEqual(want, got) {
				t.Fatalf("DecodeBody(%q) error = %#v; want %#v", in, gotErr, wantErr)
			}
			if gotEvents != nil {
				t.Fatalf("DecodeBody(%q) returned events with an error", in)
			}
			return
		}
		if !sameEvents(wantEvents, gotEvents) {
			t.Fatalf("DecodeBody(%q) = %#v; want %#v", in, gotEvents, wantEvents)
		}
		for i := range gotEvents {
			// Appending to one payload must not overwrite another.
			_ = append(gotEvents[i].Payload, '!')
		}
		if !sameEvents(wantEvents, gotEvents) {
			t.Fatalf("appending to payloads changed events of %q", in)
		}
	})
}

// TestDecodeBodyPayloadsDoNotAlias: payloads are copies, capped so that
// appending to one leaves the next alone.
func TestDecodeBodyPayloadsDoNotAlias(t *testing.T) {
	t.Parallel()
	b := []byte(body(validEvent, withField(t, "payload", `[2]`)))
	events, err := push.DecodeBody(b, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	_ = append(events[0].Payload, "!!!!!!!!!!!!!"...)
	if string(events[0].Payload) != validPayload || string(events[1].Payload) != `[2]` {
		t.Errorf("payloads = %q, %q", events[0].Payload, events[1].Payload)
	}
}

// oldDecodeBody is DecodeBody as it was before the one-pass walk (two
// decodes of every field through encoding/json), kept as the reference,
// without a batch limit. Two rules came later and are added to it: an id
// with a NUL character is a body error, and Details are capped.
func oldDecodeBody(body []byte) ([]push.Event, error) {
	var fast map[string][]map[string]json.RawMessage
	if err := oldStrictUnmarshal(body, &fast); err == nil && len(fast) == 1 && fast["events"] != nil {
		return oldCheckEvents(fast["events"])
	}
	var top map[string]json.RawMessage
	if err := oldStrictUnmarshal(body, &top); err != nil {
		return nil, &push.BodyError{Msg: "malformed JSON: " + err.Error()}
	}
	if top == nil {
		return nil, &push.BodyError{Msg: `body must be an object {"events": [...]}`}
	}
	for _, k := range oldSortedKeys(top) {
		if k != "events" {
			return nil, &push.BodyError{Msg: fmt.Sprintf("unknown field %q in body", k)}
		}
	}
	raws, ok := oldRawEvents(top)
	if !ok {
		return nil, &push.BodyError{Msg: `missing field "events"`}
	}
	if raws == nil {
		return nil, &push.BodyError{Msg: `"events" must be an array`}
	}
	objs := make([]map[string]json.RawMessage, len(raws))
	for i, raw := range raws {
		if json.Unmarshal(raw, &objs[i]) != nil {
			objs[i] = nil
		}
	}
	return oldCheckEvents(objs)
}

// oldRawEvents is the events array of the top level (nil if it is not an
// array), and whether it has one.
func oldRawEvents(top map[string]json.RawMessage) ([]json.RawMessage, bool) {
	rawEvents, ok := top["events"]
	if !ok {
		return nil, false
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(rawEvents, &raws); err != nil {
		return nil, true
	}
	return raws, true
}

// oldEventCount is how many events oldDecodeBody reads from a body whose
// top level is right: -1 for any other body.
func oldEventCount(body []byte) int {
	var top map[string]json.RawMessage
	if oldStrictUnmarshal(body, &top) != nil || len(top) != 1 {
		return -1
	}
	if raws, _ := oldRawEvents(top); raws != nil {
		return len(raws)
	}
	return -1
}

var oldEnvelope = map[string]func(json.RawMessage) error{
	"id":              oldRequireString,
	"entityType":      oldRequireString,
	"operation":       oldRequireString,
	"payload":         func(json.RawMessage) error { return nil },
	"createdAt":       oldDateOrNull(false),
	"tries":           oldRequireNumber,
	"lastError":       oldStringOrNull,
	"synced":          oldRequireBool,
	"syncedAt":        oldDateOrNull(true),
	"retryable":       oldRequireBool,
	"lastAttemptedAt": oldDateOrNull(true),
	"entityKeyPath":   func(json.RawMessage) error { return nil },
}

var oldRequired = []string{"id", "entityType", "operation", "payload"}

func oldCheckEvents(objs []map[string]json.RawMessage) ([]push.Event, error) {
	events := make([]push.Event, len(objs))
	var details []string
	for i, fields := range objs {
		if fields == nil {
			details = append(details, fmt.Sprintf("events[%d]: must be an object", i))
			continue
		}
		ev, problems := oldCheckEvent(fields)
		for _, p := range problems {
			details = append(details, fmt.Sprintf("events[%d]: %s", i, p))
		}
		events[i] = ev
	}
	if len(details) > push.MaxDetails {
		details = append(details[:push.MaxDetails], fmt.Sprintf("… and %d more problems", len(details)-push.MaxDetails))
	}
	if len(details) > 0 {
		return nil, &push.BodyError{Msg: "invalid events", Details: details}
	}
	return events, nil
}

func oldCheckEvent(fields map[string]json.RawMessage) (push.Event, []string) {
	var problems []string
	for _, k := range oldSortedKeys(fields) {
		check, known := oldEnvelope[k]
		if !known {
			problems = append(problems, fmt.Sprintf("unknown field %q", k))
			continue
		}
		if err := check(fields[k]); err != nil {
			problems = append(problems, fmt.Sprintf("field %q: %v", k, err))
		}
	}
	for _, k := range oldRequired {
		if _, ok := fields[k]; !ok {
			problems = append(problems, fmt.Sprintf("missing field %q", k))
		}
	}
	var ev push.Event
	_ = json.Unmarshal(fields["id"], &ev.ID)
	_ = json.Unmarshal(fields["entityType"], &ev.EntityType)
	_ = json.Unmarshal(fields["operation"], &ev.Operation)
	ev.Payload = fields["payload"]
	if _, ok := fields["id"]; ok && ev.ID == "" && len(problems) == 0 {
		problems = append(problems, `field "id": must not be empty`)
	}
	if strings.Contains(ev.ID, push.MovedSuffix) {
		problems = append(problems, fmt.Sprintf(`field "id": must not contain %q (syncplane marks the entries of moves with it)`, push.MovedSuffix))
	}
	if strings.Contains(ev.ID, "\x00") {
		problems = append(problems, `field "id": must not contain the NUL character (U+0000)`)
	}
	return ev, problems
}

func oldStrictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if rest := bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

func oldIsNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func oldRequireString(raw json.RawMessage) error {
	var s string
	if json.Unmarshal(raw, &s) != nil || oldIsNull(raw) {
		return fmt.Errorf("must be a string")
	}
	return nil
}

func oldStringOrNull(raw json.RawMessage) error {
	if oldIsNull(raw) {
		return nil
	}
	return oldRequireString(raw)
}

func oldRequireNumber(raw json.RawMessage) error {
	var n float64
	if json.Unmarshal(raw, &n) != nil || oldIsNull(raw) {
		return fmt.Errorf("must be a number")
	}
	return nil
}

func oldRequireBool(raw json.RawMessage) error {
	var b bool
	if json.Unmarshal(raw, &b) != nil || oldIsNull(raw) {
		return fmt.Errorf("must be a boolean")
	}
	return nil
}

func oldDateOrNull(nullable bool) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		if oldIsNull(raw) {
			if nullable {
				return nil
			}
			return fmt.Errorf("must not be null")
		}
		var n float64
		if json.Unmarshal(raw, &n) == nil {
			return nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return fmt.Errorf("must be a date string")
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("must be an ISO-8601 date, got %q", s)
		}
		return nil
	}
}

func oldSortedKeys(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }

// sameEvents compares events as decoded, not whether DecodeBody marked
// their payloads as checked JSON.
func sameEvents(a, b []push.Event) bool {
	return cmp.Equal(a, b, cmpopts.IgnoreUnexported(push.Event{}))
}

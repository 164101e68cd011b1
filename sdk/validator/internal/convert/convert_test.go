package convert

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

func TestEventFromProto(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in      *validatorv1.Event
		want    Event
		wantErr string
	}{
		"full": {
			in: &validatorv1.Event{
				Id: "e1", Model: "Board", Operation: "create", Scope: "user:alice",
				KeyJson: `["b1", 2]`, PayloadJson: `{"name":"Home","n":3,"tags":["a"],"meta":{"x":null},"ok":true}`,
			},
			want: Event{
				ID: "e1", Model: "Board", Operation: "create", Scope: "user:alice",
				Key:     []any{"b1", float64(2)},
				Payload: map[string]any{"name": "Home", "n": float64(3), "tags": []any{"a"}, "meta": map[string]any{"x": nil}, "ok": true},
			},
		},
		"empty key and payload": {
			in:   &validatorv1.Event{Id: "e2", Model: "Todo", Operation: "delete"},
			want: Event{ID: "e2", Model: "Todo", Operation: "delete"},
		},
		"null payload": {
			in:   &validatorv1.Event{Id: "e3", PayloadJson: "null"},
			want: Event{ID: "e3"},
		},
		"nil event": {in: nil, want: Event{}},
		"key not an array": {
			in:      &validatorv1.Event{KeyJson: `{"id":1}`},
			wantErr: "key_json is not a JSON array",
		},
		"payload not an object": {
			in:      &validatorv1.Event{PayloadJson: `[1]`},
			wantErr: "payload_json is not a JSON object",
		},
		"payload not JSON": {
			in:      &validatorv1.Event{PayloadJson: `{`},
			wantErr: "payload_json is not a JSON object",
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			got, err := EventFromProto(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventsFromProtoNamesTheBadEvent(t *testing.T) {
	t.Parallel()
	_, err := EventsFromProto([]*validatorv1.Event{{Id: "ok"}, {Id: "bad", KeyJson: "x"}})
	if err == nil || !strings.Contains(err.Error(), "event 1 (bad)") {
		t.Fatalf("err = %v, want it to name event 1 (bad)", err)
	}
}

func TestEventRoundTrip(t *testing.T) {
	t.Parallel()
	in := []Event{
		{ID: "e1", Model: "Board", Operation: "update", Scope: "s", Key: []any{"b1"}, Payload: map[string]any{"name": "x", "n": 1.5}},
		{ID: "e2", Model: "Todo", Operation: "delete"},
	}
	pbs := make([]*validatorv1.Event, len(in))
	for i, ev := range in {
		pb, err := EventToProto(ev)
		if err != nil {
			t.Fatal(err)
		}
		pbs[i] = pb
	}
	got, err := EventsFromProto(pbs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if _, err := EventToProto(Event{Payload: map[string]any{"f": func() {}}}); err == nil {
		t.Error("EventToProto of an unencodable payload: want an error")
	}
}

func TestVerdicts(t *testing.T) {
	t.Parallel()
	in := []Verdict{{Allow: true}, {Allow: false, Message: "too long"}, {}, {Allow: true, Message: "ignored"}}
	got := VerdictsToProto(in)
	want := []*validatorv1.Verdict{
		{Allow: true},
		{Allow: false, Message: "too long"},
		{Allow: false, Message: DefaultRejectMessage},
		{Allow: true},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("VerdictsToProto (-want +got):\n%s", diff)
	}
	back := VerdictsFromProto(got)
	wantBack := []Verdict{{Allow: true}, {Message: "too long"}, {Message: DefaultRejectMessage}, {Allow: true}}
	if diff := cmp.Diff(wantBack, back); diff != "" {
		t.Errorf("VerdictsFromProto (-want +got):\n%s", diff)
	}
}

func TestInfoToProto(t *testing.T) {
	t.Parallel()
	got := InfoToProto("kanban-rules", "1.0.0", []string{"reader"})
	want := &validatorv1.InfoResponse{Name: "kanban-rules", Version: "1.0.0", Capabilities: []string{"reader"}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("InfoToProto (-want +got):\n%s", diff)
	}
}

func TestWhereToJSON(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   map[string]any
		want string
	}{
		"nil":    {nil, "{}"},
		"empty":  {map[string]any{}, "{}"},
		"fields": {map[string]any{"userId": "u1", "n": 2, "done": nil}, `{"done":null,"n":2,"userId":"u1"}`},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			got, err := WhereToJSON(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("WhereToJSON = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := WhereToJSON(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("WhereToJSON of a channel: want an error")
	}
}

func TestLimitToProto(t *testing.T) {
	t.Parallel()
	for in, want := range map[int]uint32{-1: 0, 0: 0, 1: 1, 1000: 1000, math.MaxInt: math.MaxUint32} {
		if got := LimitToProto(in); got != want {
			t.Errorf("LimitToProto(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestRecordsFromProto(t *testing.T) {
	t.Parallel()
	got, err := RecordsFromProto([]string{`{"id":"b1","n":1}`, `{}`})
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{{"id": "b1", "n": float64(1)}, {}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if got, err := RecordsFromProto(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("RecordsFromProto(nil) = %#v, %v; want an empty, non-nil slice", got, err)
	}
	for _, bad := range []string{`null`, `[1]`, `{`, `"s"`} {
		if _, err := RecordsFromProto([]string{`{}`, bad}); err == nil || !strings.Contains(err.Error(), "record 1") {
			t.Errorf("RecordsFromProto(%s): err = %v, want one naming record 1", bad, err)
		}
	}
}

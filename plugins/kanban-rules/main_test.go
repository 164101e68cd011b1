package main

import (
	"context"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/sdk/validator"
	"github.com/syncplane/syncplane/sdk/validatortest"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	records := validatortest.Records{
		"u1": {"Board": {{"id": "b1", "name": "Q4", "userId": "u1"}}},
		"u2": {"Board": {{"id": "b9", "name": "Taken elsewhere", "userId": "u2"}}},
	}
	board := func(id, user, name string) validator.Event {
		return validator.Event{ID: "e-" + id, Model: "Board", Operation: validator.Create, Scope: user,
			Key: []any{id}, Payload: map[string]any{"id": id, "name": name, "userId": user}}
	}
	todo := func(id, title string) validator.Event {
		return validator.Event{ID: "e-" + id, Model: "Todo", Operation: validator.Create, Scope: "u1",
			Key: []any{id}, Payload: map[string]any{"id": id, "title": title, "boardId": "b1"}}
	}
	tests := map[string]struct {
		events []validator.Event
		want   map[int]string // index → rejection message substring
	}{
		"case=allowed":            {[]validator.Event{board("b2", "u1", "Q1"), todo("t1", "short")}, nil},
		"case=empty-name":         {[]validator.Event{board("b2", "u1", "  ")}, map[int]string{0: "must not be empty"}},
		"case=taken-by-same-user": {[]validator.Event{board("b2", "u1", "Q4")}, map[int]string{0: `"Q4" exists already`}},
		"case=renaming-itself":    {[]validator.Event{board("b1", "u1", "Q4")}, nil},
		"case=other-users-name":   {[]validator.Event{board("b2", "u1", "Taken elsewhere")}, nil},
		"case=twice-in-batch":     {[]validator.Event{board("b2", "u1", "New"), board("b3", "u1", "New")}, map[int]string{1: "already in this batch"}},
		"case=long-title":         {[]validator.Event{todo("t1", strings.Repeat("é", MaxTitle+1)), todo("t2", strings.Repeat("é", MaxTitle))}, map[int]string{0: "201 characters"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := validatortest.Run(t, validator.Func(Check), validatortest.Request{Tenant: "demo", Subject: "u1", Events: tc.events, Records: records})
			got := res.Rejections()
			if len(got) != len(tc.want) {
				t.Fatalf("rejections %v, want %v", got, tc.want)
			}
			for i, sub := range tc.want {
				if !strings.Contains(got[i], sub) {
					t.Errorf("event %d: %q, want it to mention %q", i, got[i], sub)
				}
			}
		})
	}
	// A read failure is "could not decide", never an allow.
	_, err := validatortest.Check(context.Background(), validator.Func(Check), validatortest.Request{Events: []validator.Event{board("b2", "u1", "Q1")}, Reader: failingReader{}})
	if err == nil {
		t.Error("a failing read did not fail the call")
	}
}

type failingReader struct{}

func (failingReader) Find(context.Context, string, map[string]any, int) ([]map[string]any, error) {
	return nil, context.DeadlineExceeded
}
func (failingReader) Count(context.Context, string, map[string]any) (int64, error) {
	return 0, context.DeadlineExceeded
}

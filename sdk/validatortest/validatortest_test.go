package validatortest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/sdk/validator"
	"github.com/syncplane/syncplane/sdk/validatortest"
)

// boardRules is a sample validator: board names non-empty and unique per
// user (through the host reader), todo titles at most 200 characters.
func boardRules(ctx context.Context, req *validator.Request) (*validator.Response, error) {
	res := validator.Allow(req)
	for i, ev := range req.Events {
		switch ev.Model {
		case "Board":
			if ev.Operation == validator.Delete {
				continue
			}
			name, _ := ev.Payload["name"].(string)
			if name == "" {
				res.Reject(i, "board name must not be empty")
				continue
			}
			recs, err := req.Find(ctx, "Board", map[string]any{"userId": ev.Payload["userId"], "name": name}, 10)
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				if r["id"] != ev.Key[0] {
					res.Reject(i, "a board named %q exists", name)
					break
				}
			}
		case "Todo":
			if title, _ := ev.Payload["title"].(string); len(title) > 200 {
				res.Reject(i, "todo title is %d characters, at most 200", len(title))
			}
		}
	}
	return res, nil
}

func board(id, user, name string) validator.Event {
	return validator.Event{
		ID: "ev-" + id, Model: "Board", Operation: validator.Create, Scope: "user:" + user,
		Key: []any{id}, Payload: map[string]any{"id": id, "userId": user, "name": name},
	}
}

func TestRunSampleValidator(t *testing.T) {
	t.Parallel()
	records := validatortest.Records{
		"user:alice": {"Board": {{"id": "b1", "userId": "alice", "name": "Home"}}},
		"user:bob":   {"Board": {{"id": "b2", "userId": "bob", "name": "Work"}}},
	}
	tests := map[string]struct {
		events []validator.Event
		want   map[int]string
	}{
		"all allowed": {
			events: []validator.Event{board("b3", "alice", "Garden")},
		},
		"empty name": {
			events: []validator.Event{board("b3", "alice", ""), board("b4", "alice", "Ok")},
			want:   map[int]string{0: "board name must not be empty"},
		},
		"duplicate in the same scope": {
			events: []validator.Event{board("b3", "alice", "Home")},
			want:   map[int]string{0: `a board named "Home" exists`},
		},
		"renaming a board to its own name": {
			events: []validator.Event{{ID: "e", Model: "Board", Operation: validator.Update, Scope: "user:alice",
				Key: []any{"b1"}, Payload: map[string]any{"id": "b1", "userId": "alice", "name": "Home"}}},
		},
		"another scope's board is invisible": {
			// bob's "Work" is not in alice's scope, even with a where
			// clause naming bob.
			events: []validator.Event{board("b3", "alice", "Work"), {
				ID: "e", Model: "Board", Operation: validator.Create, Scope: "user:alice",
				Key: []any{"b5"}, Payload: map[string]any{"id": "b5", "userId": "bob", "name": "Work"},
			}},
		},
		"long todo title": {
			events: []validator.Event{{Model: "Todo", Operation: validator.Create, Scope: "user:alice",
				Payload: map[string]any{"title": strings.Repeat("x", 201)}}},
			want: map[int]string{0: "todo title is 201 characters, at most 200"},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			res := validatortest.Run(t, validator.Func(boardRules), validatortest.Request{
				Tenant: "kanban", Subject: "alice", Events: tc.events, Records: records,
			})
			if diff := cmp.Diff(tc.want, res.Rejections()); diff != "" {
				t.Errorf("rejections (-want +got):\n%s", diff)
			}
			if len(res.Verdicts) != len(tc.events) {
				t.Errorf("%d verdicts for %d events", len(res.Verdicts), len(tc.events))
			}
		})
	}
}

func TestReaderRestrictsToTheBatchScopes(t *testing.T) {
	t.Parallel()
	records := validatortest.Records{
		"s1": {"Board": {{"id": "a", "n": 1}, {"id": "b", "n": 2}}, "Todo": {{"id": "t"}}},
		"s2": {"Board": {{"id": "c", "n": 1}}},
		"s3": {"Board": {{"id": "d", "n": 1}}},
	}
	type read struct {
		model string
		where map[string]any
		limit int
	}
	tests := map[string]struct {
		scopes []string
		read   read
		want   []string
	}{
		"one scope":          {[]string{"s1"}, read{"Board", nil, 0}, []string{"a", "b"}},
		"two scopes":         {[]string{"s2", "s1"}, read{"Board", nil, 0}, []string{"a", "b", "c"}},
		"where int vs float": {[]string{"s1", "s3"}, read{"Board", map[string]any{"n": 1}, 0}, []string{"a", "d"}},
		"limit":              {[]string{"s1", "s2"}, read{"Board", nil, 2}, []string{"a", "b"}},
		"missing is null":    {[]string{"s1"}, read{"Board", map[string]any{"x": nil}, 0}, []string{"a", "b"}},
		"no match":           {[]string{"s1"}, read{"Board", map[string]any{"id": "c"}, 0}, []string{}},
		"unknown model":      {[]string{"s1"}, read{"Nope", nil, 0}, []string{}},
		"unknown scope":      {[]string{"s9"}, read{"Board", nil, 0}, []string{}},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			var evs []validator.Event
			for _, s := range tc.scopes {
				evs = append(evs, validator.Event{Model: "X", Scope: s})
			}
			var found []string
			var count int64
			v := validator.Func(func(ctx context.Context, req *validator.Request) (*validator.Response, error) {
				recs, err := req.Find(ctx, tc.read.model, tc.read.where, tc.read.limit)
				if err != nil {
					return nil, err
				}
				found = []string{}
				for _, r := range recs {
					found = append(found, r["id"].(string))
					r["id"] = "mutated" // must not change Records
				}
				if count, err = req.Count(ctx, tc.read.model, tc.read.where); err != nil {
					return nil, err
				}
				return validator.Allow(req), nil
			})
			validatortest.Run(t, v, validatortest.Request{Events: evs, Records: records})
			if diff := cmp.Diff(tc.want, found); diff != "" {
				t.Errorf("found (-want +got):\n%s", diff)
			}
			if tc.read.limit == 0 && count != int64(len(tc.want)) {
				t.Errorf("count = %d, want %d", count, len(tc.want))
			}
			if records["s1"]["Board"][0]["id"] != "a" {
				t.Error("the validator changed Records through a found record")
			}
		})
	}
}

func TestReaderLimits(t *testing.T) {
	t.Parallel()
	var recs []map[string]any
	for i := range 1500 {
		recs = append(recs, map[string]any{"i": i})
	}
	counts := map[int]int{}
	v := validator.Func(func(ctx context.Context, req *validator.Request) (*validator.Response, error) {
		for _, limit := range []int{-1, 0, 5, 1000, 5000} {
			got, err := req.Find(ctx, "R", nil, limit)
			if err != nil {
				return nil, err
			}
			counts[limit] = len(got)
		}
		return validator.Allow(req), nil
	})
	validatortest.Run(t, v, validatortest.Request{
		Events:  []validator.Event{{Scope: "s"}},
		Records: validatortest.Records{"s": {"R": recs}},
	})
	if diff := cmp.Diff(map[int]int{-1: 100, 0: 100, 5: 5, 1000: 1000, 5000: 1000}, counts); diff != "" {
		t.Errorf("records per limit (-want +got):\n%s", diff)
	}
}

func TestCheckDecodesLikeTheWire(t *testing.T) {
	t.Parallel()
	in := []validator.Event{{ID: "e", Key: []any{7}, Payload: map[string]any{"n": 3, "tags": []string{"a"}}}}
	var got []validator.Event
	v := validator.Func(func(_ context.Context, req *validator.Request) (*validator.Response, error) {
		got = req.Events
		return validator.Allow(req), nil
	})
	validatortest.Run(t, v, validatortest.Request{Events: in})
	want := []validator.Event{{ID: "e", Key: []any{float64(7)}, Payload: map[string]any{"n": float64(3), "tags": []any{"a"}}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events the validator saw (-want +got):\n%s", diff)
	}
	if in[0].Payload["n"] != 3 {
		t.Error("Check changed the caller's events")
	}
}

func TestCheckFailures(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	oneEvent := []validator.Event{{Model: "Board"}}
	tests := map[string]struct {
		fn     validator.Func
		req    validatortest.Request
		target error
		msg    string
	}{
		"error": {
			fn:     func(context.Context, *validator.Request) (*validator.Response, error) { return nil, errBoom },
			target: errBoom,
		},
		"nil response": {
			fn:     func(context.Context, *validator.Request) (*validator.Response, error) { return nil, nil },
			target: validatortest.ErrInvalidResponse,
		},
		"short response": {
			fn: func(context.Context, *validator.Request) (*validator.Response, error) {
				return &validator.Response{}, nil
			},
			target: validatortest.ErrInvalidResponse,
		},
		"panic": {
			fn:  func(context.Context, *validator.Request) (*validator.Response, error) { panic("kaboom") },
			msg: "validator panicked: kaboom",
		},
		"reader error": {
			fn: func(ctx context.Context, req *validator.Request) (*validator.Response, error) {
				_, err := req.Count(ctx, "Board", nil)
				return nil, err
			},
			req:    validatortest.Request{Reader: failingReader{errBoom}},
			target: errBoom,
		},
		"unencodable payload": {
			fn: func(_ context.Context, req *validator.Request) (*validator.Response, error) {
				return validator.Allow(req), nil
			},
			req: validatortest.Request{Events: []validator.Event{{Payload: map[string]any{"f": func() {}}}}},
			msg: "event 0 payload",
		},
		"unencodable record": {
			fn: func(_ context.Context, req *validator.Request) (*validator.Response, error) {
				return validator.Allow(req), nil
			},
			req: validatortest.Request{Records: validatortest.Records{"": {"Board": {{"c": make(chan int)}}}}},
			msg: "record /Board/0",
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			if req.Events == nil {
				req.Events = oneEvent
			}
			res, err := validatortest.Check(t.Context(), tc.fn, req)
			if err == nil {
				t.Fatalf("Check = %v, want an error", res)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("err = %v, want %v", err, tc.target)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want it to contain %q", err, tc.msg)
			}
		})
	}
	if _, err := validatortest.Check(t.Context(), nil, validatortest.Request{}); err == nil {
		t.Error("Check with a nil validator: want an error")
	}
}

type failingReader struct{ err error }

func (f failingReader) Find(context.Context, string, map[string]any, int) ([]map[string]any, error) {
	return nil, f.err
}
func (f failingReader) Count(context.Context, string, map[string]any) (int64, error) { return 0, f.err }

// fatalTB records Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestRunFailsTheTest(t *testing.T) {
	t.Parallel()
	tb := &fatalTB{TB: t}
	validatortest.Run(tb, validator.Func(func(context.Context, *validator.Request) (*validator.Response, error) {
		return nil, errors.New("no")
	}), validatortest.Request{})
	if !strings.Contains(tb.msg, "no") {
		t.Errorf("Run did not fail the test with the error: %q", tb.msg)
	}
}

func TestRejections(t *testing.T) {
	t.Parallel()
	r := &validatortest.Result{Verdicts: []validator.Verdict{{Allow: true}, {Message: "x"}, {}}}
	if diff := cmp.Diff(map[int]string{1: "x", 2: ""}, r.Rejections()); diff != "" {
		t.Errorf("Rejections (-want +got):\n%s", diff)
	}
	if got := (&validatortest.Result{Verdicts: []validator.Verdict{{Allow: true}}}).Rejections(); got != nil {
		t.Errorf("Rejections of all allowed = %v, want nil", got)
	}
}

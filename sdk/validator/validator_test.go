package validator_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/sdk/validator"
)

func events(n int) []validator.Event { return make([]validator.Event, n) }

func TestAllow(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 3} {
		res := validator.Allow(&validator.Request{Events: events(n)})
		want := make([]validator.Verdict, n)
		for i := range want {
			want[i].Allow = true
		}
		if diff := cmp.Diff(want, res.Verdicts); diff != "" {
			t.Errorf("n=%d: Allow (-want +got):\n%s", n, diff)
		}
	}
}

func TestReject(t *testing.T) {
	t.Parallel()
	res := validator.Allow(&validator.Request{Events: events(4)})
	res.Reject(1, "title is %d characters, at most %d", 201, 200)
	res.Reject(2, "plain message")
	res.Reject(3, "first")
	res.Reject(3, "second")
	want := []validator.Verdict{
		{Allow: true},
		{Message: "title is 201 characters, at most 200"},
		{Message: "plain message"},
		{Message: "second"},
	}
	if diff := cmp.Diff(want, res.Verdicts); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

func TestRejectOutOfRangePanics(t *testing.T) {
	t.Parallel()
	for _, i := range []int{-1, 2} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Reject(%d) on 2 events: want a panic", i)
				}
			}()
			validator.Allow(&validator.Request{Events: events(2)}).Reject(i, "x")
		}()
	}
}

func TestZeroVerdictRejects(t *testing.T) {
	t.Parallel()
	if (validator.Verdict{}).Allow {
		t.Error("the zero Verdict allows; it must reject (fail closed)")
	}
}

func TestFunc(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	var got *validator.Request
	v := validator.Func(func(_ context.Context, req *validator.Request) (*validator.Response, error) {
		got = req
		return nil, errBoom
	})
	req := &validator.Request{Tenant: "t1"}
	if _, err := v.Validate(t.Context(), req); !errors.Is(err, errBoom) {
		t.Errorf("err = %v, want %v", err, errBoom)
	}
	if got != req {
		t.Error("Func did not receive the request")
	}
}

func TestWithInfo(t *testing.T) {
	t.Parallel()
	info := validator.Info{Name: "kanban-rules", Version: "1.0.0", Capabilities: []string{"reader"}}
	v := validator.WithInfo(validator.Func(func(context.Context, *validator.Request) (*validator.Response, error) {
		return &validator.Response{}, nil
	}), info)
	i, ok := v.(interface{ Info() validator.Info })
	if !ok {
		t.Fatal("WithInfo's result has no Info method")
	}
	if diff := cmp.Diff(info, i.Info()); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
	if res, err := v.Validate(t.Context(), &validator.Request{}); err != nil || res == nil {
		t.Errorf("Validate through WithInfo = %v, %v", res, err)
	}
}

// fakeReader is a validator.Reader made of funcs.
type fakeReader struct {
	find  func(ctx context.Context, model string, where map[string]any, limit int) ([]map[string]any, error)
	count func(ctx context.Context, model string, where map[string]any) (int64, error)
}

func (f fakeReader) Find(ctx context.Context, model string, where map[string]any, limit int) ([]map[string]any, error) {
	return f.find(ctx, model, where, limit)
}

func (f fakeReader) Count(ctx context.Context, model string, where map[string]any) (int64, error) {
	return f.count(ctx, model, where)
}

func TestRequestReads(t *testing.T) {
	t.Parallel()
	t.Run("reader=none", func(t *testing.T) {
		t.Parallel()
		req := &validator.Request{}
		if _, err := req.Find(t.Context(), "Board", nil, 1); !errors.Is(err, validator.ErrNoReader) {
			t.Errorf("Find err = %v, want ErrNoReader", err)
		}
		if _, err := req.Count(t.Context(), "Board", nil); !errors.Is(err, validator.ErrNoReader) {
			t.Errorf("Count err = %v, want ErrNoReader", err)
		}
	})
	t.Run("reader=fake", func(t *testing.T) {
		t.Parallel()
		req := &validator.Request{Reader: fakeReader{
			find: func(_ context.Context, model string, where map[string]any, limit int) ([]map[string]any, error) {
				return []map[string]any{{"model": model, "name": where["name"], "limit": limit}}, nil
			},
			count: func(_ context.Context, model string, where map[string]any) (int64, error) {
				return int64(len(model) + len(where)), nil
			},
		}}
		recs, err := req.Find(t.Context(), "Board", map[string]any{"name": "x"}, 7)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]map[string]any{{"model": "Board", "name": "x", "limit": 7}}, recs); diff != "" {
			t.Errorf("Find (-want +got):\n%s", diff)
		}
		if n, err := req.Count(t.Context(), "Board", map[string]any{"a": 1}); err != nil || n != 6 {
			t.Errorf("Count = %d, %v; want 6", n, err)
		}
	})
}

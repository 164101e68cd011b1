package validatortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/syncplane/syncplane/sdk/validator"
)

// Records are a tenant's committed records, by scope and then by model:
//
//	Records{"user:alice": {"Board": {{"id": "b1", "name": "Home"}}}}
//
// Each record must encode to a JSON object.
type Records map[string]map[string][]map[string]any

// Request is a batch to validate.
type Request struct {
	// Tenant and Subject are passed on as they are.
	Tenant, Subject string
	// Events are the batch's events; their Scope decides which Records the
	// reader sees.
	Events []validator.Event
	// Records are what the host reader serves, restricted to the scopes of
	// Events like the real host. Nil: a reader over no records.
	Records Records
	// Reader, when set, replaces the reader over Records, e.g. to simulate
	// a failing host.
	Reader validator.Reader
}

// Result is the validator's answer.
type Result struct {
	// Verdicts has one verdict per event, in order, as the validator
	// returned them.
	Verdicts []validator.Verdict
}

// Rejections returns the rejected events' messages by event index, or nil
// when every event is allowed.
func (r *Result) Rejections() map[int]string {
	var m map[int]string
	for i, v := range r.Verdicts {
		if !v.Allow {
			if m == nil {
				m = map[int]string{}
			}
			m[i] = v.Message
		}
	}
	return m
}

// Run is Check for tests: it fails the test when the validator fails (an
// error, a panic, a nil or short response).
func Run(t testing.TB, v validator.Validator, req Request) *Result {
	t.Helper()
	res, err := Check(t.Context(), v, req)
	if err != nil {
		t.Fatalf("validatortest: %v", err)
	}
	return res
}

// ErrInvalidResponse is returned (wrapped) by Check for a nil response or
// one without exactly one verdict per event.
var ErrInvalidResponse = errors.New("invalid response")

// Check validates req with v as the host would. It returns an error where
// the host would see a failed call (and fail the batch closed): v returned
// an error (wrapped), panicked, or answered nil or with a wrong number of
// verdicts (ErrInvalidResponse). An event or record that does not encode to
// JSON is an error too.
func Check(ctx context.Context, v validator.Validator, req Request) (*Result, error) {
	if v == nil {
		return nil, errors.New("nil validator")
	}
	vreq := &validator.Request{Tenant: req.Tenant, Subject: req.Subject, Events: make([]validator.Event, len(req.Events))}
	for i, ev := range req.Events {
		var err error
		if ev.Key, err = roundTrip(ev.Key); err != nil {
			return nil, fmt.Errorf("event %d key: %w", i, err)
		}
		if ev.Payload, err = roundTrip(ev.Payload); err != nil {
			return nil, fmt.Errorf("event %d payload: %w", i, err)
		}
		vreq.Events[i] = ev
	}
	vreq.Reader = req.Reader
	if vreq.Reader == nil {
		r, err := newMemReader(req.Records, req.Events)
		if err != nil {
			return nil, err
		}
		vreq.Reader = r
	}

	vres, err := call(ctx, v, vreq)
	switch {
	case err != nil:
		return nil, err
	case vres == nil:
		return nil, fmt.Errorf("validator returned no response: %w", ErrInvalidResponse)
	case len(vres.Verdicts) != len(req.Events):
		return nil, fmt.Errorf("validator returned %d verdicts for %d events: %w", len(vres.Verdicts), len(req.Events), ErrInvalidResponse)
	}
	return &Result{Verdicts: slices.Clone(vres.Verdicts)}, nil
}

// call calls v, turning a panic into an error that carries the stack.
func call(ctx context.Context, v validator.Validator, req *validator.Request) (res *validator.Response, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("validator panicked: %v\n%s", r, debug.Stack())
		}
	}()
	res, err = v.Validate(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("validator failed: %w", err)
	}
	return res, nil
}

// roundTrip encodes v to JSON and decodes it back, as the wire does; nil
// stays nil.
func roundTrip[T []any | map[string]any](v T) (T, error) {
	var out T
	if reflect.ValueOf(v).IsNil() {
		return out, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return out, err
	}
	err = json.Unmarshal(b, &out)
	return out, err
}

// Host read limits, as the host applies them.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// memReader is the host reader over Records, restricted to some scopes.
type memReader struct {
	// records of the visible scopes, by model, in scope order then in the
	// order given; decoded from JSON.
	records map[string][]map[string]any
}

func newMemReader(all Records, evs []validator.Event) (*memReader, error) {
	var scopes []string
	for _, ev := range evs {
		if !slices.Contains(scopes, ev.Scope) {
			scopes = append(scopes, ev.Scope)
		}
	}
	slices.Sort(scopes)
	r := &memReader{records: map[string][]map[string]any{}}
	for _, scope := range scopes {
		for model, recs := range all[scope] {
			for i, rec := range recs {
				rec, err := roundTrip(rec)
				if err != nil || rec == nil {
					if err == nil {
						err = errors.New("nil record")
					}
					return nil, fmt.Errorf("record %s/%s/%d: %w", scope, model, i, err)
				}
				r.records[model] = append(r.records[model], rec)
			}
		}
	}
	return r, nil
}

// Find returns copies of the matching records.
func (r *memReader) Find(ctx context.Context, model string, where map[string]any, limit int) ([]map[string]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case limit <= 0:
		limit = defaultLimit
	case limit > maxLimit:
		limit = maxLimit
	}
	match, err := matcher(where)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, rec := range r.records[model] {
		if len(out) == limit {
			break
		}
		if match(rec) {
			cp, err := roundTrip(rec)
			if err != nil {
				return nil, err
			}
			out = append(out, cp)
		}
	}
	return out, nil
}

// Count counts the matching records.
func (r *memReader) Count(ctx context.Context, model string, where map[string]any) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	match, err := matcher(where)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, rec := range r.records[model] {
		if match(rec) {
			n++
		}
	}
	return n, nil
}

// matcher returns a test for records whose fields equal every field of
// where, compared as JSON values (a missing field equals null).
func matcher(where map[string]any) (func(map[string]any) bool, error) {
	w, err := roundTrip(where)
	if err != nil {
		return nil, fmt.Errorf("where: %w", err)
	}
	return func(rec map[string]any) bool {
		for k, want := range w {
			if !reflect.DeepEqual(rec[k], want) {
				return false
			}
		}
		return true
	}, nil
}

var _ validator.Reader = (*memReader)(nil)

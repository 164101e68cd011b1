package validator

import (
	"context"
	"errors"
	"fmt"
)

// Operation is what an event does to its record.
type Operation string

// The operations of a pushed event.
const (
	Create Operation = "create"
	Update Operation = "update"
	Delete Operation = "delete"
)

// Event is one pushed event, after schema validation, scope resolution and
// the policy accepted it.
//
// Key and Payload are decoded from JSON with encoding/json's defaults:
// objects are map[string]any, arrays []any, every number float64 (integers
// beyond 2^53 lose precision), strings string, booleans bool, null nil. So
// test a number with v.(float64), not v.(int).
type Event struct {
	// ID is the client's outbox event id.
	ID string
	// Model is the model (table) name, e.g. "Board".
	Model string
	// Operation is Create, Update or Delete.
	Operation Operation
	// Key holds the primary key values, in the model's key order.
	Key []any
	// Payload is the validated record: for a create or update the record as
	// it will be written; for a delete the stored record (or what the client
	// sent). It may be nil.
	Payload map[string]any
	// Scope is the scope the event resolved to (e.g. the owning user's).
	Scope string
}

// ErrNoReader is returned by Request.Find and Request.Count when the host
// offers no read service for this call.
var ErrNoReader = errors.New("validator: the host offers no read service")

// Reader reads the tenant's committed records. Serve connects Request.Reader
// to the host's read service; validatortest fills it with records held in
// memory. The host restricts every read to the tenant of the request and to
// the scopes of its events: records of other tenants or scopes are never
// seen, whatever the where clause says.
type Reader interface {
	// Find returns at most limit records of model whose fields equal every
	// field of where (compared as JSON values; nil or empty matches every
	// record). A limit ≤ 0 means the host's default (100); the host caps it
	// at 1000.
	Find(ctx context.Context, model string, where map[string]any, limit int) ([]map[string]any, error)
	// Count returns how many records of model match where.
	Count(ctx context.Context, model string, where map[string]any) (int64, error)
}

// Request is one pushed batch, as the validator sees it.
type Request struct {
	// Tenant is the tenant whose validator is called.
	Tenant string
	// Subject is the authenticated user who pushed the batch.
	Subject string
	// Events are the events to decide, in push order; a Response has one
	// verdict per event, in the same order.
	Events []Event
	// Reader reads the tenant's committed records within the scopes of
	// Events; nil when the host offers none. Prefer the Find and Count
	// methods, which handle nil. It is valid only while Validate runs.
	Reader Reader
}

// Find reads committed records of model that match where, through the
// host's read service (see Reader). It returns ErrNoReader when the host
// offers none. Records are decoded like Event.Payload.
func (r *Request) Find(ctx context.Context, model string, where map[string]any, limit int) ([]map[string]any, error) {
	if r.Reader == nil {
		return nil, ErrNoReader
	}
	return r.Reader.Find(ctx, model, where, limit)
}

// Count counts committed records of model that match where, through the
// host's read service (see Reader). It returns ErrNoReader when the host
// offers none.
func (r *Request) Count(ctx context.Context, model string, where map[string]any) (int64, error) {
	if r.Reader == nil {
		return 0, ErrNoReader
	}
	return r.Reader.Count(ctx, model, where)
}

// Verdict is the decision on one event. The zero Verdict rejects (fail
// closed).
type Verdict struct {
	// Allow lets the event be written.
	Allow bool
	// Message tells the client why the event is rejected
	// (CUSTOM_VALIDATION_FAILED); ignored when Allow is true. An empty
	// message is sent as "rejected by the tenant's validator".
	Message string
}

// Response is a validator's answer to a Request: exactly one verdict per
// event, in the order of Request.Events. Build it with Allow and Reject. A
// nil Response or one with the wrong number of verdicts is a failure of the
// validator, never a partial allow: the host retries the batch later.
type Response struct {
	Verdicts []Verdict
}

// Allow returns a Response that allows every event of req.
func Allow(req *Request) *Response {
	vs := make([]Verdict, len(req.Events))
	for i := range vs {
		vs[i].Allow = true
	}
	return &Response{Verdicts: vs}
}

// Reject rejects event i (an index into Request.Events) with a message,
// formatted by fmt.Sprintf when args are given. Rejecting an event twice
// keeps the last message. It panics if i is out of range.
func (r *Response) Reject(i int, format string, args ...any) {
	if i < 0 || i >= len(r.Verdicts) {
		panic(fmt.Sprintf("validator: Reject(%d) on a response with %d verdicts", i, len(r.Verdicts)))
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	r.Verdicts[i] = Verdict{Allow: false, Message: msg}
}

// Validator decides a batch of events. It is called concurrently for
// different batches. Returning an error (or panicking) means the validator
// could not decide: no event of the batch is written and the client retries
// later. A rejection is not an error: it is a Verdict.
type Validator interface {
	Validate(ctx context.Context, req *Request) (*Response, error)
}

// Func adapts a function to a Validator.
type Func func(ctx context.Context, req *Request) (*Response, error)

// Validate calls f.
func (f Func) Validate(ctx context.Context, req *Request) (*Response, error) { return f(ctx, req) }

// Info describes a validator plugin to the host (the Info RPC, shown by
// `syncplane plugin verify`). A Validator that also has a method
//
//	Info() Info
//
// answers the Info RPC with it; otherwise the RPC is Unimplemented, which the
// host accepts. WithInfo attaches one to any Validator.
type Info struct {
	// Name of the plugin, e.g. "kanban-rules".
	Name string
	// Version of the plugin, e.g. "1.2.0".
	Version string
	// Capabilities are free-form feature names, e.g. "reader" for a
	// validator that reads committed records.
	Capabilities []string
}

// WithInfo returns v answering the Info RPC with info.
func WithInfo(v Validator, info Info) Validator { return withInfo{v, info} }

type withInfo struct {
	Validator
	info Info
}

func (w withInfo) Info() Info { return w.info }

// infoer is the optional interface behind the Info RPC.
type infoer interface{ Info() Info }

var (
	_ Validator = Func(nil)
	_ infoer    = withInfo{}
)

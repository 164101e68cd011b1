package pluginhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

// Limits of a Find, as the contract states.
const (
	defaultFindLimit = 100
	maxFindLimit     = 1000
)

// callTable maps the call ids of the Validate calls in flight to what
// their reads may see.
type callTable struct {
	mu sync.Mutex
	m  map[string]activeCall
}

type activeCall struct {
	scopes []string
	ctx    context.Context // the Validate call's: reads end with it
}

// open registers a call reading scopes until end is called.
func (t *callTable) open(ctx context.Context, scopes []string) (id string, end func()) {
	id = rand.Text() // 128 random bits
	t.mu.Lock()
	t.m[id] = activeCall{scopes: scopes, ctx: ctx}
	t.mu.Unlock()
	return id, func() {
		t.mu.Lock()
		delete(t.m, id)
		t.mu.Unlock()
	}
}

// bind looks the call up and returns a context that ends with both the
// read's and the call's.
func (t *callTable) bind(ctx context.Context, id string) (activeCall, context.Context, func(), error) {
	t.mu.Lock()
	call, ok := t.m[id]
	t.mu.Unlock()
	if !ok || id == "" {
		return activeCall{}, nil, nil, status.Error(codes.PermissionDenied, "unknown or expired call_id: reads are allowed only during the Validate call that sent the id")
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(call.ctx, cancel)
	return call, ctx, func() { stop(); cancel() }, nil
}

// readerServer serves validatorv1.HostReader to a plugin process with the
// host's Reader, restricted to the scopes of the calling batch.
type readerServer struct {
	validatorv1.UnimplementedHostReaderServer
	h *Host
}

func (s *readerServer) Find(ctx context.Context, req *validatorv1.FindRequest) (*validatorv1.FindResponse, error) {
	call, ctx, done, err := s.h.calls.bind(ctx, req.GetCallId())
	if err != nil {
		return nil, err
	}
	defer done()
	where, err := parseRead(req.GetModel(), req.GetWhereJson())
	if err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultFindLimit
	}
	limit = min(limit, maxFindLimit)
	recs, err := s.h.reader.Find(ctx, slices.Clone(call.scopes), req.GetModel(), where, limit)
	if err != nil {
		return nil, s.readError(ctx, "find", req.GetModel(), err)
	}
	recs = recs[:min(len(recs), limit)]
	res := &validatorv1.FindResponse{RecordsJson: make([]string, len(recs))}
	for i, r := range recs {
		res.RecordsJson[i] = string(r)
	}
	return res, nil
}

func (s *readerServer) Count(ctx context.Context, req *validatorv1.CountRequest) (*validatorv1.CountResponse, error) {
	call, ctx, done, err := s.h.calls.bind(ctx, req.GetCallId())
	if err != nil {
		return nil, err
	}
	defer done()
	where, err := parseRead(req.GetModel(), req.GetWhereJson())
	if err != nil {
		return nil, err
	}
	n, err := s.h.reader.Count(ctx, slices.Clone(call.scopes), req.GetModel(), where)
	if err != nil {
		return nil, s.readError(ctx, "count", req.GetModel(), err)
	}
	return &validatorv1.CountResponse{Count: n}, nil
}

// readError hides the Reader's error (it may describe the database) from
// the plugin and logs it.
func (s *readerServer) readError(ctx context.Context, op, model string, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	s.h.log.Warn("validator plugin read failed", "op", op, "model", model, "error", err)
	return status.Errorf(codes.Internal, "%s %s failed", op, model)
}

// parseRead checks a read's model and decodes its where: a JSON object of
// field → scalar value (empty: every record). Numbers stay json.Number,
// the text the plugin sent: a float64 would round a BigInt beyond 2^53
// (and a Decimal's digits) before the filter is validated.
func parseRead(model, whereJSON string) (map[string]any, error) {
	if model == "" {
		return nil, status.Error(codes.InvalidArgument, "model is required")
	}
	if len(bytes.TrimSpace([]byte(whereJSON))) == 0 {
		return map[string]any{}, nil
	}
	var where map[string]any
	dec := json.NewDecoder(strings.NewReader(whereJSON))
	dec.UseNumber()
	if err := dec.Decode(&where); err != nil || where == nil || dec.Decode(new(json.RawMessage)) != io.EOF {
		return nil, status.Error(codes.InvalidArgument, "where_json must be a JSON object")
	}
	for k, v := range where {
		switch v.(type) {
		case nil, string, json.Number, bool:
		default:
			return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("where_json: %q must be a string, number, boolean or null", k))
		}
	}
	return where, nil
}

package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/syncplane/syncplane/core/pluginhost"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/store"
)

// reader serves a validator plugin's reads: the tenant's committed records,
// restricted to the scopes of the batch being validated.
type reader struct {
	sch *schema.Schema
	own *schema.Ownership
	st  *store.Tenant
}

// readerRef is the Reader a plugin host holds: it follows the tenant's
// latest storage when a reload keeps the plugin running.
type readerRef struct{ cur atomic.Pointer[reader] }

func (r *readerRef) set(rd reader) { r.cur.Store(&rd) }

func (r *readerRef) Find(ctx context.Context, scopes []string, model string, where map[string]any, limit int) ([]json.RawMessage, error) {
	return r.cur.Load().Find(ctx, scopes, model, where, limit)
}

func (r *readerRef) Count(ctx context.Context, scopes []string, model string, where map[string]any) (int64, error) {
	return r.cur.Load().Count(ctx, scopes, model, where)
}

var _ pluginhost.Reader = (*readerRef)(nil)

// maxFind bounds one Find; Count counts at most this many records.
const maxFind = 10000

// Find returns at most limit records of model equal to where on every
// field, of the given scopes only.
func (r reader) Find(ctx context.Context, scopes []string, model string, where map[string]any, limit int) ([]json.RawMessage, error) {
	m := r.sch.Model(model)
	if m == nil || !r.own.IsSynced(model) {
		return nil, fmt.Errorf("no synced model %q", model)
	}
	filter, err := json.Marshal(where)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	fields, vals, err := m.ValidateFilter(filter)
	if err != nil {
		return nil, err
	}
	// Records of other scopes are filtered out after the query, so read
	// past them up to maxFind.
	recs, err := r.st.Find(ctx, model, fields, vals, maxFind)
	if err != nil {
		return nil, err
	}
	set := scope.NewSet(r.sch, r.own, r.st)
	if err := set.Prefetch(ctx, model, recs); err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for _, rec := range recs {
		if len(out) >= limit {
			break
		}
		in, err := r.inScopes(ctx, set, model, rec, scopes)
		if err != nil {
			return nil, err
		}
		if !in {
			continue
		}
		b, err := m.MarshalRecord(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Count counts the records Find would return without a limit (at most maxFind).
func (r reader) Count(ctx context.Context, scopes []string, model string, where map[string]any) (int64, error) {
	recs, err := r.Find(ctx, scopes, model, where, maxFind)
	return int64(len(recs)), err
}

func (r reader) inScopes(ctx context.Context, set *scope.Set, model string, rec schema.Record, scopes []string) (bool, error) {
	got, err := set.Scopes(ctx, model, rec)
	if errors.Is(err, scope.ErrNoScope) || errors.Is(err, scope.ErrMissingParent) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, sc := range got {
		if slices.Contains(scopes, sc) {
			return true, nil
		}
	}
	return false, nil
}

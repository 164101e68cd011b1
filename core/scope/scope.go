package scope

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/syncplane/syncplane/core/jsonscan"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// Loader reads committed records of a model whose fields equal one of keys.
type Loader interface {
	Load(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error)
}

// BatchLoader is a Loader that can read several lookups at once (one
// round trip on PostgreSQL): Set loads each level of ancestors with one
// call.
type BatchLoader interface {
	Loader
	LoadAll(ctx context.Context, refs []Ref) ([][]schema.Record, error)
}

var (
	// ErrMissingParent: every path to the root that is not null stops at
	// a parent record that does not exist.
	ErrMissingParent = errors.New("missing parent")
	// ErrNoScope: every path to the root has a null foreign key.
	ErrNoScope = errors.New("no scope")
)

// MissingParentError is the ErrMissingParent of Set.Scopes: it names the
// first parent found missing, so that push can tell a parent that may
// still arrive from one that is gone for good.
type MissingParentError struct {
	Model  string   // the parent's model
	Fields []string // the fields the child's foreign key references
	Key    []any    // their values
	// Deleted: the batch itself deleted the parent.
	Deleted bool
}

func (e *MissingParentError) Error() string {
	return fmt.Sprintf("missing parent %s %s", e.Model, KeyJSON(e.Key))
}

// Is makes errors.Is(err, ErrMissingParent) hold.
func (e *MissingParentError) Is(target error) bool { return target == ErrMissingParent }

// Set is a working set of records of one tenant. It is not safe for
// concurrent use.
type Set struct {
	sch    *schema.Schema
	own    *schema.Ownership
	loader Loader
	// known holds records loaded from the store, by model and lookup key
	// (fields + values); a nil record means "looked up, not found".
	known map[string]map[string]schema.Record
	// overlay holds the batch's own writes by model and primary key; a nil
	// record is a delete.
	overlay map[string]map[string]schema.Record
}

// NewSet returns an empty working set reading through loader.
func NewSet(sch *schema.Schema, own *schema.Ownership, loader Loader) *Set {
	return &Set{sch: sch, own: own, loader: loader,
		known: map[string]map[string]schema.Record{}, overlay: map[string]map[string]schema.Record{}}
}

// KeyJSON is the canonical JSON text of key values: the changelog's keyPath
// and the set's map key. DateTime values use the wire format.
func KeyJSON(vals []any) string {
	var buf [64]byte // most keys fit: one allocation, the string's
	return string(AppendKeyJSON(buf[:0], vals))
}

// AppendKeyJSON appends KeyJSON(vals) to b.
func AppendKeyJSON(b []byte, vals []any) []byte {
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		switch x := v.(type) {
		case string:
			b = jsonscan.AppendString(b, x)
		case int64:
			b = strconv.AppendInt(b, x, 10)
		case time.Time:
			b = append(b, '"')
			b = x.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
			b = append(b, '"')
		default:
			j, _ := json.Marshal(x)
			b = append(b, j...)
		}
	}
	return append(b, ']')
}

// lookupKey is the set's key for the records whose fields hold vals:
// "f1,f2=[v1,v2]".
func lookupKey(fields []string, vals []any) string {
	var buf [96]byte
	b := buf[:0]
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	b = append(b, '=')
	return string(AppendKeyJSON(b, vals))
}

func values(r schema.Record, fields []string) ([]any, bool) {
	vals := make([]any, len(fields))
	for i, f := range fields {
		if r[f] == nil {
			return nil, false
		}
		vals[i] = r[f]
	}
	return vals, true
}

// Ref names records of a model by the values of some of its fields.
type Ref = syncdata.Lookup

// Load fetches records in bulk and then, level by level, every ancestor
// they reference, so that Scopes needs no further queries for them.
func (s *Set) Load(ctx context.Context, refs []Ref) ([]schema.Record, error) {
	var loaded []schema.Record
	for len(refs) > 0 {
		next, err := s.fetch(ctx, refs)
		if err != nil {
			return nil, err
		}
		loaded = append(loaded, next...)
		refs = s.parentRefs(next, nil)
	}
	return loaded, nil
}

// Prefetch loads the ancestors referenced by the given records of model
// (for example the payloads of a push batch).
func (s *Set) Prefetch(ctx context.Context, model string, recs []schema.Record) error {
	return s.LoadFor(ctx, nil, map[string][]schema.Record{model: recs})
}

// LoadFor is Load of refs together with the ancestors that the records of
// byModel (by model name, for example a push batch's payloads) reference:
// the first level of both is one call of a BatchLoader.
func (s *Set) LoadFor(ctx context.Context, refs []Ref, byModel map[string][]schema.Record) error {
	var want []Ref
	for _, ref := range refs {
		var keys [][]any
		for _, k := range ref.Keys {
			lk := lookupKey(ref.Fields, k)
			if _, known := s.known[ref.Model][lk]; known {
				continue
			}
			s.remember(ref.Model, lk, nil) // pending: not a parent to look up again
			keys = append(keys, k)
		}
		if len(keys) > 0 {
			want = append(want, Ref{Model: ref.Model, Fields: ref.Fields, Keys: keys})
		}
	}
	_, err := s.Load(ctx, append(want, s.parentRefs(nil, byModel)...))
	return err
}

// parentRefs collects the not yet known parents of records (whose model is
// found from the set of loaded models) and of byModel.
func (s *Set) parentRefs(loaded []schema.Record, byModel map[string][]schema.Record) []Ref {
	if byModel == nil {
		byModel = map[string][]schema.Record{}
		for _, r := range loaded {
			if m, ok := r[modelKey].(string); ok {
				byModel[m] = append(byModel[m], r)
			}
		}
	}
	want := map[string]*Ref{}
	var order []string
	for model, recs := range byModel {
		m := s.sch.Model(model)
		if m == nil {
			continue
		}
		for _, rel := range m.Relations {
			if !s.own.IsSynced(rel.Target) {
				continue
			}
			if loaded != nil && s.trustedRootHop(rel) {
				continue // a stored record's root exists: Scopes reads its key off the record
			}
			id := rel.Target + "|" + strings.Join(rel.References, ",")
			for _, r := range recs {
				vals, ok := values(r, rel.Fields)
				if !ok {
					continue
				}
				lk := lookupKey(rel.References, vals)
				if _, known := s.known[rel.Target][lk]; known {
					continue
				}
				ref := want[id]
				if ref == nil {
					ref = &Ref{Model: rel.Target, Fields: rel.References}
					want[id] = ref
					order = append(order, id)
				}
				ref.Keys = append(ref.Keys, vals)
				s.remember(rel.Target, lk, nil) // pending: fetch fills it in
			}
		}
	}
	refs := make([]Ref, 0, len(order))
	for _, id := range order {
		refs = append(refs, *want[id])
	}
	return refs
}

// modelKey tags loaded records with their model inside the set; it is
// removed before records leave the set.
const modelKey = "\x00model"

func (s *Set) remember(model, lk string, r schema.Record) {
	if s.known[model] == nil {
		s.known[model] = map[string]schema.Record{}
	}
	s.known[model][lk] = r
}

// fetchChunk bounds the keys of one lookup.
const fetchChunk = 500

// fetch loads refs, in chunks of fetchChunk keys, and remembers what it
// found and what it did not; all at once when the loader can.
func (s *Set) fetch(ctx context.Context, refs []Ref) ([]schema.Record, error) {
	var chunks []Ref
	for _, ref := range refs {
		for start := 0; start < len(ref.Keys); start += fetchChunk {
			keys := ref.Keys[start:min(start+fetchChunk, len(ref.Keys))]
			for _, k := range keys {
				s.remember(ref.Model, lookupKey(ref.Fields, k), nil)
			}
			chunks = append(chunks, Ref{Model: ref.Model, Fields: ref.Fields, Keys: keys})
		}
	}
	var got [][]schema.Record
	if bl, ok := s.loader.(BatchLoader); ok && len(chunks) > 1 {
		var err error
		if got, err = bl.LoadAll(ctx, chunks); err != nil {
			return nil, err
		}
	} else {
		got = make([][]schema.Record, len(chunks))
		for i, c := range chunks {
			recs, err := s.loader.Load(ctx, c.Model, c.Fields, c.Keys)
			if err != nil {
				return nil, err
			}
			got[i] = recs
		}
	}
	var out []schema.Record
	for i, c := range chunks {
		m := s.sch.Model(c.Model)
		for _, r := range got[i] {
			vals, _ := values(r, c.Fields)
			s.remember(c.Model, lookupKey(c.Fields, vals), r)
			if pk, ok := values(r, m.PrimaryKey); ok {
				s.remember(c.Model, lookupKey(m.PrimaryKey, pk), r)
			}
			r[modelKey] = c.Model
			out = append(out, r)
		}
	}
	return out, nil
}

// Get returns the record of model with primary key pk as the batch sees
// it: the batch's own write if any, else the stored one.
func (s *Set) Get(ctx context.Context, model string, pk []any) (schema.Record, error) {
	m := s.sch.Model(model)
	return s.find(ctx, m, m.PrimaryKey, pk)
}

func (s *Set) find(ctx context.Context, m *schema.Model, fields []string, vals []any) (schema.Record, error) {
	isPK := strings.Join(fields, ",") == strings.Join(m.PrimaryKey, ",")
	if isPK {
		if r, ok := s.overlay[m.Name][KeyJSON(vals)]; ok {
			return r, nil
		}
	} else {
		want := KeyJSON(vals)
		for _, r := range s.overlay[m.Name] {
			if got, ok := values(r, fields); ok && KeyJSON(got) == want {
				return r, nil
			}
		}
	}
	lk := lookupKey(fields, vals)
	r, known := s.known[m.Name][lk]
	if !known {
		recs, err := s.fetch(ctx, []Ref{{Model: m.Name, Fields: fields, Keys: [][]any{vals}}})
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			r = recs[0]
		}
	}
	if r == nil {
		return nil, nil
	}
	if !isPK {
		// The stored record may have been changed or deleted by the batch.
		if pk, ok := values(r, m.PrimaryKey); ok {
			if _, shadowed := s.overlay[m.Name][KeyJSON(pk)]; shadowed {
				return nil, nil
			}
		}
	}
	return r, nil
}

// Put records the batch's write of r (nil to delete the record with pk).
func (s *Set) Put(model string, pk []any, r schema.Record) {
	if s.overlay[model] == nil {
		s.overlay[model] = map[string]schema.Record{}
	}
	s.overlay[model][KeyJSON(pk)] = r
}

// Scopes returns the scopes the record r of model resolves to, one per
// ownership path that reaches the root, shortest path first, without
// duplicates. It fails with ErrMissingParent when no path resolves and
// some path stops at a missing parent, and with ErrNoScope when every path
// has a null foreign key.
func (s *Set) Scopes(ctx context.Context, model string, r schema.Record) ([]string, error) {
	if model == s.own.Root.Name {
		key, err := RootKey(s.own, r)
		if err != nil {
			return nil, err
		}
		return []string{key}, nil
	}
	var scopes []string
	var missing *MissingParentError
	for _, path := range s.own.Paths(model) {
		cur := r
		ok := true
		for _, hop := range path {
			vals, present := values(cur, hop.Fields)
			if !present {
				ok = false
				break
			}
			if _, stored := cur[modelKey]; stored && s.trustedRootHop(hop) {
				// A stored record's root exists (the database's foreign keys
				// say so): its key is the foreign key, unless the batch
				// changed or deleted that root.
				if r, inBatch := s.overlay[s.own.Root.Name][KeyJSON(vals)]; inBatch {
					if r == nil {
						if missing == nil {
							missing = &MissingParentError{Model: hop.Target, Fields: hop.References, Key: vals, Deleted: true}
						}
						ok = false
						break
					}
					cur = r
					continue
				}
				cur = rootStub(s.own, vals)
				continue
			}
			parent, err := s.find(ctx, s.sch.Model(hop.Target), hop.References, vals)
			if err != nil {
				return nil, err
			}
			if parent == nil {
				if missing == nil {
					missing = &MissingParentError{Model: hop.Target, Fields: hop.References, Key: vals, Deleted: s.deleted(hop.Target, hop.References, vals)}
				}
				ok = false
				break
			}
			cur = parent
		}
		if !ok {
			continue
		}
		key, err := RootKey(s.own, cur)
		if err != nil {
			return nil, err
		}
		if !containsString(scopes, key) {
			scopes = append(scopes, key)
		}
	}
	switch {
	case len(scopes) > 0:
		return scopes, nil
	case missing != nil:
		return nil, missing
	}
	return nil, ErrNoScope
}

// deleted reports whether the batch deleted the record of model whose
// primary key is fields = vals.
func (s *Set) deleted(model string, fields []string, vals []any) bool {
	if strings.Join(fields, ",") != strings.Join(s.sch.Model(model).PrimaryKey, ",") {
		return false
	}
	r, inBatch := s.overlay[model][KeyJSON(vals)]
	return inBatch && r == nil
}

// trustedRootHop reports whether rel references the root by its primary
// key, so that a stored record's root key is its foreign key.
func (s *Set) trustedRootHop(rel *schema.Relation) bool {
	root := s.own.Root
	return rel.Target == root.Name && len(root.PrimaryKey) == 1 && len(rel.References) == 1 && rel.References[0] == root.PrimaryKey[0]
}

// rootStub stands for the root with primary key vals, as far as RootKey
// is concerned.
func rootStub(own *schema.Ownership, vals []any) schema.Record {
	return schema.Record{own.Root.PrimaryKey[0]: vals[0]}
}

// RootKey is the scope key of a root record: its primary key as text.
func RootKey(own *schema.Ownership, root schema.Record) (string, error) {
	v := root[own.Root.PrimaryKey[0]]
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	return "", fmt.Errorf("root record has no usable key (%v)", v)
}

// Clean returns r without the set's bookkeeping.
func Clean(r schema.Record) schema.Record {
	delete(r, modelKey)
	return r
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Node is a record with its model.
type Node struct {
	Model string
	Rec   schema.Record
}

// Children returns the records that reference r (a record of model)
// through an ownership relation, as the batch sees them: stored children
// not changed by the batch, and the batch's own.
func (s *Set) Children(ctx context.Context, model string, r schema.Record) ([]Node, error) {
	var out []Node
	for _, c := range s.own.Synced() {
		for _, rel := range c.Relations {
			if rel.Target != model {
				continue
			}
			vals, ok := values(r, rel.References)
			if !ok {
				continue
			}
			want := KeyJSON(vals)
			seen := map[string]bool{}
			for key, child := range s.overlay[c.Name] {
				if child == nil {
					seen[key] = true // deleted by the batch
					continue
				}
				if got, ok := values(child, rel.Fields); ok && KeyJSON(got) == want {
					out = append(out, Node{Model: c.Name, Rec: child})
				}
				seen[key] = true
			}
			stored, err := s.loader.Load(ctx, c.Name, rel.Fields, [][]any{vals})
			if err != nil {
				return nil, err
			}
			for _, child := range stored {
				pk, _ := values(child, c.PrimaryKey)
				if !seen[KeyJSON(pk)] {
					out = append(out, Node{Model: c.Name, Rec: child})
				}
			}
		}
	}
	return out, nil
}

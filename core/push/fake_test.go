package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/syncdata"
)

// fakeStore is a push.Store made of funcs.
type fakeStore struct {
	BeginFunc func(ctx context.Context) (push.Tx, error)
	ReadsFunc func() push.Reads
}

func (s *fakeStore) Begin(ctx context.Context) (push.Tx, error) { return s.BeginFunc(ctx) }
func (s *fakeStore) Reads() push.Reads                          { return s.ReadsFunc() }

// fakeTx is a push.Tx made of funcs; memDB fills them in and tests replace
// some to inject failures.
type fakeTx struct {
	LoadFunc            func(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error)
	AppliedEventsFunc   func(ctx context.Context, subject string, ids []string) (map[string]string, error)
	LastScopesFunc      func(ctx context.Context, model string, keyPaths []string) (map[string]string, error)
	LockScopesFunc      func(ctx context.Context, scopes []string) (map[string]string, error)
	UpsertFunc          func(ctx context.Context, model string, recs []schema.Record) error
	DeleteFunc          func(ctx context.Context, model string, keys [][]any) error
	AppendChangelogFunc func(ctx context.Context, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error
	CommitFunc          func() error
	RollbackFunc        func() error
}

var _ push.Tx = (*fakeTx)(nil)

func (tx *fakeTx) Load(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error) {
	return tx.LoadFunc(ctx, model, fields, keys)
}
func (tx *fakeTx) AppliedEvents(ctx context.Context, subject string, ids []string) (map[string]string, error) {
	return tx.AppliedEventsFunc(ctx, subject, ids)
}
func (tx *fakeTx) AppliedEventsLater(ctx context.Context, subject string, ids []string) func() (map[string]string, error) {
	m, err := tx.AppliedEvents(ctx, subject, ids)
	return func() (map[string]string, error) { return m, err }
}
func (tx *fakeTx) LastScopes(ctx context.Context, model string, keyPaths []string) (map[string]string, error) {
	return tx.LastScopesFunc(ctx, model, keyPaths)
}
func (tx *fakeTx) LockScopes(ctx context.Context, scopes []string) (map[string]string, error) {
	return tx.LockScopesFunc(ctx, scopes)
}
func (tx *fakeTx) Apply(ctx context.Context, writes []syncdata.Write, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error {
	for _, w := range writes {
		var err error
		if len(w.Delete) > 0 {
			err = tx.DeleteFunc(ctx, w.Model, w.Delete)
		} else {
			err = tx.UpsertFunc(ctx, w.Model, w.Upsert)
		}
		if err != nil {
			return err
		}
	}
	return tx.AppendChangelogFunc(ctx, entries, heads, applied)
}
func (tx *fakeTx) Commit() error   { return tx.CommitFunc() }
func (tx *fakeTx) Rollback() error { return tx.RollbackFunc() }

// fakeAuthz is a push.Authorizer made of a func.
type fakeAuthz struct {
	AllowFunc func(subject, scope, model, act string) (bool, error)
}

func (a fakeAuthz) Allow(subject string, _ map[string]string, scope, model, act string) (bool, error) {
	return a.AllowFunc(subject, scope, model, act)
}

// selfOnly lets a subject act in its own scope only.
var selfOnly = fakeAuthz{AllowFunc: func(subject, scope, _, _ string) (bool, error) { return subject == scope, nil }}

// anyScope lets every subject act everywhere.
var anyScope = fakeAuthz{AllowFunc: func(string, string, string, string) (bool, error) { return true, nil }}

// memDB is one tenant's storage in memory. Its transactions stage their
// writes and apply them on Commit; like a database's unique indexes, the
// User.email uniqueness and the outbox event id see committed rows of other
// transactions at once. It is used from one goroutine (Push is sequential).
type memDB struct {
	t   testing.TB
	sch *schema.Schema

	records map[string]map[string]schema.Record // model → scope.KeyJSON(pk) → record
	applied map[ledgerKey]string                // (subject, outbox event id) → changelog id
	heads   map[string]string                   // scope → last changelog id
	log     []changelog.Entry

	// wrap, when set, may replace funcs of the n-th transaction (n from 1).
	wrap func(n int, tx *fakeTx)

	begins, open, loads, appends int
	locks                        [][]string     // scopes of each LockScopes call
	upserts                      map[string]int // Upsert calls per model
}

func newMemDB(t testing.TB, sch *schema.Schema) *memDB {
	return &memDB{t: t, sch: sch, records: map[string]map[string]schema.Record{},
		applied: map[ledgerKey]string{}, heads: map[string]string{}, upserts: map[string]int{}}
}

// seed stores a record as if committed long ago.
func (db *memDB) seed(model string, payload map[string]any) {
	db.t.Helper()
	m := db.sch.Model(model)
	rec, err := m.Validate(mustJSON(db.t, payload))
	if err != nil {
		db.t.Fatalf("seed %s: %v", model, err)
	}
	if db.records[model] == nil {
		db.records[model] = map[string]schema.Record{}
	}
	db.records[model][scope.KeyJSON(m.Key(rec))] = rec
}

// has reports whether a committed record of model with the single-field
// key id exists.
func (db *memDB) has(model, id string) bool {
	_, ok := db.records[model][scope.KeyJSON([]any{id})]
	return ok
}

// commitExternal commits subject's event's changelog entry as another
// server process would.
func (db *memDB) commitExternal(subject string, e changelog.Entry) {
	db.applied[ledgerKey{subject, e.OutboxEventID}] = e.ID
	db.heads[e.ScopeKey] = e.ID
	db.log = append(db.log, e)
}

// entriesOf returns the committed changelog entries of an outbox event.
func (db *memDB) entriesOf(eventID string) []changelog.Entry {
	var out []changelog.Entry
	for _, e := range db.log {
		if e.OutboxEventID == eventID {
			out = append(out, e)
		}
	}
	return out
}

// state is what a test compares to prove that nothing was written.
type state struct {
	Records map[string]map[string]schema.Record
	Applied map[ledgerKey]string
	Heads   map[string]string
	Log     []changelog.Entry
}

func (db *memDB) state() state {
	recs := map[string]map[string]schema.Record{}
	for m, rs := range db.records {
		recs[m] = maps.Clone(rs)
	}
	return state{Records: recs, Applied: maps.Clone(db.applied), Heads: maps.Clone(db.heads), Log: slices.Clone(db.log)}
}

func (db *memDB) store() *fakeStore {
	return &fakeStore{BeginFunc: func(context.Context) (push.Tx, error) {
		db.begins++
		db.open++
		tx := (&memTx{db: db, staged: map[string]map[string]schema.Record{}, heads: map[string]string{}}).funcs()
		if db.wrap != nil {
			db.wrap(db.begins, tx)
		}
		return tx, nil
	}, ReadsFunc: func() push.Reads {
		// committed state: a transaction that only reads and is never ended
		return (&memTx{db: db, staged: map[string]map[string]schema.Record{}, heads: map[string]string{}}).funcs()
	}}
}

type memTx struct {
	db      *memDB
	staged  map[string]map[string]schema.Record // model → key → record, nil: deleted
	entries []changelog.Entry
	applied map[ledgerKey]string // the ledger rows it adds
	heads   map[string]string
	done    bool
}

// ledgerKey is the idempotency key of an event: its subject and id.
type ledgerKey struct{ subject, eventID string }

func (tx *memTx) funcs() *fakeTx {
	return &fakeTx{
		LoadFunc: tx.load, AppliedEventsFunc: tx.appliedEvents, LastScopesFunc: tx.lastScopes,
		LockScopesFunc: tx.lockScopes, UpsertFunc: tx.upsert, DeleteFunc: tx.delete,
		AppendChangelogFunc: tx.appendChangelog, CommitFunc: tx.commit, RollbackFunc: tx.rollback,
	}
}

func (tx *memTx) live(call string) {
	tx.db.t.Helper()
	if tx.done {
		tx.db.t.Errorf("%s after the transaction ended", call)
	}
}

// rows is the transaction's view of a model: committed rows and its own writes.
func (tx *memTx) rows(model string) map[string]schema.Record {
	out := map[string]schema.Record{}
	maps.Copy(out, tx.db.records[model])
	for k, r := range tx.staged[model] {
		if r == nil {
			delete(out, k)
		} else {
			out[k] = r
		}
	}
	return out
}

func (tx *memTx) load(_ context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error) {
	tx.live("Load")
	tx.db.loads++
	want := map[string]bool{}
	for _, k := range keys {
		want[scope.KeyJSON(k)] = true
	}
	var out []schema.Record
	for _, r := range tx.rows(model) {
		if want[scope.KeyJSON(fieldValues(r, fields))] {
			out = append(out, maps.Clone(r)) // callers may tag what they get
		}
	}
	return out, nil
}

func (tx *memTx) appliedEvents(_ context.Context, subject string, ids []string) (map[string]string, error) {
	tx.live("AppliedEvents")
	out := map[string]string{}
	for _, id := range ids {
		k := ledgerKey{subject, id}
		if cl, ok := tx.db.applied[k]; ok {
			out[id] = cl
		}
		if cl, ok := tx.applied[k]; ok {
			out[id] = cl
		}
	}
	return out, nil
}

func (tx *memTx) lastScopes(_ context.Context, model string, keyPaths []string) (map[string]string, error) {
	tx.live("LastScopes")
	out := map[string]string{}
	for _, e := range append(slices.Clone(tx.db.log), tx.entries...) {
		if e.Model == model && slices.Contains(keyPaths, string(e.KeyPath)) {
			out[string(e.KeyPath)] = e.ScopeKey
		}
	}
	return out, nil
}

func (tx *memTx) lockScopes(_ context.Context, scopes []string) (map[string]string, error) {
	tx.live("LockScopes")
	tx.db.locks = append(tx.db.locks, slices.Clone(scopes))
	out := map[string]string{}
	for _, sc := range scopes {
		if h, ok := tx.db.heads[sc]; ok {
			out[sc] = h
		}
	}
	return out, nil
}

func (tx *memTx) upsert(_ context.Context, model string, recs []schema.Record) error {
	tx.live("Upsert")
	tx.db.upserts[model]++
	m := tx.db.sch.Model(model)
	if tx.staged[model] == nil {
		tx.staged[model] = map[string]schema.Record{}
	}
	for _, r := range recs {
		key := scope.KeyJSON(m.Key(r))
		for _, u := range m.Uniques {
			vals := fieldValues(r, u)
			if slices.Contains(vals, nil) {
				continue // NULLs are distinct
			}
			for k, other := range tx.rows(model) {
				if k != key && scope.KeyJSON(fieldValues(other, u)) == scope.KeyJSON(vals) {
					return &syncdata.ConstraintError{Kind: "unique",
						Detail: fmt.Sprintf("Key (%s)=(%v) already exists.", strings.Join(u, ", "), vals)}
				}
			}
		}
		tx.staged[model][key] = maps.Clone(r)
	}
	return nil
}

func (tx *memTx) delete(_ context.Context, model string, keys [][]any) error {
	tx.live("Delete")
	if tx.staged[model] == nil {
		tx.staged[model] = map[string]schema.Record{}
	}
	for _, k := range keys {
		tx.staged[model][scope.KeyJSON(k)] = nil
	}
	return nil
}

func (tx *memTx) appendChangelog(_ context.Context, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error {
	tx.live("AppendChangelog")
	tx.db.appends++
	for _, a := range applied.Events {
		k := ledgerKey{applied.Subject, a.EventID}
		if _, dup := tx.db.applied[k]; dup {
			return syncdata.ErrDuplicateEvent
		}
		// An event names its own entry of this transaction, or one that
		// a later entry of its record in its scope superseded and that was
		// never written (so an id below the transaction's last).
		own := slices.ContainsFunc(entries, func(e changelog.Entry) bool { return e.ID == a.ChangelogID && e.OutboxEventID == a.EventID })
		superseded := !slices.ContainsFunc(entries, func(e changelog.Entry) bool { return e.ID == a.ChangelogID }) &&
			slices.ContainsFunc(entries, func(e changelog.Entry) bool { return e.ID > a.ChangelogID })
		if !own && !superseded {
			tx.db.t.Errorf("applied event %s names changelog id %s, which is not its entry of this transaction", a.EventID, a.ChangelogID)
		}
		if strings.Contains(a.EventID, push.MovedSuffix) {
			tx.db.t.Errorf("the entry %s of a move is recorded as an applied event", a.EventID)
		}
		if tx.applied == nil {
			tx.applied = map[ledgerKey]string{}
		}
		tx.applied[k] = a.ChangelogID
	}
	type rec struct{ scope, model, key string }
	seen := map[rec]bool{}
	for _, e := range entries {
		k := rec{e.ScopeKey, e.Model, string(e.KeyPath)}
		if seen[k] {
			tx.db.t.Errorf("two entries of %s %s in scope %s in one transaction (the changelog keeps the latest)", e.Model, e.KeyPath, e.ScopeKey)
		}
		seen[k] = true
	}
	last := maps.Clone(tx.db.heads)
	for _, e := range entries {
		if e.ID <= last[e.ScopeKey] {
			tx.db.t.Errorf("changelog id %s of scope %s does not follow %s", e.ID, e.ScopeKey, last[e.ScopeKey])
		}
		last[e.ScopeKey] = e.ID
	}
	for sc, id := range last {
		if id != tx.db.heads[sc] && heads[sc] != id {
			tx.db.t.Errorf("heads[%s] = %q, want the scope's last entry %s", sc, heads[sc], id)
		}
	}
	tx.entries = append(tx.entries, entries...)
	maps.Copy(tx.heads, heads)
	return nil
}

func (tx *memTx) commit() error {
	if tx.done {
		return errors.New("commit: transaction already ended")
	}
	tx.done = true
	tx.db.open--
	for model, rs := range tx.staged {
		if tx.db.records[model] == nil {
			tx.db.records[model] = map[string]schema.Record{}
		}
		for k, r := range rs {
			if r == nil {
				delete(tx.db.records[model], k)
			} else {
				tx.db.records[model][k] = r
			}
		}
	}
	// The changelog keeps the latest entry of a record per scope.
	tx.db.log = slices.DeleteFunc(tx.db.log, func(old changelog.Entry) bool {
		return slices.ContainsFunc(tx.entries, func(e changelog.Entry) bool {
			return e.ScopeKey == old.ScopeKey && e.Model == old.Model && string(e.KeyPath) == string(old.KeyPath)
		})
	})
	tx.db.log = append(tx.db.log, tx.entries...)
	maps.Copy(tx.db.applied, tx.applied)
	maps.Copy(tx.db.heads, tx.heads)
	return nil
}

func (tx *memTx) rollback() error {
	if tx.done {
		return errors.New("rollback: transaction already ended")
	}
	tx.done = true
	tx.db.open--
	return nil
}

func fieldValues(r schema.Record, fields []string) []any {
	vals := make([]any, len(fields))
	for i, f := range fields {
		vals[i] = r[f]
	}
	return vals
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package push

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/syncdata"
)

// write allocates changelog ids under the scope locks and writes the
// accepted changes (the changelog is compacted: of the batch's entries of
// one record in one scope only the last is written, and the store deletes
// that record's previous entry in the scope; see latest): consecutive upserts of the batch become one multi-row
// upsert per model (parents first), consecutive deletes one delete per
// model (children first), and records each change's event as applied by
// subject under its own entry (a move's other entries are not events). It
// returns the changelog id of each change's own entry, in order, and the
// new head of every scope written.
func (s *Service) write(ctx context.Context, tx Tx, subject string, items []*item, changes []change) ([]string, map[string]string, error) {
	var scopes []string
	for _, c := range changes {
		scopes = append(scopes, c.scope)
		for _, x := range c.extra {
			scopes = append(scopes, x.scope)
		}
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	heads, err := tx.LockScopes(ctx, scopes)
	if err != nil {
		return nil, nil, err
	}
	// Every id of the transaction is above every locked head: increasing
	// per scope in commit order, and a moved record's entry in its new
	// scope sorts after its entries in the old one.
	last := ""
	for _, h := range heads {
		last = max(last, h)
	}
	now := s.now().UTC()
	var entries []changelog.Entry
	own := make([]int, len(changes)) // index of each change's own entry
	add := func(m *schema.Model, pk []any, op changelog.Operation, sc, eventID string) error {
		id, err := changelog.Next(last, now)
		if err != nil {
			return err
		}
		last, heads[sc] = id, id
		entries = append(entries, changelog.Entry{ID: id, Model: m.Name, KeyPath: []byte(scope.KeyJSON(pk)),
			Operation: op, ScopeKey: sc, OutboxEventID: eventID, CreatedAt: now})
		return nil
	}
	for j, c := range changes {
		it := items[c.idx]
		for _, x := range c.extra {
			if !x.after {
				if err := add(x.model, x.pk, x.op, x.scope, x.eventID); err != nil {
					return nil, nil, err
				}
			}
		}
		if err := add(it.model, it.pk, c.op, c.scope, it.ev.ID); err != nil {
			return nil, nil, err
		}
		own[j] = len(entries) - 1
		for _, x := range c.extra {
			if x.after {
				if err := add(x.model, x.pk, x.op, x.scope, x.eventID); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	ids := make([]string, len(changes))
	ledger := syncdata.Applied{Subject: subject, Events: make([]syncdata.AppliedEvent, len(changes))}
	for j, c := range changes {
		ids[j] = entries[own[j]].ID
		ledger.Events[j] = syncdata.AppliedEvent{EventID: items[c.idx].ev.ID, ChangelogID: ids[j]}
	}
	if s.history {
		ledger.History = make([]syncdata.HistoryEntry, len(entries))
		for i, e := range entries {
			ledger.History[i].Entry = e
		}
		for j, c := range changes {
			if it := items[c.idx]; c.op != changelog.Delete {
				rec, err := it.model.MarshalRecord(scope.Clean(it.rec))
				if err != nil {
					return nil, nil, fmt.Errorf("marshal %s for the history: %w", it.model.Name, err)
				}
				ledger.History[own[j]].Record = rec
			}
		}
	}
	if err := tx.Apply(ctx, s.writes(items, changes), latest(entries), heads, ledger); err != nil {
		return nil, nil, err
	}
	return ids, heads, nil
}

// latest returns the entries that no later entry of the same record in
// the same scope supersedes, in order. A superseded entry is never
// written, as if it had been written and deleted in the transaction: its
// event still answers the id allocated to it, and the ledger keeps that
// id, which is the id the event would answer had it come in a batch of
// its own (its entry deleted by the next). A scope's head is its last
// allocated id, which always belongs to a surviving entry.
func latest(entries []changelog.Entry) []changelog.Entry {
	type rec struct{ scope, model, key string }
	seen := make(map[rec]bool, len(entries))
	keep := make([]bool, len(entries))
	n := 0
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		k := rec{e.ScopeKey, e.Model, string(e.KeyPath)}
		if !seen[k] {
			seen[k], keep[i] = true, true
			n++
		}
	}
	if n == len(entries) {
		return entries
	}
	out := make([]changelog.Entry, 0, n)
	for i, e := range entries {
		if keep[i] {
			out = append(out, e)
		}
	}
	return out
}

// writes turns the accepted changes into the store's writes: the upserts
// (one multi-row upsert per model, parents first), then the deletes (one
// per model, children first), then again for what could not join them.
// Running upserts before the deletes that came earlier in the batch is
// what the batch would have done as long as no upsert names a record
// deleted before it or changes a foreign key (which could move a record
// out of a deleted parent's reach, or free a parent a restricting
// relation holds); such an upsert writes what came before it first.
func (s *Service) writes(items []*item, changes []change) []syncdata.Write {
	synced := s.own.Synced()
	var out []syncdata.Write
	upserts := map[string]map[string]schema.Record{}
	deletes := map[string]map[string][]any{}
	pendingDeletes := false
	flush := func() {
		for _, m := range synced { // parents first
			if recs := upserts[m.Name]; len(recs) > 0 {
				out = append(out, syncdata.Write{Model: m.Name, Upsert: slices.Collect(maps.Values(recs))})
			}
		}
		for k := len(synced) - 1; k >= 0; k-- { // children first
			m := synced[k]
			if keys := deletes[m.Name]; len(keys) > 0 {
				out = append(out, syncdata.Write{Model: m.Name, Delete: slices.Collect(maps.Values(keys))})
			}
		}
		clear(upserts)
		clear(deletes)
		pendingDeletes = false
	}
	for _, c := range changes {
		it := items[c.idx]
		key := scope.KeyJSON(it.pk)
		if c.op == changelog.Delete {
			if deletes[it.model.Name] == nil {
				deletes[it.model.Name] = map[string][]any{}
			}
			deletes[it.model.Name][key] = it.pk
			pendingDeletes = true
			continue
		}
		if _, deleted := deletes[it.model.Name][key]; pendingDeletes && (deleted || !c.keepsRefs) {
			flush()
		}
		if upserts[it.model.Name] == nil {
			upserts[it.model.Name] = map[string]schema.Record{}
		}
		upserts[it.model.Name][key] = it.rec
	}
	flush()
	return out
}

// sameRefs reports whether b has the foreign key values of a for every
// relation of m.
func sameRefs(m *schema.Model, a, b schema.Record) bool {
	for _, rel := range m.Relations {
		for _, f := range rel.Fields {
			if scope.KeyJSON([]any{a[f]}) != scope.KeyJSON([]any{b[f]}) {
				return false
			}
		}
	}
	return true
}

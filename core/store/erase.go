package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/syncdata"
)

// EraseReport is what EraseScope removed.
type EraseReport struct {
	Records int `json:"records"` // records deleted
	// Deletes are the delete entries written, in the scope and in the
	// other scopes where those records were too.
	Deletes     int               `json:"deletes"`
	OtherScopes int               `json:"otherScopes"` // scopes besides the erased one that got deletes
	LedgerRows  int64             `json:"ledgerRows"`  // idempotency rows of the subject named like the scope
	HistoryRows int64             `json:"historyRows"` // full-history rows of the scope
	heads       map[string]string // the new heads of the scopes written (NewHeads)
}

// NewHeads are the scopes' new heads, for pokes on SQLite.
func (r EraseReport) NewHeads() map[string]string { return r.heads }

// EraseScope deletes every record that is live in scope, in one
// transaction like a push of their deletes: each gets a delete entry in
// scope and in every other scope where it was live, which replaces the
// record's entry there (devices that pull those scopes delete it; a delete
// entry holds the model and the key, no field), and the heads move (on
// PostgreSQL the commit NOTIFYs other processes). Then it removes the
// ledger rows of the subject whose id is the scope (the idempotency keys
// of its events) and, in a tenant that keeps its full history, the
// scope's history rows, which hold the records as written. Records are
// deleted children first, so a relation without ON DELETE CASCADE does
// not stop it.
func (t *Tenant) EraseScope(ctx context.Context, scope string) (EraseReport, error) {
	for attempt := 0; ; attempt++ {
		rep, retry, err := t.eraseOnce(ctx, scope)
		if err != nil || !retry {
			return rep, err
		}
		if attempt == 3 {
			return rep, fmt.Errorf("%w: scope %q kept changing while it was erased", syncdata.ErrUnavailable, scope)
		}
	}
}

// liveRecord is a record named by a live (non-delete) changelog entry.
type liveRecord struct{ model, keyPath string }

// eraseOnce erases scope; retry is true when, once locked, the scope held
// records live in a scope it had not locked (a push came in between).
func (t *Tenant) eraseOnce(ctx context.Context, scope string) (rep EraseReport, retry bool, err error) {
	live, err := t.liveIn(ctx, scope)
	if err != nil {
		return rep, false, err
	}
	others, err := t.otherScopes(ctx, scope, live)
	if err != nil {
		return rep, false, err
	}
	scopes := append([]string{scope}, slices.Collect(maps.Keys(others))...)
	slices.Sort(scopes)
	x, err := t.Begin(ctx)
	if err != nil {
		return rep, false, err
	}
	defer x.Rollback() //nolint:errcheck // after Commit it does nothing
	heads, err := x.LockScopes(ctx, scopes)
	if err != nil {
		return rep, false, err
	}
	// Locked: read again what the scope holds now.
	if live, err = t.liveIn(ctx, scope); err != nil {
		return rep, false, err
	}
	if others, err = t.otherScopes(ctx, scope, live); err != nil {
		return rep, false, err
	}
	for sc := range others {
		if _, ok := heads[sc]; !ok {
			return rep, true, nil
		}
	}
	last := ""
	for _, h := range heads {
		last = max(last, h)
	}
	now := time.Now().UTC()
	var entries []changelog.Entry
	keys := map[string][][]any{}
	for _, r := range live {
		ti, err := t.info(r.model)
		if err != nil {
			return rep, false, err
		}
		pk, err := ti.model.ValidateKey([]byte(r.keyPath))
		if err != nil {
			return rep, false, fmt.Errorf("tenant %s: %s key %s: %w", t.id, r.model, r.keyPath, err)
		}
		keys[r.model] = append(keys[r.model], pk)
		for _, sc := range append([]string{scope}, others.of(r)...) {
			id, err := changelog.Next(last, now)
			if err != nil {
				return rep, false, err
			}
			last, heads[sc] = id, id
			entries = append(entries, changelog.Entry{ID: id, Model: r.model, KeyPath: []byte(r.keyPath),
				Operation: changelog.Delete, ScopeKey: sc, OutboxEventID: "syncplane-erase-" + id, CreatedAt: now})
		}
	}
	// Children first: the reverse of the ownership's topological order.
	var writes []syncdata.Write
	synced := t.own.Synced()
	for i := len(synced) - 1; i >= 0; i-- {
		if k := keys[synced[i].Name]; len(k) > 0 {
			writes = append(writes, syncdata.Write{Model: synced[i].Name, Delete: k})
		}
	}
	moved := map[string]string{}
	for _, e := range entries {
		moved[e.ScopeKey] = heads[e.ScopeKey]
	}
	if len(entries) > 0 {
		if err := x.Apply(ctx, writes, entries, moved, syncdata.Applied{}); err != nil {
			return rep, false, err
		}
	}
	if err := x.Commit(); err != nil {
		return rep, false, err
	}
	rep = EraseReport{Records: len(live), Deletes: len(entries), OtherScopes: len(others), heads: moved}
	res, err := t.w.db.ExecContext(ctx, "DELETE FROM "+t.prefix+`"_applied_events" WHERE subject = ?`, scope)
	if err != nil {
		return rep, false, fmt.Errorf("tenant %s: erase ledger rows: %w", t.id, classify(err))
	}
	rep.LedgerRows, _ = res.RowsAffected()
	res, err = t.w.db.ExecContext(ctx, "DELETE FROM "+t.prefix+`"_history" WHERE scope_key = ?`, scope)
	if err != nil {
		return rep, false, fmt.Errorf("tenant %s: erase history rows: %w", t.id, classify(err))
	}
	rep.HistoryRows, _ = res.RowsAffected()
	return rep, false, nil
}

// liveIn lists the records whose latest entry in scope is not a delete.
func (t *Tenant) liveIn(ctx context.Context, scope string) ([]liveRecord, error) {
	var out []liveRecord
	after := ""
	for {
		page, err := t.Changes(ctx, scope, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Operation != changelog.Delete {
				out = append(out, liveRecord{e.Model, string(e.KeyPath)})
			}
			after = e.ID
		}
		if len(page) < 1000 {
			return out, nil
		}
	}
}

// scopeSet maps other scopes to the records live in them.
type scopeSet map[string]map[liveRecord]bool

func (s scopeSet) of(r liveRecord) []string {
	var out []string
	for sc, recs := range s {
		if recs[r] {
			out = append(out, sc)
		}
	}
	slices.Sort(out)
	return out
}

// otherScopes finds the scopes other than scope where the records are
// live too (a record that several ownership paths reach).
func (t *Tenant) otherScopes(ctx context.Context, scope string, live []liveRecord) (scopeSet, error) {
	out := scopeSet{}
	byModel := map[string][]string{}
	for _, r := range live {
		byModel[r.model] = append(byModel[r.model], r.keyPath)
	}
	for model, paths := range byModel {
		for chunk := range slices.Chunk(paths, 500) {
			rows, err := t.db.QueryContext(ctx, "SELECT scope_key, key_path FROM "+t.prefix+`"_changelog" WHERE model = ? AND scope_key <> ? AND operation <> 'delete' AND key_path IN (?)`,
				model, scope, bun.In(chunk))
			if err != nil {
				return nil, fmt.Errorf("tenant %s: erase: other scopes: %w", t.id, classify(err))
			}
			for rows.Next() {
				var sc, kp string
				if err := rows.Scan(&sc, &kp); err != nil {
					rows.Close()
					return nil, err
				}
				if out[sc] == nil {
					out[sc] = map[liveRecord]bool{}
				}
				out[sc][liveRecord{model, kp}] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, classify(err)
			}
		}
	}
	return out, nil
}

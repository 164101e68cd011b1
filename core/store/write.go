package store

import (
	"context"
	"strings"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// Apply performs writes in order, then inserts entries (deleting, in the
// same statement on PostgreSQL, the previous entry of each one's record
// in its scope: the changelog holds the latest entry of a record per
// scope; entries must name each (scope, model, key path) once), records the
// applied events in the ledger and moves the locked scope heads to the
// given last ids (on PostgreSQL the same statement NOTIFYs other
// processes, delivered on commit: see Store.Listen). A ledger row that
// another transaction committed meanwhile (the same subject's event
// applied concurrently) fails with syncdata.ErrDuplicateEvent.
//
// On PostgreSQL, consecutive upserts go to the database as one statement
// (data-modifying subqueries see one snapshot, which is safe because each
// model appears once in a run of upserts and the foreign keys are checked
// at the end of the statement); a delete cascades, and a cascade does not
// see rows written by the same statement, so each delete is a statement
// of its own. The changelog entries, the ledger rows and the heads join
// the last statement. A batch without deletes is one statement. SQLite (no
// data-modifying subqueries, and no round trips to save) runs one
// statement per step (writeSQL and the statements after it).
func (x *Tx) Apply(ctx context.Context, writes []syncdata.Write, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error {
	return x.t.d.apply(ctx, x, writes, entries, heads, applied)
}

// stmt is one SQL statement with bun's ? placeholders and its arguments.
type stmt struct {
	sql  string
	args []any
}

// writeSQL renders one write; an empty write renders no statement.
func (t *Tenant) writeSQL(w syncdata.Write) (stmt, error) {
	ti, err := t.info(w.Model)
	if err != nil {
		return stmt{}, err
	}
	switch {
	case len(w.Delete) > 0:
		where, args := t.keyFilter(ti, "", ti.model.PrimaryKey, w.Delete)
		return stmt{sql: "DELETE FROM " + ti.name + " WHERE " + where, args: args}, nil
	case len(w.Upsert) > 0:
		return t.upsertSQL(ti, w.Upsert), nil
	}
	return stmt{}, nil
}

func (t *Tenant) upsertSQL(ti *tableInfo, recs []schema.Record) stmt {
	var b strings.Builder
	args := make([]any, 0, len(recs)*len(ti.cols))
	b.WriteString("INSERT INTO " + ti.name + " (" + strings.Join(ti.cols, ", ") + ") VALUES ")
	for i, r := range recs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(")
		for j, c := range ti.table.Columns {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("?")
			args = append(args, t.d.encode(c.Type, r[c.Field]))
		}
		b.WriteString(")")
	}
	b.WriteString(ti.onConflict)
	return stmt{sql: b.String(), args: args}
}

// supersededSQL deletes the entries that entries supersede: the previous
// entry of each one's record in its scope (the changelog is compacted, see
// Apply). It runs before the entries are inserted; every earlier entry of
// a locked scope has a lower id than the new ones anyway.
func (t *Tenant) supersededSQL(entries []changelog.Entry) stmt {
	var b strings.Builder
	args := make([]any, 0, len(entries)*3+1)
	// IN (SELECT * FROM (VALUES …)), not IN (VALUES …): SQLite looks the
	// former up row by row in an index, and scans the whole changelog for
	// the latter (it would then walk every id below low).
	b.WriteString("DELETE FROM " + t.prefix + `"_changelog" WHERE (scope_key, model, key_path) IN (SELECT * FROM (VALUES `)
	low := entries[0].ID
	for i, e := range entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?)")
		args = append(args, e.ScopeKey, e.Model, string(e.KeyPath))
		low = min(low, e.ID)
	}
	b.WriteString(") AS v) AND id < ?")
	args = append(args, low)
	return stmt{sql: b.String(), args: args}
}

func (t *Tenant) changelogSQL(entries []changelog.Entry) stmt {
	var b strings.Builder
	args := make([]any, 0, len(entries)*7)
	b.WriteString("INSERT INTO " + t.prefix + `"_changelog" (id, model, key_path, operation, scope_key, outbox_event_id, created_at) VALUES `)
	for i, e := range entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		args = append(args, e.ID, e.Model, string(e.KeyPath), string(e.Operation), e.ScopeKey, e.OutboxEventID,
			t.d.encode(schema.DateTime, e.CreatedAt))
	}
	return stmt{sql: b.String(), args: args}
}

func (t *Tenant) ledgerSQL(a syncdata.Applied) stmt {
	var b strings.Builder
	args := make([]any, 0, 4*len(a.Events))
	now := t.d.encode(schema.DateTime, time.Now().UTC())
	b.WriteString("INSERT INTO " + t.prefix + `"_applied_events" (subject, event_id, changelog_id, applied_at) VALUES `)
	for i, e := range a.Events {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
		args = append(args, a.Subject, e.EventID, e.ChangelogID, now)
	}
	return stmt{sql: b.String(), args: args}
}

func (t *Tenant) historySQL(a syncdata.Applied) stmt {
	var b strings.Builder
	args := make([]any, 0, 9*len(a.History))
	b.WriteString("INSERT INTO " + t.prefix + `"_history" (id, subject, model, key_path, operation, scope_key, outbox_event_id, record, created_at) VALUES `)
	for i, h := range a.History {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		var rec any
		if h.Record != nil {
			rec = string(h.Record)
		}
		args = append(args, h.ID, a.Subject, h.Model, string(h.KeyPath), string(h.Operation), h.ScopeKey, h.OutboxEventID, rec,
			t.d.encode(schema.DateTime, h.CreatedAt))
	}
	return stmt{sql: b.String(), args: args}
}

func (t *Tenant) headsSQL(heads map[string]string) stmt {
	var b strings.Builder
	args := make([]any, 0, 2*len(heads))
	b.WriteString("INSERT INTO " + t.prefix + `"_scope_heads" (scope_key, last_id) VALUES `)
	for i, s := range sortedKeys(heads) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
		args = append(args, s, heads[s])
	}
	b.WriteString(" ON CONFLICT (scope_key) DO UPDATE SET last_id = EXCLUDED.last_id")
	return stmt{sql: b.String(), args: args}
}

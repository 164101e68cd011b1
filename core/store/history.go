package store

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/syncdata"
)

// HistoryRow is one row of a tenant's full history (see syncdata.Applied.History)
// as read back: the entry, the record written and the subject that wrote
// it.
type HistoryRow struct {
	syncdata.HistoryEntry
	Subject string
}

// History reads at most limit rows of the tenant's full history after the
// id after ("" for the beginning), in id order. It is empty for a tenant
// that does not keep its history (manifest changelog: compacted).
func (t *Tenant) History(ctx context.Context, after string, limit int) ([]HistoryRow, error) {
	rows, err := t.db.QueryContext(ctx, "SELECT id, subject, model, key_path, operation, scope_key, outbox_event_id, record, created_at"+
		" FROM "+t.prefix+`"_history" WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []HistoryRow
	for rows.Next() {
		var (
			r       HistoryRow
			key, op string
			rec     sql.NullString
			created any
		)
		if err := rows.Scan(&r.ID, &r.Subject, &r.Model, &key, &op, &r.ScopeKey, &r.OutboxEventID, &rec, &created); err != nil {
			return nil, classify(err)
		}
		r.KeyPath, r.Operation = json.RawMessage(key), changelog.Operation(op)
		if rec.Valid {
			r.Record = json.RawMessage(rec.String)
		}
		r.CreatedAt = entryTime(created)
		out = append(out, r)
	}
	return out, classify(rows.Err())
}
